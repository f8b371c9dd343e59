package virtio

import (
	"bytes"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"unsafe"

	"ember/memory"
)

// fuzzRAM is the guest memory FuzzQueue lays a queue out in.
const fuzzRAM = 64 << 10

// FuzzQueue lays out a queue of a fuzzed size at fuzzed places in 64 KiB of
// guest RAM whose first bytes are the fuzzed image (descriptor table,
// available ring, indirect tables, all as a hostile driver wrote them),
// starts the ring indices at a fuzzed value, then pops until the queue is
// empty or broken and pushes back every chain it took. It checks that
// nothing panics, that Pop runs dry within Size+1 calls, that every buffer
// lies in guest RAM, that a valid queue fails only as the contract says, and
// that the device wrote nothing outside the used ring.
//
// The seed corpus in testdata/fuzz/FuzzQueue is written from fuzzSeeds
// (go test ./virtio -run TestFuzzSeedCorpus -update-corpus).
func FuzzQueue(f *testing.F) {
	f.Fuzz(fuzzQueue)
}

func fuzzQueue(t *testing.T, sizeLog, features uint8, start, desc, avail, used uint16, image []byte) {
	mem, before := fuzzGuest(t)
	host := mem.Regions()[0].Host
	copy(host, image)
	clear(host[min(len(image), len(host)):])
	copy(before, host)
	q := &Queue{
		Size: fuzzSize(sizeLog), Desc: uint64(desc), Driver: uint64(avail), Device: uint64(used),
		Ready: true, EventIdx: features&1 != 0, IndirectDesc: features&2 != 0,
		nextAvail: start, nextUsed: start, usedIdx: start, signalled: start,
	}
	drain(t, mem, q, q.Validate(mem) == nil)
	q.NeedsInterrupt(mem)
	checkOnlyUsedRingChanged(t, q, before, host)
}

// fuzzSize is the queue size sizeLog selects: 2^(sizeLog%16), or with the
// top bit set its low seven bits as they are (0, 3, 6, ...), mostly not a
// power of two, which Pop and Push must refuse.
func fuzzSize(sizeLog uint8) uint16 {
	if sizeLog&0x80 != 0 {
		return uint16(sizeLog & 0x7f)
	}
	return 1 << (sizeLog % 16)
}

// fuzzGuest returns the guest RAM FuzzQueue uses, and a buffer as large for
// a copy of it, made once per process: mapping and unmapping RAM for every
// input made munmap's TLB shootdowns most of the fuzzer's time. Inputs run
// one at a time in a process.
func fuzzGuest(t *testing.T) (*memory.Guest, []byte) {
	fuzzMem.once.Do(func() {
		fuzzMem.mem, fuzzMem.err = memory.New([]memory.Range{{GPA: 0, Size: fuzzRAM}})
		fuzzMem.before = make([]byte, fuzzRAM)
	})
	if fuzzMem.err != nil {
		t.Fatal(fuzzMem.err)
	}
	return fuzzMem.mem, fuzzMem.before
}

var fuzzMem struct {
	once   sync.Once
	mem    *memory.Guest
	before []byte
	err    error
}

// drain pops until the queue is empty or broken, pushing back every chain.
// A queue that fails Validate is drained too, to see that Pop and Push fail
// cleanly on it, but nothing bounds its chains: its used ring may overlap
// the available ring, so that every Push offers another chain.
func drain(t *testing.T, mem *memory.Guest, q *Queue, valid bool) {
	for range int(q.Size) + 1 {
		c, err := q.Pop(mem)
		var ce *ChainError
		switch {
		case errors.As(err, &ce):
			if err := q.Push(mem, ce.Head, 0); valid && (err == nil) != (ce.Head < q.Size) {
				t.Fatalf("returning refused chain %d: %v", ce.Head, err)
			}
			continue
		case err != nil:
			if valid && !errors.Is(err, ErrBadRing) {
				t.Fatalf("a valid queue failed: %v", err)
			}
			return
		case c == nil:
			return
		}
		checkInRAM(t, mem, c)
		if err := q.Push(mem, c.Head, uint32(min(c.WritableLen(), 1<<32-1))); valid && err != nil {
			t.Fatalf("Push of a popped chain: %v", err)
		}
	}
	if valid {
		t.Fatalf("Pop did not run dry after %d chains from a queue of %d", int(q.Size)+1, q.Size)
	}
}

