package blk

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"ember/internal/threadname"
	"ember/memory"
	"ember/virtio"
	"ember/virtio/virtiotest"
)

// rig is a disk on a temporary image, activated with one queue a test
// driver fills.
type rig struct {
	t     *testing.T
	disk  *Disk
	drv   *virtiotest.Driver
	path  string
	irqs  chan int
	image []byte
}

// imageSize is the rig's image: longer than maxNowLen, so a long read fits.
const imageSize = 256 << 10

func newRig(t *testing.T, readOnly bool) *rig {
	t.Helper()
	return newRigCfg(t, Config{ReadOnly: readOnly})
}

// newRigCfg is newRig for a disk configured as cfg (its Path and Serial are
// the rig's); setup, if any, sees the disk before it is activated.
func newRigCfg(t *testing.T, cfg Config, setup ...func(*Disk)) *rig {
	t.Helper()
	image := make([]byte, imageSize)
	for i := range image {
		image[i] = byte(i / SectorSize)
	}
	path := filepath.Join(t.TempDir(), "disk.img")
	if err := os.WriteFile(path, image, 0o644); err != nil {
		t.Fatal(err)
	}
	return newRigAt(t, cfg, path, image, setup...)
}

// newRigAt is newRigCfg for the image file at path, whose disk reads as
// image.
func newRigAt(t *testing.T, cfg Config, path string, image []byte, setup ...func(*Disk)) *rig {
	t.Helper()
	mem, err := memory.New([]memory.Range{{GPA: 0, Size: 1 << 20}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { mem.Close() })
	cfg.Path, cfg.Serial = path, "ember-disk-1"
	d, err := Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	drv, err := virtiotest.New(mem, virtiotest.Config{Base: 0x1000, Size: 16, EventIdx: true, IndirectDesc: true})
	if err != nil {
		t.Fatal(err)
	}
	r := &rig{t: t, disk: d, drv: drv, path: path, irqs: make(chan int, 64), image: image}
	for _, f := range setup {
		f(d)
	}
	if err := d.Activate(mem, virtio.FeatureVersion1|virtio.FeatureEventIdx, []*virtio.Queue{drv.Queue}, func(q int) { r.irqs <- q }); err != nil {
		t.Fatal(err)
	}
	return r
}

// header is a request header.
func header(typ uint32, sector uint64) []byte {
	h := make([]byte, headerSize)
	binary.LittleEndian.PutUint32(h, typ)
	binary.LittleEndian.PutUint64(h[8:], sector)
	return h
}

// seg is a DISCARD or WRITE_ZEROES segment: n sectors from sector.
func seg(sector uint64, n, flags uint32) []byte {
	b := make([]byte, segmentSize)
	binary.LittleEndian.PutUint64(b, sector)
	binary.LittleEndian.PutUint32(b[8:], n)
	binary.LittleEndian.PutUint32(b[12:], flags)
	return b
}

// do offers a request, waits for it and returns the used length and the
// bytes of the writable buffers.
func (r *rig) do(bufs ...virtiotest.Buffer) (uint32, [][]byte) {
	r.t.Helper()
	head, addrs, err := r.drv.Add(bufs...)
	if err != nil {
		r.t.Fatal(err)
	}
	r.disk.Notify(0)
	u := r.nextUsed()
	if u.Head != head {
		r.t.Fatalf("used head %d, want %d", u.Head, head)
	}
	var out [][]byte
	for i, b := range bufs {
		if b.Writable {
			data, _ := r.drv.Read(addrs[i], int(b.Len))
			out = append(out, data)
		}
	}
	return u.Len, out
}

// nextUsed waits for the next used element.
func (r *rig) nextUsed() virtiotest.Used {
	r.t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		u, ok, err := r.drv.Used()
		if err != nil {
			r.t.Fatal(err)
		}
		if ok {
			return u
		}
		if time.Now().After(deadline) {
			r.t.Fatal("no request completed")
		}
		time.Sleep(time.Millisecond)
	}
}

func status(out [][]byte) byte { last := out[len(out)-1]; return last[len(last)-1] }

