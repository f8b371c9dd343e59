package balloon

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"log/slog"
	"testing"

	"ember/memory"
	"ember/virtio"
	"ember/virtio/virtiotest"
)

// Guest memory of the fuzz targets: 16 pages, the rings at fuzzRings (page
// 1), raw fuzzer bytes (page frame numbers, statistics, indirect tables) at
// fuzzRaw, a byte pattern in every other page, so a released page shows.
const (
	fuzzRAM    = 64 << 10
	fuzzRings  = 0x1000
	fuzzRaw    = 0x3000
	fuzzRawMax = 0x400
	fuzzQueue  = 8
	fuzzHeader = 2 + fuzzQueue*virtiotest.FuzzRecLen // virtiotest.FuzzHeaderLen(fuzzQueue), as a constant
)

// Bits of the flags byte of a fuzz input.
const (
	fuzzEventIdx = 1 << 0
	fuzzIndirect = 1 << 1
	fuzzDeflate  = 1 << 2 // FuzzInflate: the chains go to the deflate queue
	fuzzShared   = 1 << 3 // guest RAM is a memfd
)

// fuzzMemory is the fuzz targets' guest RAM: anonymous and memfd-backed,
// made once per target.
type fuzzMemory struct{ anon, shared *memory.Guest }

func newFuzzMemory(f *testing.F) fuzzMemory {
	var m fuzzMemory
	var err error
	if m.anon, err = memory.New([]memory.Range{{GPA: 0, Size: fuzzRAM}}); err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { m.anon.Close() })
	if m.shared, err = memory.NewShared([]memory.Range{{GPA: 0, Size: fuzzRAM}}); err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { m.shared.Close() })
	return m
}

// pick returns the memory in's flags choose.
func (m fuzzMemory) pick(in []byte) *memory.Guest {
	if in[1]&fuzzShared != 0 {
		return m.shared
	}
	return m.anon
}

// FuzzInflate throws hostile inflate or deflate queue contents at the
// worker: a descriptor table, chains made available with any head,
// indirect tables and page frame numbers of raw bytes, buffers in or out of
// RAM. Input layout: [0] chains offered (mod 9), [1] flags (fuzzEventIdx,
// fuzzIndirect, fuzzDeflate, fuzzShared), then fuzzQueue records of 8
// bytes (addr le16, len le16, flags, next, head, high address bits), then
// raw bytes placed at fuzzRaw. Whatever comes, the worker must not panic,
// must leave guest memory exactly as a plain reference walk of the same
// rings does (Pop, read the page frame numbers of each well-formed chain
// pfnBatch at a time, zero the inflated pages that are RAM with a plain
// clear, Push) — no page released that the reference keeps, none kept that
// it zeroes — its counters must match the reference's, and it must
// interrupt the driver once if the used ring calls for it.
func FuzzInflate(f *testing.F) {
	mems := newFuzzMemory(f)
	for _, s := range inflateSeeds() {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		if len(in) < fuzzHeader {
			return
		}
		mem := mems.pick(in)
		drv := fuzzSetup(t, mem, in)
		queue := InflateQueue
		if in[1]&fuzzDeflate != 0 {
			queue = DeflateQueue
		}
		ref := *drv.Queue // the same queue, untouched, for the reference walk
		host := mem.Regions()[0].Host
		before := bytes.Clone(host)

		d, err := New(Config{Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			t.Fatal(err)
		}
		var qs [numQueues]*virtio.Queue
		qs[queue] = drv.Queue
		irqs := 0
		w := newWorker(d, mem, qs, func(q int) {
			if q != queue {
				t.Errorf("interrupt for queue %d", q)
			}
			irqs++
		}, 0)
		w.serveQueue(queue)
		after := bytes.Clone(host)

		copy(host, before)
		want := referencePages(t, mem, &ref, queue)
		if i := virtiotest.FirstDiff(host, after); i < len(host) {
			t.Fatalf("guest memory at %#x is %#x after the device, %#x after the reference", i, after[i], host[i])
		}
		if got := d.Counters(); got != want {
			t.Fatalf("counters %+v, want %+v", got, want)
		}
		if wantIRQ := ref.NeedsInterrupt(mem); irqs != 0 != wantIRQ || irqs > 1 {
			t.Fatalf("%d interrupts, want one: %v", irqs, wantIRQ)
		}
	})
}