// checkInRAM checks that every buffer of c is guest RAM and the chain is
// within the spec's size bound.
func checkInRAM(t *testing.T, mem *memory.Guest, c *Chain) {
	host := mem.Regions()[0].Host
	lo := uintptr(unsafe.Pointer(unsafe.SliceData(host)))
	hi := lo + uintptr(len(host))
	for _, b := range append(append([][]byte(nil), c.Readable...), c.Writable...) {
		p := uintptr(unsafe.Pointer(unsafe.SliceData(b)))
		if len(b) == 0 || p < lo || p > hi || uintptr(len(b)) > hi-p {
			t.Fatalf("chain %d: a buffer of %d bytes at host %#x, outside guest RAM [%#x, %#x)", c.Head, len(b), p, lo, hi)
		}
	}
	if n := c.ReadableLen() + c.WritableLen(); n > MaxChainBytes {
		t.Fatalf("chain %d: %d bytes", c.Head, n)
	}
}

// checkOnlyUsedRingChanged checks that the device wrote guest memory only
// in the used ring (avail_event included).
func checkOnlyUsedRingChanged(t *testing.T, q *Queue, before, after []byte) {
	lo := min(q.Device, fuzzRAM)
	hi := min(lo+ringHeader+usedElemSize*uint64(q.Size)+2, fuzzRAM)
	// bytes.Equal, not a loop: the fuzzer instruments every comparison in
	// this package's code, and a byte loop made this most of its time.
	if !bytes.Equal(before[:lo], after[:lo]) || !bytes.Equal(before[hi:], after[hi:]) {
		t.Fatalf("the device wrote guest memory outside the used ring [%#x, %#x)", lo, hi)
	}
}

// fuzzSeed is one FuzzQueue input, built in code by fuzzImage.
type fuzzSeed struct {
	name                     string
	sizeLog, features        uint8
	start, desc, avail, used uint16
	image                    []byte
}

// The layout the seeds use: a queue of 8 with its rings and an indirect
// table in the first 384 bytes, the image, and buffers after it. A small
// image keeps the fuzzer's minimisation of each new input short.
const (
	seedDesc, seedAvail, seedUsed = 0x0, 0x80, 0x100
	seedTable, seedBuf            = 0x150, 0x200
	seedSize                      = 8
	featEventIdx, featIndirect    = 1, 2
)

// fuzzImage is guest memory from 0 as a driver lays out a seed's queue.
type fuzzImage []byte

func newFuzzImage() fuzzImage { return make(fuzzImage, 0x180) }

// desc writes descriptor i of the table at table.
func (m fuzzImage) desc(table uint64, i int, addr uint64, n uint32, flags, next uint16) fuzzImage {
	b := m[table+16*uint64(i):]
	binary.LittleEndian.PutUint64(b, addr)
	binary.LittleEndian.PutUint32(b[8:], n)
	binary.LittleEndian.PutUint16(b[12:], flags)
	binary.LittleEndian.PutUint16(b[14:], next)
	return m
}

// offer puts heads in the available ring from index first and sets
// avail->idx past them.
func (m fuzzImage) offer(first uint16, heads ...uint16) fuzzImage {
	for k, h := range heads {
		binary.LittleEndian.PutUint16(m[seedAvail+4+2*uint64((first+uint16(k))%seedSize):], h)
	}
	binary.LittleEndian.PutUint16(m[seedAvail+2:], first+uint16(len(heads)))
	return m
}

// u16 writes a little-endian u16 at gpa.
func (m fuzzImage) u16(gpa uint64, v uint16) fuzzImage {
	binary.LittleEndian.PutUint16(m[gpa:], v)
	return m
}