// TestRequests: each request type against the image, with the status and
// length the driver sees, and what the image holds afterwards, through the
// page cache and with cache=none (O_DIRECT).
func TestRequests(t *testing.T) {
	rd, wr := virtiotest.Readable, virtiotest.Writable
	data := bytes.Repeat([]byte{0xab}, 2*SectorSize)
	for _, tt := range []struct {
		name     string
		readOnly bool
		bufs     []virtiotest.Buffer
		wantLen  uint32
		status   byte
		check    func(t *testing.T, r *rig, out [][]byte)
	}{
		{"read two sectors", false, []virtiotest.Buffer{rd(header(typeIn, 3)), wr(2 * SectorSize), wr(1)}, 2*SectorSize + 1, statusOK,
			func(t *testing.T, r *rig, out [][]byte) {
				if !bytes.Equal(out[0], r.image[3*SectorSize:5*SectorSize]) {
					t.Error("read data differs from the image")
				}
			}},
		{"read data and status in one buffer", false, []virtiotest.Buffer{rd(header(typeIn, 0)), wr(SectorSize + 1)}, SectorSize + 1, statusOK, nil},
		{"read past the end", false, []virtiotest.Buffer{rd(header(typeIn, imageSize/SectorSize-1)), wr(2 * SectorSize), wr(1)}, 1, statusIOErr, nil},
		{"read of a part sector", false, []virtiotest.Buffer{rd(header(typeIn, 0)), wr(100), wr(1)}, 1, statusIOErr, nil},
		{"read at a huge sector", false, []virtiotest.Buffer{rd(header(typeIn, 1<<62)), wr(SectorSize), wr(1)}, 1, statusIOErr, nil},
		{"write", false, []virtiotest.Buffer{rd(header(typeOut, 10)), rd(data), wr(1)}, 1, statusOK,
			func(t *testing.T, r *rig, _ [][]byte) {
				got, _ := os.ReadFile(r.path)
				if !bytes.Equal(got[10*SectorSize:12*SectorSize], data) || got[12*SectorSize] != 12 {
					t.Error("the image does not hold the write")
				}
			}},
		{"write to a read-only disk", true, []virtiotest.Buffer{rd(header(typeOut, 10)), rd(data), wr(1)}, 1, statusIOErr, nil},
		{"flush", false, []virtiotest.Buffer{rd(header(typeFlush, 0)), wr(1)}, 1, statusOK, nil},
		{"get id", false, []virtiotest.Buffer{rd(header(typeGetID, 0)), wr(idLen), wr(1)}, idLen + 1, statusOK,
			func(t *testing.T, _ *rig, out [][]byte) {
				if string(bytes.TrimRight(out[0], "\x00")) != "ember-disk-1" {
					t.Errorf("id %q", out[0])
				}
			}},
		{"discard", false, []virtiotest.Buffer{rd(header(typeDiscard, 0)), rd(seg(4, 4, 0)), wr(1)}, 1, statusOK,
			func(t *testing.T, r *rig, _ [][]byte) {
				got, _ := os.ReadFile(r.path)
				if !bytes.Equal(got[4*SectorSize:8*SectorSize], make([]byte, 4*SectorSize)) || got[8*SectorSize] != 8 {
					t.Error("discarded sectors do not read as zeros, or more went")
				}
			}},
		{"discard with the unmap flag", false, []virtiotest.Buffer{rd(header(typeDiscard, 0)), rd(seg(4, 4, flagUnmap)), wr(1)}, 1, statusUnsupp, nil},
		{"write zeroes", false, []virtiotest.Buffer{rd(header(typeWriteZeroes, 0)), rd(seg(20, 2, 0)), wr(1)}, 1, statusOK,
			func(t *testing.T, r *rig, _ [][]byte) {
				got, _ := os.ReadFile(r.path)
				if !bytes.Equal(got[20*SectorSize:22*SectorSize], make([]byte, 2*SectorSize)) || got[22*SectorSize] != 22 {
					t.Error("zeroed sectors wrong")
				}
			}},
		{"write zeroes past the end", false, []virtiotest.Buffer{rd(header(typeWriteZeroes, 0)), rd(seg(imageSize/SectorSize-1, 2, 0)), wr(1)}, 1, statusIOErr, nil},
		{"unknown type", false, []virtiotest.Buffer{rd(header(99, 0)), wr(1)}, 1, statusUnsupp, nil},
		{"header cut short", false, []virtiotest.Buffer{rd(make([]byte, 8)), wr(1)}, 1, statusIOErr, nil},
	} {
		for _, direct := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/direct=%v", tt.name, direct), func(t *testing.T) {
				r := newRigCfg(t, Config{ReadOnly: tt.readOnly, Direct: direct})
				n, out := r.do(tt.bufs...)
				if n != tt.wantLen || status(out) != tt.status {
					t.Fatalf("used length %d, status %d; want %d, %d", n, status(out), tt.wantLen, tt.status)
				}
				if tt.check != nil {
					tt.check(t, r, out)
				}
			})
		}
	}
}