// referencePages does what the worker must with an inflate or deflate
// queue, the plain way, on ref, a copy of the queue as it was, with guest
// memory restored as it was, and returns the counters it should have.
func referencePages(t *testing.T, mem *memory.Guest, ref *virtio.Queue, queue int) Counters {
	t.Helper()
	host := mem.Regions()[0].Host
	var want Counters
	for {
		c, err := ref.Pop(mem)
		var ce *virtio.ChainError
		switch {
		case errors.As(err, &ce):
			want.BadChains++
			if ce.Head < ref.Size && ref.Push(mem, ce.Head, 0) != nil {
				return want
			}
			continue
		case err != nil || c == nil:
			return want
		}
		if len(c.Writable) > 0 || c.ReadableLen()%4 != 0 {
			want.BadChains++
		} else {
			r := c.Reader()
			for {
				batch := make([]byte, 4*pfnBatch)
				n, err := io.ReadFull(r, batch)
				for i := 0; i < n; i += 4 {
					pfn := uint64(binary.LittleEndian.Uint32(batch[i:]))
					switch {
					case pfn >= fuzzRAM/PageSize:
						want.BadPFNs++
					case queue == InflateQueue:
						want.InflatedPages++
						clear(host[pfn*PageSize : (pfn+1)*PageSize])
					default:
						want.DeflatedPages++
					}
				}
				if err != nil {
					break
				}
			}
		}
		if ref.Push(mem, c.Head, 0) != nil {
			return want
		}
	}
}

// FuzzStats throws hostile statistics queue contents at the worker, laid
// out as for FuzzInflate (the flags' fuzzDeflate bit unused), and then asks
// for statistics. Whatever comes, the worker must not panic, must write
// nothing but the used ring, must hold the last chain it took and return
// every other it can, with 0 bytes, and must keep the report of the last
// well-formed chain, as a plain reference walk finds them.
func FuzzStats(f *testing.F) {
	mems := newFuzzMemory(f)
	for _, s := range statsSeeds() {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		if len(in) < fuzzHeader {
			return
		}
		mem := mems.pick(in)
		drv := fuzzSetup(t, mem, in)
		ref := *drv.Queue
		host := mem.Regions()[0].Host
		before := bytes.Clone(host)

		d, err := New(Config{Stats: true, Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			t.Fatal(err)
		}
		var qs [numQueues]*virtio.Queue
		qs[StatsQueue] = drv.Queue
		w := newWorker(d, mem, qs, func(int) {}, 0)
		w.serveQueue(StatsQueue)
		got, _, gotOK := d.Stats()
		held := w.held
		w.requestStats()
		after := bytes.Clone(host)

		copy(host, before)
		want, wantOK, wantHeld := referenceStats(t, mem, &ref)
		if i := virtiotest.FirstDiff(host, after); i < len(host) {
			t.Fatalf("guest memory at %#x is %#x after the device, %#x after the reference", i, after[i], host[i])
		}
		got.Time = want.Time
		if got != want || gotOK != wantOK {
			t.Fatalf("statistics %+v (%v), want %+v (%v)", got, gotOK, want, wantOK)
		}
		if held != wantHeld {
			t.Fatalf("holding head %d, want %d", held, wantHeld)
		}
	})
}

// referenceStats walks a statistics queue the plain way: it pops every
// chain, parses the well-formed ones, returns all but the last it took and
// then that one too (the request), and returns the last report and the
// head held before the request (-1 for none).
func referenceStats(t *testing.T, mem *memory.Guest, ref *virtio.Queue) (Stats, bool, int) {
	t.Helper()
	var s Stats
	ok, held, broken := false, -1, false
	push := func(head int) {
		if !broken && ref.Push(mem, uint16(head), 0) != nil {
			broken = true
		}
	}
	for !broken {
		c, err := ref.Pop(mem)
		var ce *virtio.ChainError
		if errors.As(err, &ce) {
			if ce.Head < ref.Size {
				push(int(ce.Head))
			}
			continue
		}
		if err != nil || c == nil {
			break
		}
		n := c.ReadableLen()
		if len(c.Writable) == 0 && n%statSize == 0 && n > 0 && n <= maxStatsBytes {
			s = Stats{}
			b := bytes.Join(c.Readable, nil)
			for ; len(b) >= statSize; b = b[statSize:] {
				tag := binary.LittleEndian.Uint16(b)
				if tag < numTags {
					*s.field(Tag(tag)) = binary.LittleEndian.Uint64(b[2:])
					s.Reported |= 1 << tag
				}
			}
			ok = true
		}
		if held >= 0 {
			push(held)
		}
		held = int(c.Head)
	}
	if held >= 0 && !broken {
		push(held)
	}
	return s, ok, held
}