func fuzzSeeds() []fuzzSeed {
	const next, write, indirect = DescNext, DescWrite, DescIndirect
	seed := func(name string, features uint8, start uint16, m fuzzImage) fuzzSeed {
		return fuzzSeed{name, 3, features, start, seedDesc, seedAvail, seedUsed, m}
	}
	usedEvent := uint64(seedAvail + 4 + 2*seedSize)
	return []fuzzSeed{
		seed("readable-then-writable", 0, 0, newFuzzImage().
			desc(seedDesc, 0, seedBuf, 16, next, 1).
			desc(seedDesc, 1, seedBuf+16, 16, write, 0).
			offer(0, 0)),
		seed("two-chains", 0, 0, newFuzzImage().
			desc(seedDesc, 0, seedBuf, 16, write, 0).
			desc(seedDesc, 2, seedBuf+16, 4, next, 3).
			desc(seedDesc, 3, seedBuf+32, 64, write, 0).
			offer(0, 0, 2)),
		seed("indirect", featIndirect, 0, newFuzzImage().
			desc(seedDesc, 0, seedTable, 48, indirect, 0).
			desc(seedTable, 0, seedBuf, 8, next, 1).
			desc(seedTable, 1, seedBuf+8, 8, next, 2).
			desc(seedTable, 2, seedBuf+16, 32, write, 0).
			offer(0, 0)),
		seed("direct-then-indirect", featIndirect, 0, newFuzzImage().
			desc(seedDesc, 5, seedBuf, 8, next, 6).
			desc(seedDesc, 6, seedTable, 16, indirect, 0).
			desc(seedTable, 0, seedBuf+8, 8, write, 0).
			offer(0, 5)),
		seed("loop", 0, 0, newFuzzImage().
			desc(seedDesc, 0, seedBuf, 8, next, 1).
			desc(seedDesc, 1, seedBuf, 8, next, 0).
			offer(0, 0)),
		seed("nested-indirect", featIndirect, 0, newFuzzImage().
			desc(seedDesc, 0, seedTable, 32, indirect, 0).
			desc(seedTable, 0, seedBuf, 8, next, 1).
			desc(seedTable, 1, seedTable, 32, indirect, 0).
			offer(0, 0)),
		seed("indirect-loop", featIndirect, 0, newFuzzImage().
			desc(seedDesc, 0, seedTable, 32, indirect, 0).
			desc(seedTable, 0, seedBuf, 8, next, 1).
			desc(seedTable, 1, seedBuf, 8, next, 0).
			offer(0, 0)),
		seed("readable-after-writable", 0, 0, newFuzzImage().
			desc(seedDesc, 0, seedBuf, 8, write|next, 1).
			desc(seedDesc, 1, seedBuf, 8, 0, 0).
			offer(0, 0)),
		seed("buffer-outside-ram", 0, 0, newFuzzImage().
			desc(seedDesc, 0, fuzzRAM-4, 8, 0, 0).
			offer(0, 0)),
		seed("runaway-avail-index", 0, 0, newFuzzImage().
			desc(seedDesc, 0, seedBuf, 8, 0, 0).
			offer(0, 0).u16(seedAvail+2, seedSize+1)),
		seed("event-idx-across-the-wrap", featEventIdx|featIndirect, 65535, newFuzzImage().
			desc(seedDesc, 0, seedBuf, 8, write, 0).
			desc(seedDesc, 1, seedTable, 16, indirect, 0).
			desc(seedTable, 0, seedBuf+8, 8, write, 0).
			offer(65535, 0, 1).u16(usedEvent, 0)),
		{"misaligned-rings", 3, 0, 0, seedDesc + 8, seedAvail + 1, seedUsed + 2, newFuzzImage().
			desc(seedDesc, 0, seedBuf, 8, 0, 0).offer(0, 0)},
		{"size-0", 0x80, 0, 0, seedDesc, seedAvail, seedUsed, newFuzzImage().
			desc(seedDesc, 0, seedBuf, 8, 0, 0).offer(0, 0)},
		{"size-6", 0x80 | 6, 0, 0, seedDesc, seedAvail, seedUsed, newFuzzImage().
			desc(seedDesc, 0, seedBuf, 8, 0, 0).offer(0, 0)},
		{"size-32768-past-ram", 15, 0, 0, seedDesc, seedAvail, seedUsed, newFuzzImage().offer(0, 0)},
	}
}

var updateCorpus = flag.Bool("update-corpus", false, "rewrite testdata/fuzz/FuzzQueue from fuzzSeeds")

// TestFuzzSeedCorpus checks that the committed seed corpus is what
// fuzzSeeds builds, so the corpus files are never opaque blobs.
func TestFuzzSeedCorpus(t *testing.T) {
	dir := filepath.Join("testdata", "fuzz", "FuzzQueue")
	for _, s := range fuzzSeeds() {
		want := fmt.Appendf(nil, "go test fuzz v1\nuint8(%d)\nuint8(%d)\nuint16(%d)\nuint16(%d)\nuint16(%d)\nuint16(%d)\n[]byte(%q)\n",
			s.sizeLog, s.features, s.start, s.desc, s.avail, s.used, s.image)
		path := filepath.Join(dir, s.name)
		if *updateCorpus {
			if err := os.MkdirAll(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, want, 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if got, err := os.ReadFile(path); err != nil || !bytes.Equal(got, want) {
			t.Errorf("%s is not the seed fuzzSeeds builds (%v): run go test ./virtio -run TestFuzzSeedCorpus -update-corpus", path, err)
		}
	}
}