// TestRequestWithoutStatusIsDropped: a chain with no writable byte cannot
// be answered; it is returned with nothing written, and the queue goes on.
func TestRequestWithoutStatusIsDropped(t *testing.T) {
	r := newRig(t, false)
	if n, _ := r.do(virtiotest.Readable(header(typeFlush, 0))); n != 0 {
		t.Errorf("used length %d, want 0", n)
	}
	if n, out := r.do(virtiotest.Readable(header(typeFlush, 0)), virtiotest.Writable(1)); n != 1 || status(out) != statusOK {
		t.Errorf("next request: %d, %d", n, status(out))
	}
}

// TestConfigSpace: capacity, block size and segment limits as a driver reads
// them; features as the disk was opened.
func TestConfigSpace(t *testing.T) {
	r := newRig(t, true)
	var c [configSize]byte
	r.disk.ReadConfig(0, c[:])
	if got := binary.LittleEndian.Uint64(c[cfgCapacity:]); got != imageSize/SectorSize {
		t.Errorf("capacity %d sectors, want %d", got, imageSize/SectorSize)
	}
	if got := binary.LittleEndian.Uint32(c[cfgBlkSize:]); got != SectorSize {
		t.Errorf("blk_size %d", got)
	}
	if f := r.disk.Features(); f&featureRO == 0 || f&featureFlush == 0 || f&featureDiscard != 0 {
		t.Errorf("features %#x of a read-only disk", f)
	}
}

// events records what a device reports to its transport.
type events struct{ reset chan error }

func (e events) NeedsReset(err error) { e.reset <- err }
func (e events) ConfigChanged()       {}