// fuzzSetup lays out the queue and chains in as FuzzInflate describes and
// returns the driver.
func fuzzSetup(t *testing.T, mem *memory.Guest, in []byte) *virtiotest.Driver {
	host := mem.Regions()[0].Host
	clear(host)
	for i := fuzzRaw + fuzzRawMax; i < fuzzRAM; i++ {
		host[i] = byte(i*7 + i>>8 + 1)
	}
	copy(host[fuzzRaw:fuzzRaw+fuzzRawMax], in[fuzzHeader:])
	drv, err := virtiotest.New(mem, virtiotest.Config{
		Base: fuzzRings, Size: fuzzQueue, EventIdx: in[1]&fuzzEventIdx != 0, IndirectDesc: in[1]&fuzzIndirect != 0,
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := drv.LoadFuzzInput(in, fuzzQueue); err != nil {
		t.Fatal(err)
	}
	return drv
}

// fuzzInput encodes an input for the fuzz targets' queue
// (virtiotest.FuzzInput): count chains offered, the flags byte, recs, raw.
func fuzzInput(count, flags byte, raw []byte, recs ...virtiotest.FuzzRec) []byte {
	return virtiotest.FuzzInput(count, flags, fuzzQueue, raw, recs...)
}

// le32s encodes page frame numbers.
func le32s(v ...uint32) []byte {
	b := make([]byte, 4*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint32(b[4*i:], x)
	}
	return b
}

// inflateSeeds are the cases FuzzInflate starts from (testdata/fuzz holds
// more): pages in RAM, pages outside it, two chains, a chain of two
// buffers, an indirect chain, a writable buffer, an odd length, a page of
// the rings themselves, and the same on the deflate queue and memfd RAM.
func inflateSeeds() [][]byte {
	one := virtiotest.FuzzRec{Addr: fuzzRaw, Len: 12}
	table := make([]byte, 32)
	binary.LittleEndian.PutUint64(table, fuzzRaw+32)
	binary.LittleEndian.PutUint32(table[8:], 8)
	binary.LittleEndian.PutUint16(table[12:], virtio.DescNext)
	binary.LittleEndian.PutUint16(table[14:], 1)
	binary.LittleEndian.PutUint64(table[16:], fuzzRaw+40)
	binary.LittleEndian.PutUint32(table[24:], 4)
	seeds := [][]byte{
		fuzzInput(1, 0, le32s(4, 5, 6), one),
		fuzzInput(1, 0, le32s(4, 16, 0xffffffff), one),
		fuzzInput(2, fuzzEventIdx, le32s(7, 8, 9, 10), virtiotest.FuzzRec{Addr: fuzzRaw, Len: 8}, virtiotest.FuzzRec{Addr: fuzzRaw + 8, Len: 8, Head: 1}),
		fuzzInput(1, 0, le32s(11, 12, 13),
			virtiotest.FuzzRec{Addr: fuzzRaw, Len: 4, Flags: virtio.DescNext, Next: 1}, virtiotest.FuzzRec{Addr: fuzzRaw + 4, Len: 8}),
		fuzzInput(1, fuzzIndirect, append(table, le32s(5, 6, 7)...), virtiotest.FuzzRec{Addr: fuzzRaw, Len: 32, Flags: virtio.DescIndirect}),
		fuzzInput(1, 0, le32s(4), virtiotest.FuzzRec{Addr: fuzzRaw, Len: 4, Flags: virtio.DescWrite}),
		fuzzInput(1, 0, le32s(4, 5), virtiotest.FuzzRec{Addr: fuzzRaw, Len: 6}),
		fuzzInput(2, 0, le32s(1, 5), virtiotest.FuzzRec{Addr: fuzzRaw, Len: 4}, virtiotest.FuzzRec{Addr: fuzzRaw + 4, Len: 4, Head: 1}),
	}
	for _, s := range seeds[:3] {
		deflate, shared := bytes.Clone(s), bytes.Clone(s)
		deflate[1] |= fuzzDeflate
		shared[1] |= fuzzShared
		seeds = append(seeds, deflate, shared)
	}
	return seeds
}

// statsSeeds are the cases FuzzStats starts from: one report, two in a
// row, an unknown tag, a writable buffer, a length that is not a multiple
// of 10.
func statsSeeds() [][]byte {
	entries := func(kv ...uint64) []byte {
		var b []byte
		for i := 0; i+1 < len(kv); i += 2 {
			b = binary.LittleEndian.AppendUint16(b, uint16(kv[i]))
			b = binary.LittleEndian.AppendUint64(b, kv[i+1])
		}
		return b
	}
	return [][]byte{
		fuzzInput(1, 0, entries(4, 1<<20, 5, 2<<20), virtiotest.FuzzRec{Addr: fuzzRaw, Len: 20}),
		fuzzInput(2, fuzzEventIdx, entries(4, 1, 6, 2, 7, 3), virtiotest.FuzzRec{Addr: fuzzRaw, Len: 10}, virtiotest.FuzzRec{Addr: fuzzRaw + 10, Len: 20, Head: 1}),
		fuzzInput(1, 0, entries(99, 1, 9, 2), virtiotest.FuzzRec{Addr: fuzzRaw, Len: 20}),
		fuzzInput(1, 0, entries(4, 1), virtiotest.FuzzRec{Addr: fuzzRaw, Len: 10, Flags: virtio.DescWrite}),
		fuzzInput(1, fuzzShared, entries(4, 1, 5, 2), virtiotest.FuzzRec{Addr: fuzzRaw, Len: 15}),
	}
}
