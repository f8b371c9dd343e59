package console

import (
	"bytes"
	"encoding/binary"
	"errors"
	"log/slog"
	"testing"

	"ember/memory"
	"ember/virtio"
	"ember/virtio/virtiotest"
)

// Guest memory of FuzzTransmit: the rings at fuzzRings, raw fuzzer bytes
// (indirect tables, or whatever a descriptor points at) at fuzzRaw, a byte
// pattern above fuzzData.
const (
	fuzzRAM    = 64 << 10
	fuzzRings  = 0x1000
	fuzzRaw    = 0x3000
	fuzzRawMax = 0x400 // 64 descriptors: keeps what one indirect table can output to a few MiB
	fuzzData   = 0x4000
	fuzzQueue  = 8
)

// FuzzTransmit throws hostile transmitq contents at the transmit worker: a
// descriptor table, chains made available with any head, indirect tables
// of raw bytes, buffers in or out of RAM. Input layout: [0] chains offered
// (mod 9), [1] bit 0 EVENT_IDX, bit 1 INDIRECT_DESC, then fuzzQueue records
// of 8 bytes (addr le16, len le16, flags, next, head, high address bits),
// then raw bytes placed at fuzzRaw. Whatever comes, the worker must not
// panic, must write nothing to guest memory but the used ring, must return
// every chain it can with 0 bytes written, and must output exactly the
// readable bytes of the well-formed chains that have no writable buffer,
// in order, leaving guest memory as a plain reference walk of the same
// rings with Pop and Push does.
func FuzzTransmit(f *testing.F) {
	mem, err := memory.New([]memory.Range{{GPA: 0, Size: fuzzRAM}})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { mem.Close() })
	for _, s := range fuzzSeeds() {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		if len(in) < virtiotest.FuzzHeaderLen(fuzzQueue) {
			return
		}
		drv, offered := fuzzSetup(t, mem, in)
		ref := *drv.Queue // the same queue, untouched, for the reference walk
		before := bytes.Clone(mem.Regions()[0].Host)
		var out bytes.Buffer
		irqs := 0
		d := &Device{log: slog.New(slog.DiscardHandler), out: &out}
		w := newWorker(d, mem, drv.Queue, TransmitQueue, func(q int) {
			if q != TransmitQueue {
				t.Errorf("interrupt for queue %d", q)
			}
			irqs++
		})
		w.transmit()
		host := mem.Regions()[0].Host
		after := bytes.Clone(host)
		checkUntouched(t, before, after, drv.Queue)
		copy(host, before)
		want, returned := referenceTransmit(t, mem, &ref, offered)
		if got := out.Bytes(); !bytes.Equal(got, want) {
			t.Fatalf("output of %d bytes, want %d; first difference at %d", len(got), len(want), virtiotest.FirstDiff(got, want))
		}
		if i := virtiotest.FirstDiff(host, after); i < len(host) {
			t.Fatalf("guest memory at %#x is %#x after the device, %#x after the reference", i, after[i], host[i])
		}
		checkUsed(t, drv, returned, irqs)
	})
}

// fuzzSetup lays out the queue and chains in as FuzzTransmit describes, and
// returns the driver and the number of chains offered.
func fuzzSetup(t *testing.T, mem *memory.Guest, in []byte) (*virtiotest.Driver, int) {
	host := mem.Regions()[0].Host
	clear(host)
	for i := fuzzData; i < fuzzRAM; i++ {
		host[i] = byte(i*7 + i>>8)
	}
	raw := in[virtiotest.FuzzHeaderLen(fuzzQueue):]
	copy(host[fuzzRaw:fuzzRaw+fuzzRawMax], raw)
	drv, err := virtiotest.New(mem, virtiotest.Config{
		Base: fuzzRings, Size: fuzzQueue, EventIdx: in[1]&1 != 0, IndirectDesc: in[1]&2 != 0,
	})
	if err != nil {
		t.Fatal(err)
	}
	offered, err := drv.LoadFuzzInput(in, fuzzQueue)
	if err != nil {
		t.Fatal(err)
	}
	return drv, offered
}

// checkUntouched fails if the worker wrote guest memory outside q's used
// ring (avail_event, at its end, included).
func checkUntouched(t *testing.T, before, after []byte, q *virtio.Queue) {
	t.Helper()
	lo, hi := q.Device, q.Device+4+8*uint64(q.Size)+2
	for i := range before {
		if (uint64(i) < lo || uint64(i) >= hi) && before[i] != after[i] {
			t.Fatalf("guest memory at %#x changed from %#x to %#x", i, before[i], after[i])
		}
	}
}

