package virtio_test

import (
	"bytes"
	"errors"
	"io"
	"testing"

	"ember/memory"
	"ember/virtio"
	"ember/virtio/virtiotest"
)

const (
	ramSize  = 1 << 20
	ringBase = 0x1000
	bufAddr  = 0x8000 // free RAM for hand-made buffers and tables
)

// newGuest returns 1 MiB of guest RAM at 0, closed when the test ends.
func newGuest(t *testing.T) *memory.Guest {
	t.Helper()
	mem, err := memory.New([]memory.Range{{GPA: 0, Size: ramSize}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { mem.Close() })
	return mem
}

// newDriver lays out a queue of size 8 at ringBase in a new guest.
func newDriver(t *testing.T, cfg virtiotest.Config) (*memory.Guest, *virtiotest.Driver) {
	t.Helper()
	mem := newGuest(t)
	if cfg.Size == 0 {
		cfg.Size = 8
	}
	cfg.Base = ringBase
	d, err := virtiotest.New(mem, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return mem, d
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// TestValidate: the size is a power of two up to 32768 and each area is
// aligned as §2.7 requires and wholly in guest RAM. Rings refuses what
// Validate refuses, and gives a valid queue's three areas as guest memory
// at their addresses, event index fields included.
func TestValidate(t *testing.T) {
	mem := newGuest(t)
	good := virtio.Queue{Size: 8, Desc: 0x1000, Driver: 0x1080, Device: 0x1100}
	end := uint64(ramSize)
	tests := []struct {
		name string
		edit func(q *virtio.Queue)
		ok   bool
	}{
		{"a queue of 8 in RAM", func(q *virtio.Queue) {}, true},
		{"size 1", func(q *virtio.Queue) { q.Size = 1 }, true},
		{"size 0", func(q *virtio.Queue) { q.Size = 0 }, false},
		{"size 3, not a power of two", func(q *virtio.Queue) { q.Size = 3 }, false},
		{"size 65535", func(q *virtio.Queue) { q.Size = 65535 }, false},
		{"size 32768 needs 512 KiB of table past RAM's end", func(q *virtio.Queue) {
			q.Size, q.Desc = 32768, end-0x10000
		}, false},
		{"size 32768 in RAM", func(q *virtio.Queue) {
			q.Size, q.Desc, q.Driver, q.Device = 32768, 0, 0x80000, 0xa0000
		}, true},
		{"descriptor table 8-byte aligned", func(q *virtio.Queue) { q.Desc = 0x1008 }, false},
		{"available ring odd", func(q *virtio.Queue) { q.Driver = 0x1081 }, false},
		{"used ring 2-byte aligned", func(q *virtio.Queue) { q.Device = 0x1102 }, false},
		{"available ring ending at the end of RAM, used_event included", func(q *virtio.Queue) {
			q.Driver = end - (6 + 2*8)
		}, true},
		{"available ring's used_event past the end of RAM", func(q *virtio.Queue) {
			q.Driver = end - (4 + 2*8)
		}, false},
		{"used ring ending at the end of RAM, avail_event included", func(q *virtio.Queue) {
			q.Device = end - (6 + 8*8) - 2
		}, true},
		{"used ring's avail_event past the end of RAM", func(q *virtio.Queue) {
			q.Device = end - (4 + 8*8)
		}, false},
		{"descriptor table wrapping around 2^64", func(q *virtio.Queue) { q.Desc = 1<<64 - 64 }, false},
		{"used ring over the available ring", func(q *virtio.Queue) { q.Device = 0x1090 }, false},
		{"used ring over the descriptor table", func(q *virtio.Queue) { q.Device = 0x1000 }, false},
		{"available ring over the descriptor table, both the driver's", func(q *virtio.Queue) { q.Driver = 0x1000 }, true},
	}
	for _, tt := range tests {
		q := good
		tt.edit(&q)
		err := q.Validate(mem)
		if (err == nil) != tt.ok || err != nil && !errors.Is(err, virtio.ErrInvalid) {
			t.Errorf("%s: Validate = %v, want ok=%v", tt.name, err, tt.ok)
		}
		checkRings(t, tt.name, mem, q, tt.ok)
	}
}

// checkRings checks q.Rings against what Validate said (ok).
func checkRings(t *testing.T, name string, mem *memory.Guest, q virtio.Queue, ok bool) {
	t.Helper()
	desc, avail, used, err := q.Rings(mem)
	if (err == nil) != ok {
		t.Errorf("%s: Rings = %v, want ok=%v", name, err, ok)
		return
	}
	if !ok {
		return
	}
	n := uint64(q.Size)
	for _, r := range []struct {
		got  []byte
		gpa  uint64
		size uint64
	}{{desc, q.Desc, 16 * n}, {avail, q.Driver, 6 + 2*n}, {used, q.Device, 6 + 8*n}} {
		want, err := mem.Slice(r.gpa, r.size)
		if err != nil || uint64(len(r.got)) != r.size || &r.got[0] != &want[0] {
			t.Errorf("%s: Rings gave %d bytes, want %d at %#x", name, len(r.got), r.size, r.gpa)
		}
	}
}

// TestPopWellFormedChains: Pop returns each chain's buffers as guest memory,
// device-readable ones first, whatever the arrangement of descriptors.
func TestPopWellFormedChains(t *testing.T) {
	hello, world := []byte("hello, "), []byte("world")
	tests := []struct {
		name     string
		indirect bool
		bufs     []virtiotest.Buffer
	}{
		{"one device-readable buffer", false, []virtiotest.Buffer{virtiotest.Readable(hello)}},
		{"one device-writable buffer", false, []virtiotest.Buffer{virtiotest.Writable(64)}},
		{"readable then writable", false, []virtiotest.Buffer{
			virtiotest.Readable(hello), virtiotest.Readable(world), virtiotest.Writable(1)}},
		{"a full queue's worth of descriptors", false, []virtiotest.Buffer{
			virtiotest.Readable(hello), virtiotest.Readable(world), virtiotest.Readable(hello), virtiotest.Readable(world),
			virtiotest.Writable(1), virtiotest.Writable(2), virtiotest.Writable(3), virtiotest.Writable(4)}},
		{"zero-length buffers, which are legal", false, []virtiotest.Buffer{
			virtiotest.Readable(nil), virtiotest.Readable(hello), virtiotest.Writable(0), virtiotest.Writable(16)}},
		{"an indirect table", true, []virtiotest.Buffer{virtiotest.Readable(hello), virtiotest.Writable(512)}},
		{"an indirect table longer than the queue", true, []virtiotest.Buffer{
			virtiotest.Readable(hello), virtiotest.Readable(world), virtiotest.Readable(hello), virtiotest.Readable(world),
			virtiotest.Readable(hello), virtiotest.Writable(1), virtiotest.Writable(2), virtiotest.Writable(3),
			virtiotest.Writable(4), virtiotest.Writable(5)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mem, d := newDriver(t, virtiotest.Config{IndirectDesc: true})
			add := d.Add
			if tt.indirect {
				add = d.AddIndirect
			}
			head, _, err := add(tt.bufs...)
			must(t, err)
			c, err := d.Queue.Pop(mem)
			if err != nil || c == nil {
				t.Fatalf("Pop = %v, %v", c, err)
			}
			if c.Head != head {
				t.Errorf("head %d, want %d", c.Head, head)
			}
			checkBuffers(t, c, tt.bufs)
			if c, err := d.Queue.Pop(mem); c != nil || err != nil {
				t.Errorf("second Pop = %v, %v, want nothing", c, err)
			}
		})
	}
}

// checkBuffers compares a popped chain with the buffers the driver offered.
func checkBuffers(t *testing.T, c *virtio.Chain, bufs []virtiotest.Buffer) {
	t.Helper()
	var readable []byte
	var writable uint64
	for _, b := range bufs {
		if b.Writable {
			writable += uint64(b.Len)
		} else {
			readable = append(readable, b.Data...)
		}
	}
	got, err := io.ReadAll(c.Reader())
	if err != nil || !bytes.Equal(got, readable) || c.ReadableLen() != uint64(len(readable)) {
		t.Errorf("readable %q (len %d), %v; want %q", got, c.ReadableLen(), err, readable)
	}
	if c.WritableLen() != writable {
		t.Errorf("writable length %d, want %d", c.WritableLen(), writable)
	}
	for _, b := range append(c.Readable, c.Writable...) {
		if len(b) == 0 {
			t.Error("a zero-length buffer in the chain")
		}
	}
}

// TestPopDirectThenIndirect: a chain of direct descriptors may end with one
// that refers to an indirect table (§2.7.5.3.2), which continues it.
func TestPopDirectThenIndirect(t *testing.T) {
	mem, d := newDriver(t, virtiotest.Config{IndirectDesc: true})
	must(t, d.Write(bufAddr, []byte("headbodytail")))
	must(t, d.WriteTable(bufAddr+0x100, []virtiotest.Desc{
		{Addr: bufAddr + 4, Len: 4, Flags: virtio.DescNext, Next: 1},
		{Addr: bufAddr + 0x200, Len: 32, Flags: virtio.DescWrite},
	}))
	must(t, d.SetDesc(0, virtiotest.Desc{Addr: bufAddr, Len: 4, Flags: virtio.DescNext, Next: 5}))
	// The referring descriptor's WRITE flag must be ignored.
	must(t, d.SetDesc(5, virtiotest.Desc{Addr: bufAddr + 0x100, Len: 32, Flags: virtio.DescIndirect | virtio.DescWrite}))
	must(t, d.Offer(0))
	c, err := d.Queue.Pop(mem)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(c.Reader())
	if string(got) != "headbody" || c.WritableLen() != 32 {
		t.Errorf("readable %q, writable %d; want \"headbody\", 32", got, c.WritableLen())
	}
}

// TestPopAcrossAdjoiningRegions: a buffer may cross from one RAM region into
// the next when they adjoin, as memory lent region by region does.
func TestPopAcrossAdjoiningRegions(t *testing.T) {
	mem, d := newDriver(t, virtiotest.Config{})
	owner, err := memory.New([]memory.Range{{GPA: 0, Size: memory.PageSize}})
	must(t, err)
	defer owner.Close()
	must(t, mem.Map(ramSize, owner.Regions()[0].Host))
	defer mem.Unmap(ramSize)
	must(t, d.Write(ramSize-5, []byte("split")))
	must(t, d.Write(ramSize, []byte(" buffer")))
	must(t, d.SetDesc(0, virtiotest.Desc{Addr: ramSize - 5, Len: 12}))
	must(t, d.Offer(0))
	c, err := d.Queue.Pop(mem)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(c.Reader())
	if len(c.Readable) != 2 || string(got) != "split buffer" {
		t.Errorf("%d buffers holding %q, want 2 holding \"split buffer\"", len(c.Readable), got)
	}
}

// TestPopRefusesBadChains: every malformed chain a hostile driver can build
// is a *ChainError wrapping ErrBadChain; the chain is consumed and returned
// with Push, and the queue goes on to the next chain.
func TestPopRefusesBadChains(t *testing.T) {
	type descs = []virtiotest.Desc
	const (
		next, write, indirect = virtio.DescNext, virtio.DescWrite, virtio.DescIndirect
		table                 = bufAddr + 0x1000 // where rows put an indirect table
	)
	tests := []struct {
		name       string
		noIndirect bool   // VIRTIO_F_INDIRECT_DESC not negotiated
		head       uint16 // offered in the available ring
		ring       descs  // the queue's descriptor table from 0
		table      descs  // an indirect table at table
		outOfRAM   bool   // the error also wraps memory.ErrOutOfRange
	}{
		{name: "head index equal to the queue size", head: 8, ring: descs{{Addr: bufAddr, Len: 1}}},
		{name: "head index 65535", head: 65535, ring: descs{{Addr: bufAddr, Len: 1}}},
		{name: "next index out of the table", ring: descs{{Addr: bufAddr, Len: 1, Flags: next, Next: 8}}},
		{name: "a descriptor chained to itself", ring: descs{{Addr: bufAddr, Len: 1, Flags: next, Next: 0}}},
		{name: "a loop of two", ring: descs{
			{Addr: bufAddr, Len: 1, Flags: next, Next: 1},
			{Addr: bufAddr, Len: 1, Flags: next, Next: 0}}},
		{name: "a loop after a tail", ring: descs{
			{Addr: bufAddr, Len: 1, Flags: next, Next: 1},
			{Addr: bufAddr, Len: 1, Flags: next, Next: 2},
			{Addr: bufAddr, Len: 1, Flags: next, Next: 1}}},
		{name: "device-readable after device-writable", ring: descs{
			{Addr: bufAddr, Len: 1, Flags: next | write, Next: 1},
			{Addr: bufAddr, Len: 1}}},
		{name: "zero-length device-readable after device-writable", ring: descs{
			{Addr: bufAddr, Len: 1, Flags: next | write, Next: 1},
			{Addr: bufAddr, Len: 0}}},
		{name: "buffer outside RAM", outOfRAM: true, ring: descs{{Addr: 1 << 40, Len: 1}}},
		{name: "buffer across the end of RAM", outOfRAM: true, ring: descs{{Addr: ramSize - 4, Len: 8}}},
		{name: "buffer wrapping around 2^64", outOfRAM: true, ring: descs{{Addr: 1<<64 - 2, Len: 4}}},
		{name: "second buffer outside RAM", outOfRAM: true, ring: descs{
			{Addr: bufAddr, Len: 1, Flags: next, Next: 1},
			{Addr: ramSize, Len: 1, Flags: write}}},
		{name: "indirect without VIRTIO_F_INDIRECT_DESC", noIndirect: true,
			ring: descs{{Addr: table, Len: 16, Flags: indirect}}, table: descs{{Addr: bufAddr, Len: 1}}},
		{name: "indirect together with NEXT", ring: descs{
			{Addr: table, Len: 16, Flags: indirect | next, Next: 1},
			{Addr: bufAddr, Len: 1}}, table: descs{{Addr: bufAddr, Len: 1}}},
		{name: "indirect table of zero bytes", ring: descs{{Addr: table, Len: 0, Flags: indirect}}},
		{name: "indirect table of 24 bytes", ring: descs{{Addr: table, Len: 24, Flags: indirect}},
			table: descs{{Addr: bufAddr, Len: 1}, {}}},
		{name: "indirect table of 1025 descriptors", ring: descs{{Addr: table, Len: 16 * 1025, Flags: indirect}}},
		{name: "indirect table outside RAM", outOfRAM: true, ring: descs{{Addr: ramSize - 16, Len: 32, Flags: indirect}}},
		{name: "indirect inside an indirect table", ring: descs{{Addr: table, Len: 32, Flags: indirect}},
			table: descs{{Addr: table, Len: 32, Flags: indirect}, {Addr: bufAddr, Len: 1}}},
		{name: "indirect inside an indirect table after a buffer", ring: descs{{Addr: table, Len: 32, Flags: indirect}},
			table: descs{{Addr: bufAddr, Len: 1, Flags: next, Next: 1}, {Addr: table, Len: 32, Flags: indirect}}},
		{name: "indirect next out of its table", ring: descs{{Addr: table, Len: 32, Flags: indirect}},
			table: descs{{Addr: bufAddr, Len: 1, Flags: next, Next: 2}, {}}},
		{name: "indirect loop", ring: descs{{Addr: table, Len: 32, Flags: indirect}},
			table: descs{{Addr: bufAddr, Len: 1, Flags: next, Next: 1}, {Addr: bufAddr, Len: 1, Flags: next, Next: 0}}},
		{name: "indirect readable after a direct writable", ring: descs{
			{Addr: bufAddr, Len: 1, Flags: write | next, Next: 1},
			{Addr: table, Len: 16, Flags: indirect}}, table: descs{{Addr: bufAddr, Len: 1}}},
		{name: "indirect buffer outside RAM", outOfRAM: true, ring: descs{{Addr: table, Len: 16, Flags: indirect}},
			table: descs{{Addr: 1 << 50, Len: 1}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mem, d := newDriver(t, virtiotest.Config{IndirectDesc: !tt.noIndirect})
			for i, x := range tt.ring {
				must(t, d.SetDesc(uint16(i), x))
			}
			must(t, d.WriteTable(table, tt.table))
			must(t, d.Offer(tt.head))
			c, err := d.Queue.Pop(mem)
			var ce *virtio.ChainError
			if c != nil || !errors.As(err, &ce) || !errors.Is(err, virtio.ErrBadChain) || ce.Head != tt.head {
				t.Fatalf("Pop = %v, %v; want a ChainError for head %d", c, err, tt.head)
			}
			if errors.Is(err, memory.ErrOutOfRange) != tt.outOfRAM {
				t.Errorf("Pop = %v; want memory.ErrOutOfRange %v", err, tt.outOfRAM)
			}
			t.Log(err)
			checkQueueGoesOn(t, mem, d, ce.Head)
		})
	}
}

// checkQueueGoesOn returns a refused chain, unless its head is outside the
// queue and cannot be, and checks that the next good chain pops.
func checkQueueGoesOn(t *testing.T, mem *memory.Guest, d *virtiotest.Driver, refused uint16) {
	t.Helper()
	err := d.Queue.Push(mem, refused, 0)
	if (err == nil) != (refused < d.Queue.Size) {
		t.Fatalf("returning the refused chain %d: %v", refused, err)
	}
	must(t, d.SetDesc(7, virtiotest.Desc{Addr: bufAddr, Len: 3, Flags: virtio.DescWrite}))
	must(t, d.Offer(7))
	if c, err := d.Queue.Pop(mem); err != nil || c == nil || c.Head != 7 || c.WritableLen() != 3 {
		t.Errorf("the next chain: %+v, %v", c, err)
	}
}

// TestPopChainOverFourGiB: a chain may describe at most 2^32 bytes
// (§2.7.5.1), checked before any of its memory is touched.
func TestPopChainOverFourGiB(t *testing.T) {
	mem, err := memory.New([]memory.Range{{GPA: 0, Size: 1<<32 + 1<<20}}) // MAP_NORESERVE: costs nothing
	must(t, err)
	defer mem.Close()
	d, err := virtiotest.New(mem, virtiotest.Config{Base: ringBase, Size: 8})
	must(t, err)
	must(t, d.SetDesc(0, virtiotest.Desc{Addr: 0, Len: 1<<32 - 1, Flags: virtio.DescNext, Next: 1}))
	must(t, d.SetDesc(1, virtiotest.Desc{Addr: 0, Len: 1, Flags: virtio.DescNext, Next: 2}))
	must(t, d.SetDesc(2, virtiotest.Desc{Addr: 0, Len: 1}))
	must(t, d.Offer(0))
	if c, err := d.Queue.Pop(mem); c != nil || !errors.Is(err, virtio.ErrBadChain) {
		t.Errorf("Pop of 2^32+1 bytes = %v, %v; want ErrBadChain", c, err)
	}
	must(t, d.SetDesc(1, virtiotest.Desc{Addr: 0, Len: 1}))
	must(t, d.Offer(0))
	if c, err := d.Queue.Pop(mem); err != nil || c.ReadableLen() != 1<<32 {
		t.Errorf("Pop of 2^32 bytes = %v, %v", c, err)
	}
}

// TestPopRefusesARunawayIndex: an avail idx more than the queue size ahead of
// what the device took is ErrBadRing, which no Push can mend.
func TestPopRefusesARunawayIndex(t *testing.T) {
	tests := []struct {
		name string
		idx  uint16
		ok   bool
	}{
		{"a full ring", 8, true},
		{"one more than the ring holds", 9, false},
		{"the index moved backwards", 65535, false},
	}
	for _, tt := range tests {
		mem, d := newDriver(t, virtiotest.Config{})
		must(t, d.SetAvailIdx(tt.idx))
		_, err := d.Queue.Pop(mem)
		var ce *virtio.ChainError
		if got := !errors.Is(err, virtio.ErrBadRing); got != tt.ok || errors.As(err, &ce) {
			t.Errorf("%s: Pop = %v, want ok=%v", tt.name, err, tt.ok)
		}
	}
}

// TestPopAndPushOnAnUnusableQueue: a queue that is not ready or was never
// validated gives ErrInvalid, not a panic.
func TestPopAndPushOnAnUnusableQueue(t *testing.T) {
	mem := newGuest(t)
	for _, q := range []virtio.Queue{
		{},
		{Size: 8, Desc: 0x1000, Driver: 0x1080, Device: 0x1100},
		{Size: 6, Desc: 0x1000, Driver: 0x1080, Device: 0x1100, Ready: true},
		{Size: 8, Desc: 0x1000, Driver: 0x1081, Device: 0x1100, Ready: true},
	} {
		if c, err := q.Pop(mem); c != nil || !errors.Is(err, virtio.ErrInvalid) {
			t.Errorf("%+v: Pop = %v, %v; want ErrInvalid", q, c, err)
		}
		if err := q.Push(mem, 0, 0); !errors.Is(err, virtio.ErrInvalid) {
			t.Errorf("%+v: Push = %v; want ErrInvalid", q, err)
		}
	}
	q := virtio.Queue{Size: 8, Desc: ramSize, Driver: ramSize + 0x80, Device: ramSize + 0x100, Ready: true}
	if c, err := q.Pop(mem); c != nil || !errors.Is(err, memory.ErrOutOfRange) {
		t.Errorf("rings outside RAM: Pop = %v, %v; want ErrOutOfRange", c, err)
	}
}

// TestPushFillsTheUsedRing: Push writes {head, written} and then used->idx,
// wrapping around the ring, and refuses what was never popped.
func TestPushFillsTheUsedRing(t *testing.T) {
	mem, d := newDriver(t, virtiotest.Config{Size: 2})
	for i := range 5 {
		head, _, err := d.Add(virtiotest.Writable(8))
		must(t, err)
		c, err := d.Queue.Pop(mem)
		if err != nil || c == nil {
			t.Fatalf("round %d: Pop = %v, %v", i, c, err)
		}
		must(t, d.Queue.Push(mem, c.Head, uint32(i)))
		u, ok, err := d.Used()
		if !ok || err != nil || u.Head != head || u.Len != uint32(i) {
			t.Errorf("round %d: used %+v %v %v, want head %d len %d", i, u, ok, err, head, i)
		}
	}
	if idx, _ := d.UsedIdx(); idx != 5 {
		t.Errorf("used idx %d, want 5", idx)
	}
	if err := d.Queue.Push(mem, 0, 0); err == nil {
		t.Error("Push with no chain outstanding succeeded")
	}
	must(t, d.Offer(0))
	if _, err := d.Queue.Pop(mem); err != nil {
		t.Fatal(err)
	}
	if err := d.Queue.Push(mem, 2, 0); err == nil {
		t.Error("Push of a head outside the queue succeeded")
	}
}

// TestPutShowsNothingUntilPublish: elements Put are in the used ring but
// not in used->idx, so the driver sees none of them and NeedsInterrupt
// counts none; Publish shows them all in one store; a second Publish
// with nothing Put stores nothing.
func TestPutShowsNothingUntilPublish(t *testing.T) {
	mem, d := newDriver(t, virtiotest.Config{Size: 4})
	var heads []uint16
	for range 3 {
		head, _, err := d.Add(virtiotest.Writable(8))
		must(t, err)
		heads = append(heads, head)
		if c, err := d.Queue.Pop(mem); err != nil || c == nil {
			t.Fatalf("Pop = %v, %v", c, err)
		}
	}
	for i, head := range heads {
		must(t, d.Queue.Put(mem, head, uint32(10+i)))
	}
	if idx, _ := d.UsedIdx(); idx != 0 {
		t.Errorf("used idx %d after Put, want 0: the driver would see elements not published", idx)
	}
	if d.Queue.NeedsInterrupt(mem) {
		t.Error("NeedsInterrupt after Put alone: want no interrupt for elements the driver cannot see")
	}
	must(t, d.Queue.Publish(mem))
	if idx, _ := d.UsedIdx(); idx != 3 {
		t.Errorf("used idx %d after Publish, want 3", idx)
	}
	for i, head := range heads {
		u, ok, err := d.Used()
		if !ok || err != nil || u.Head != head || u.Len != uint32(10+i) {
			t.Errorf("used %d: %+v %v %v, want head %d len %d", i, u, ok, err, head, 10+i)
		}
	}
	if !d.Queue.NeedsInterrupt(mem) {
		t.Error("no interrupt for three published elements")
	}
	// A stray used idx, which a Publish that stored would overwrite.
	if _, err := mem.WriteAt([]byte{0x7f, 0}, int64(d.Queue.Device+2)); err != nil {
		t.Fatal(err)
	}
	must(t, d.Queue.Publish(mem))
	if idx, _ := d.UsedIdx(); idx != 0x7f {
		t.Errorf("used idx %d after a Publish with nothing Put, want it left alone", idx)
	}
	if err := d.Queue.Put(mem, heads[0], 0); err == nil {
		t.Error("Put with no chain outstanding succeeded")
	}
}

// TestNeedsInterrupt: without EVENT_IDX the driver's NO_INTERRUPT flag
// decides; with it, whether the used index passed used_event
// (vring_need_event, §2.7.10), modulo 2^16.
func TestNeedsInterrupt(t *testing.T) {
	tests := []struct {
		name      string
		eventIdx  bool
		start     uint16 // the used index before
		pushes    int
		flags     uint16
		usedEvent uint16
		want      bool
	}{
		{name: "no pushes", pushes: 0, want: false},
		{name: "interrupts wanted", pushes: 1, want: true},
		{name: "NO_INTERRUPT", pushes: 1, flags: virtio.AvailNoInterrupt, want: false},
		{name: "event index: used_event reached", eventIdx: true, pushes: 1, usedEvent: 0, want: true},
		{name: "event index: used_event not reached", eventIdx: true, pushes: 1, usedEvent: 1, want: false},
		{name: "event index: used_event passed in a batch", eventIdx: true, pushes: 3, usedEvent: 1, want: true},
		{name: "event index: used_event the last of a batch", eventIdx: true, pushes: 3, usedEvent: 2, want: true},
		{name: "event index: used_event behind the batch", eventIdx: true, start: 4, pushes: 2, usedEvent: 3, want: false},
		{name: "event index: NO_INTERRUPT ignored", eventIdx: true, pushes: 1, flags: virtio.AvailNoInterrupt, want: true},
		{name: "event index: across the wrap", eventIdx: true, start: 65534, pushes: 3, usedEvent: 65535, want: true},
		{name: "event index: across the wrap, not reached", eventIdx: true, start: 65534, pushes: 3, usedEvent: 1, want: false},
	}
	for _, tt := range tests {
		mem, d := newDriver(t, virtiotest.Config{EventIdx: tt.eventIdx})
		advance(t, mem, d, tt.start)
		d.Queue.NeedsInterrupt(mem)
		must(t, d.SetAvailFlags(tt.flags))
		must(t, d.SetUsedEvent(tt.usedEvent))
		for range tt.pushes {
			pushOne(t, mem, d)
		}
		if got := d.Queue.NeedsInterrupt(mem); got != tt.want {
			t.Errorf("%s: NeedsInterrupt = %v, want %v", tt.name, got, tt.want)
		}
		if got := d.Queue.NeedsInterrupt(mem); got {
			t.Errorf("%s: NeedsInterrupt again with nothing pushed = true", tt.name)
		}
	}
}

// advance moves both ring indices to n by passing chains through the queue.
func advance(t *testing.T, mem *memory.Guest, d *virtiotest.Driver, n uint16) {
	t.Helper()
	for i := uint16(0); i != n; i++ {
		pushOne(t, mem, d)
	}
}

// pushOne offers a chain of one empty buffer, pops it and pushes it back.
func pushOne(t *testing.T, mem *memory.Guest, d *virtiotest.Driver) {
	t.Helper()
	if _, _, err := d.Add(virtiotest.Writable(0)); err != nil {
		t.Fatal(err)
	}
	c, err := d.Queue.Pop(mem)
	if err != nil || c == nil {
		t.Fatalf("Pop = %v, %v", c, err)
	}
	must(t, d.Queue.Push(mem, c.Head, 1))
	if _, _, err := d.Used(); err != nil {
		t.Fatal(err)
	}
}

// TestPopPublishesAvailEvent: with EVENT_IDX, Pop on an empty queue asks for
// a notification at the next chain by writing avail_event; without it,
// avail_event is left alone.
func TestPopPublishesAvailEvent(t *testing.T) {
	for _, eventIdx := range []bool{false, true} {
		mem, d := newDriver(t, virtiotest.Config{EventIdx: eventIdx})
		advance(t, mem, d, 3)
		if c, err := d.Queue.Pop(mem); c != nil || err != nil {
			t.Fatalf("Pop = %v, %v", c, err)
		}
		want := uint16(0)
		if eventIdx {
			want = 3
		}
		if got, err := d.AvailEvent(); got != want || err != nil {
			t.Errorf("EventIdx=%v: avail_event %d, %v; want %d", eventIdx, got, err, want)
		}
	}
}

// TestOffered: Offered says whether a chain the driver made available is
// still to be taken — taking none, and with EVENT_IDX leaving avail_event
// where it was (it asks for no notification) — and reports none on a
// queue that is not usable.
func TestOffered(t *testing.T) {
	mem, d := newDriver(t, virtiotest.Config{EventIdx: true})
	if d.Queue.Offered(mem) {
		t.Fatal("an empty queue offers a chain")
	}
	_, _, err := d.Add(virtiotest.Writable(8))
	must(t, err)
	_, _, err = d.Add(virtiotest.Writable(8))
	must(t, err)
	for i := range 2 {
		for range 2 { // asking again takes nothing
			if !d.Queue.Offered(mem) {
				t.Fatalf("with %d of 2 chains taken: none offered", i)
			}
		}
		if c, err := d.Queue.Pop(mem); c == nil || err != nil {
			t.Fatalf("Pop = %v, %v", c, err)
		}
	}
	if d.Queue.Offered(mem) {
		t.Error("with every chain taken, a chain is offered")
	}
	// Pop, finding the queue empty, asks to hear of the third chain
	// (avail_event 2); Offered asked for nothing (it stayed 0).
	if ev, _ := d.AvailEvent(); ev != 0 {
		t.Errorf("avail_event %d after Offered found the queue empty, want 0", ev)
	}
	if c, err := d.Queue.Pop(mem); c != nil || err != nil {
		t.Fatalf("Pop on an empty queue = %v, %v", c, err)
	}
	if ev, _ := d.AvailEvent(); ev != 2 {
		t.Errorf("avail_event %d after Pop found the queue empty, want 2", ev)
	}
	unusable := virtio.Queue{Size: 8, Desc: ramSize, Driver: ramSize + 0x80, Device: ramSize + 0x100, Ready: true}
	if unusable.Offered(mem) {
		t.Error("a queue whose rings lie outside RAM offers a chain")
	}
}

// TestChainWriter: the writer fills the device-writable buffers in order,
// counts what it wrote and reports a short write.
func TestChainWriter(t *testing.T) {
	a, b := make([]byte, 3), make([]byte, 4)
	w := (&virtio.Chain{Writable: [][]byte{a, b}}).Writer()
	if n, err := w.Write([]byte("abcde")); n != 5 || err != nil {
		t.Errorf("Write = %d, %v", n, err)
	}
	if n, err := w.Write([]byte("fgh")); n != 2 || !errors.Is(err, io.ErrShortWrite) {
		t.Errorf("Write past the end = %d, %v; want 2, ErrShortWrite", n, err)
	}
	if string(a)+string(b) != "abcdefg" || w.Written() != 7 {
		t.Errorf("buffers %q %q, written %d", a, b, w.Written())
	}
}

// TestReset: a reset queue is unconfigured and unusable.
func TestReset(t *testing.T) {
	mem, d := newDriver(t, virtiotest.Config{EventIdx: true})
	advance(t, mem, d, 2)
	d.Queue.Reset()
	if *d.Queue != (virtio.Queue{}) {
		t.Errorf("after Reset: %+v", *d.Queue)
	}
	if _, err := d.Queue.Pop(mem); !errors.Is(err, virtio.ErrInvalid) {
		t.Errorf("Pop after Reset = %v, want ErrInvalid", err)
	}
}