// TestBrokenRingNeedsReset: a driver that runs the available index more
// than a queue's worth ahead breaks the queue; the disk stops serving it and
// asks the transport for DEVICE_NEEDS_RESET.
func TestBrokenRingNeedsReset(t *testing.T) {
	r := newRig(t, false)
	ev := events{reset: make(chan error, 1)}
	r.disk.SetEvents(ev)
	if err := r.drv.SetAvailIdx(1000); err != nil {
		t.Fatal(err)
	}
	r.disk.Notify(0)
	select {
	case err := <-ev.reset:
		if !errors.Is(err, virtio.ErrBadRing) {
			t.Errorf("reported %v, want ErrBadRing", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the disk never asked for a reset")
	}
}

// TestHugeDiscardAllocatesNothing: a DISCARD whose segment list is far over
// the limit (a chain may describe 4 GiB) is refused before the disk copies
// it anywhere.
func TestHugeDiscardAllocatesNothing(t *testing.T) {
	r := newRig(t, false)
	big := make([]byte, 64<<20)
	c := &virtio.Chain{Readable: [][]byte{header(typeDiscard, 0), big}, Writable: [][]byte{{0xff}}}
	w := &worker{d: r.disk, wait: true}
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	n, _ := w.serve(c)
	runtime.ReadMemStats(&after)
	if n != 1 || c.Writable[0][0] != statusUnsupp {
		t.Errorf("used %d, status %d; want 1, UNSUPP", n, c.Writable[0][0])
	}
	if got := after.TotalAlloc - before.TotalAlloc; got > 1<<20 {
		t.Errorf("serving the request allocated %d bytes", got)
	}
}

// TestASlowRequestDoesNotHoldUpTheNext: a request that may wait for the
// host's disk is served beside the next, so one the image is slow to
// answer does not delay a read offered after it, and both complete — for
// each kind of request that may wait, and for a long one from memory with
// a request behind it (alone, the thread would copy it itself).
func TestASlowRequestDoesNotHoldUpTheNext(t *testing.T) {
	rd, wr := virtiotest.Readable, virtiotest.Writable
	tests := []struct {
		name string
		mode nowMode
		// slow is the request; it is slow where it reaches the image at
		// sector 0 with an op other than opReadNow.
		slow   []virtiotest.Buffer
		used   uint32 // bytes the slow request writes
		behind bool   // a short read is offered behind it, with it
	}{
		{"a read the page cache does not hold", nowNoWait, []virtiotest.Buffer{rd(header(typeIn, 0)), wr(SectorSize), wr(1)}, SectorSize + 1, false},
		{"a read where the file system cannot tell", nowNever, []virtiotest.Buffer{rd(header(typeIn, 0)), wr(SectorSize), wr(1)}, SectorSize + 1, false},
		{"a read longer than maxNowLen from memory, a request behind it", nowMemory, []virtiotest.Buffer{rd(header(typeIn, 0)), wr(2 * maxNowLen), wr(1)}, 2*maxNowLen + 1, true},
		{"a write", nowNoWait, []virtiotest.Buffer{rd(header(typeOut, 0)), rd(make([]byte, SectorSize)), wr(1)}, 1, false},
		{"a write longer than maxNowLen to memory, a request behind it", nowMemory, []virtiotest.Buffer{rd(header(typeOut, 0)), rd(make([]byte, 2*maxNowLen)), wr(1)}, 1, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			entered, release := make(chan struct{}), make(chan struct{})
			var releaseOnce sync.Once
			free := func() { releaseOnce.Do(func() { close(release) }) }
			r := newRigCfg(t, Config{}, func(d *Disk) {
				d.now.set(tt.mode) // whatever file system holds the test's image
				transfer := d.xfer
				d.xfer = func(bufs [][]byte, off int64, op xferOp) (int, error) {
					switch {
					case off == 0 && op == opReadNow:
						return 0, unix.EAGAIN // not in the page cache: the read must wait
					case off == 0:
						close(entered)
						<-release
					}
					return transfer(bufs, off, op)
				}
			})
			t.Cleanup(free) // before the disk's Close, which waits for the slow request
			slow, _, err := r.drv.Add(tt.slow...)
			if err != nil {
				t.Fatal(err)
			}
			if tt.behind {
				behind, _, err := r.drv.Add(rd(header(typeIn, 1)), wr(SectorSize), wr(1))
				if err != nil {
					t.Fatal(err)
				}
				r.disk.Notify(0)
				<-entered
				if u := r.nextUsed(); u.Head != behind {
					t.Fatalf("used %+v first, want the request behind the slow one (head %d)", u, behind)
				}
			} else {
				r.disk.Notify(0)
				<-entered
			}
			n, out := r.do(rd(header(typeIn, 3)), wr(SectorSize), wr(1))
			if n != SectorSize+1 || status(out) != statusOK || !bytes.Equal(out[0], r.image[3*SectorSize:4*SectorSize]) {
				t.Fatalf("the read behind a slow request: used %d, status %d", n, status(out))
			}
			free()
			deadline := time.Now().Add(5 * time.Second)
			for {
				u, ok, err := r.drv.Used()
				if err != nil {
					t.Fatal(err)
				}
				if ok {
					if u.Head != slow || u.Len != tt.used {
						t.Fatalf("used %+v, want the slow request (head %d) with %d bytes", u, slow, tt.used)
					}
					return
				}
				if time.Now().After(deadline) {
					t.Fatal("the slow request never completed")
				}
				time.Sleep(time.Millisecond)
			}
		})
	}
}

// TestRequestsThatWaitAreServedSideBySide: reads that each wait for the
// host's disk are all in the host's hands at once (the disk's thread hands
// each to a goroutine of its own), all complete, and closing the disk
// afterwards ends the thread and every goroutine the queue started.
func TestRequestsThatWaitAreServedSideBySide(t *testing.T) {
	const reads = 5 // three descriptors each, in a queue of 16
	before := runtime.NumGoroutine()
	var inside atomic.Int32
	all, release := make(chan struct{}), make(chan struct{})
	r := newRigCfg(t, Config{}, func(d *Disk) {
		d.now.set(nowNever) // every read may wait
		transfer := d.xfer
		d.xfer = func(bufs [][]byte, off int64, op xferOp) (int, error) {
			if inside.Add(1) == reads {
				close(all)
			}
			<-release
			return transfer(bufs, off, op)
		}
	})
	rd, wr := virtiotest.Readable, virtiotest.Writable
	heads := map[uint16]uint64{}
	for i := range uint64(reads) {
		head, _, err := r.drv.Add(rd(header(typeIn, i)), wr(SectorSize), wr(1))
		if err != nil {
			t.Fatal(err)
		}
		heads[head] = i
	}
	r.disk.Notify(0)
	select {
	case <-all:
	case <-time.After(5 * time.Second):
		t.Fatalf("%d of %d waiting reads in the host's hands at once", inside.Load(), reads)
	}
	close(release)
	deadline := time.Now().Add(5 * time.Second)
	for len(heads) > 0 {
		u, ok, err := r.drv.Used()
		switch {
		case err != nil:
			t.Fatal(err)
		case ok:
			if _, known := heads[u.Head]; !known || u.Len != SectorSize+1 {
				t.Fatalf("used %+v: not one of the reads, or not %d bytes", u, SectorSize+1)
			}
			delete(heads, u.Head)
		case time.Now().After(deadline):
			t.Fatalf("%d reads never completed", len(heads))
		default:
			time.Sleep(time.Millisecond)
		}
	}
	r.disk.Close()
	for deadline := time.Now().Add(5 * time.Second); runtime.NumGoroutine() > before; {
		if time.Now().After(deadline) {
			t.Fatalf("%d goroutines after the disk closed, %d before it opened", runtime.NumGoroutine(), before)
		}
		time.Sleep(time.Millisecond)
	}
}

// TestRequestsThatCannotWaitAreServedOnTheThread: a request that cannot
// wait for the host's disk — a read from memory, a short write to memory,
// GET_ID, a read past the end (refused: it makes no I/O, whatever the
// guest asks for), a read or write of memory longer than maxNowLen with
// no request behind it — is served by the disk's thread where it is
// taken, and no goroutine is started for it.
func TestRequestsThatCannotWaitAreServedOnTheThread(t *testing.T) {
	rd, wr := virtiotest.Readable, virtiotest.Writable
	tests := []struct {
		name   string
		req    []virtiotest.Buffer
		used   uint32
		status byte
	}{
		{"a read from memory", []virtiotest.Buffer{rd(header(typeIn, 0)), wr(SectorSize), wr(1)}, SectorSize + 1, statusOK},
		{"a short write to memory", []virtiotest.Buffer{rd(header(typeOut, 1)), rd(make([]byte, SectorSize)), wr(1)}, 1, statusOK},
		{"GET_ID", []virtiotest.Buffer{rd(header(typeGetID, 0)), wr(idLen), wr(1)}, idLen + 1, statusOK},
		{"a read past the end", []virtiotest.Buffer{rd(header(typeIn, imageSize/SectorSize-1)), wr(2 * SectorSize), wr(1)}, 1, statusIOErr},
		{"a long read from memory, nothing behind it", []virtiotest.Buffer{rd(header(typeIn, 0)), wr(imageSize), wr(1)}, imageSize + 1, statusOK},
		{"a long write to memory, nothing behind it", []virtiotest.Buffer{rd(header(typeOut, 0)), rd(make([]byte, imageSize)), wr(1)}, 1, statusOK},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// The image's file system taken for memory, whatever holds it.
			r := newRigCfg(t, Config{}, func(d *Disk) { d.now.set(nowMemory) })
			for range 3 {
				if n, out := r.do(tt.req...); n != tt.used || status(out) != tt.status {
					t.Fatalf("used %d, status %d; want %d, %d", n, status(out), tt.used, tt.status)
				}
			}
			r.disk.mu.Lock()
			started := r.disk.queues[0].started.Load()
			r.disk.mu.Unlock()
			if started != 0 {
				t.Errorf("%d goroutines started on the queue, want none", started)
			}
		})
	}
}

// TestTheDiskHasOneNamedThread: an active disk serves its queues on one
// thread of its own, named ThreadName (as ps -T shows it), whatever its
// queue count; Close ends it.
func TestTheDiskHasOneNamedThread(t *testing.T) {
	r := newRig(t, false)
	waitFor := func(what string, want int) {
		t.Helper()
		for deadline := time.Now().Add(5 * time.Second); threadname.Holders(ThreadName) != want; {
			if time.Now().After(deadline) {
				t.Fatalf("%s: %d threads named %s, want %d", what, threadname.Holders(ThreadName), ThreadName, want)
			}
			time.Sleep(time.Millisecond)
		}
	}
	waitFor("active", 1)
	rd, wr := virtiotest.Readable, virtiotest.Writable
	if n, out := r.do(rd(header(typeIn, 0)), wr(SectorSize), wr(1)); n != SectorSize+1 || status(out) != statusOK {
		t.Fatalf("read: used %d, status %d", n, status(out))
	}
	r.disk.Close()
	waitFor("closed", 0)
}