// referenceTransmit does what the transmit worker must, the plain way, on
// ref, a copy of the queue as it was, with guest memory restored as it was:
// it pops the offered chains, collects the readable bytes of each
// well-formed one without a writable buffer, and returns every chain it can
// (a head outside the queue cannot be) with 0 bytes written, each after its
// bytes were taken, as the device does, so that a buffer overlapping the
// used ring reads the same bytes in both. It returns the output and the
// number of chains returned.
func referenceTransmit(t *testing.T, mem *memory.Guest, ref *virtio.Queue, offered int) ([]byte, int) {
	t.Helper()
	var want []byte
	returned := 0
	for range offered {
		c, err := ref.Pop(mem)
		var ce *virtio.ChainError
		head := uint16(0)
		switch {
		case errors.As(err, &ce):
			if ce.Head >= ref.Size {
				continue
			}
			head = ce.Head
		case err != nil || c == nil:
			t.Fatalf("reference pop: %v, %v", c, err)
		default:
			head = c.Head
			if len(c.Writable) == 0 {
				want = append(want, bytes.Join(c.Readable, nil)...)
			}
		}
		if err := ref.Push(mem, head, 0); err != nil {
			t.Fatalf("reference push: %v", err)
		}
		returned++
	}
	if c, err := ref.Pop(mem); c != nil || err != nil { // and sets avail_event, as the device's last Pop did
		t.Fatalf("reference pop past the offered chains: %v, %v", c, err)
	}
	return want, returned
}

// checkUsed checks the used ring: returned elements, each with 0 bytes
// written and a head inside the queue, and one interrupt if any (the
// driver asked for every one: flags and used_event are zero).
func checkUsed(t *testing.T, drv *virtiotest.Driver, returned, irqs int) {
	t.Helper()
	n := 0
	for {
		u, ok, err := drv.Used()
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			break
		}
		n++
		if u.Len != 0 || u.Head >= fuzzQueue {
			t.Fatalf("used element %+v", u)
		}
	}
	if n != returned {
		t.Fatalf("%d chains returned, want %d", n, returned)
	}
	if want := min(n, 1); irqs != want {
		t.Fatalf("%d interrupts for %d used elements", irqs, n)
	}
}

// fuzzSeeds are the cases FuzzTransmit starts from (testdata/fuzz holds
// more): a chain of one buffer, a chain of three, two in a row, and an
// indirect one.
func fuzzSeeds() [][]byte {
	one := fuzzInput(1, 0, nil, virtiotest.FuzzRec{Addr: fuzzData, Len: 5})
	three := fuzzInput(1, 0, nil,
		virtiotest.FuzzRec{Addr: fuzzData, Len: 3, Flags: virtio.DescNext, Next: 1},
		virtiotest.FuzzRec{Addr: fuzzData + 0x100, Len: 3, Flags: virtio.DescNext, Next: 2},
		virtiotest.FuzzRec{Addr: fuzzData + 0x200, Len: 3})
	two := fuzzInput(2, 1, nil, virtiotest.FuzzRec{Addr: fuzzData, Len: 4}, virtiotest.FuzzRec{Addr: fuzzData + 0x1000, Len: 4, Head: 1})
	table := make([]byte, 32)
	binary.LittleEndian.PutUint64(table, fuzzData)
	binary.LittleEndian.PutUint32(table[8:], 4)
	binary.LittleEndian.PutUint16(table[12:], virtio.DescNext)
	binary.LittleEndian.PutUint16(table[14:], 1)
	binary.LittleEndian.PutUint64(table[16:], fuzzData+0x10)
	binary.LittleEndian.PutUint32(table[24:], 4)
	indirect := fuzzInput(1, 2, table, virtiotest.FuzzRec{Addr: fuzzRaw, Len: 32, Flags: virtio.DescIndirect})
	return [][]byte{one, three, two, indirect}
}

// fuzzInput encodes an input for the fuzz targets' queue
// (virtiotest.FuzzInput): count chains offered, the flags byte, recs, raw.
func fuzzInput(count, flags byte, raw []byte, recs ...virtiotest.FuzzRec) []byte {
	return virtiotest.FuzzInput(count, flags, fuzzQueue, raw, recs...)
}
