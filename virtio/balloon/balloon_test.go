package balloon_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"log/slog"
	"math"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"ember/internal/testlog"
	"ember/memory"
	"ember/virtio"
	"ember/virtio/balloon"
	"ember/virtio/virtiotest"
)

// wait bounds every wait for the device: long enough for a loaded machine,
// short enough to fail a stuck test.
const wait = 10 * time.Second

// Guest RAM of a fixture: the pages the balloon takes in one region at 0,
// a hole, then one region per queue, so the test drivers' buffer
// allocators cannot run into each other or into the data pages.
const (
	dataSize  = 1 << 20 // pages 0 to 255
	queueBase = 4 << 20 // queue i's region: queueBase + i MiB, 1 MiB each

	holePFN   = 0x100  // the first page of the hole after the data region
	beyondPFN = 0x1000 // 16 MiB: past all RAM
)

// events records what the device tells its transport.
type events struct {
	mu      sync.Mutex
	resets  []error
	changes int
	reset   chan struct{} // one pending NeedsReset
}

func (e *events) NeedsReset(err error) {
	e.mu.Lock()
	e.resets = append(e.resets, err)
	e.mu.Unlock()
	select {
	case e.reset <- struct{}{}:
	default:
	}
}

func (e *events) ConfigChanged() { e.mu.Lock(); e.changes++; e.mu.Unlock() }

// fixture is a balloon whose queues virtiotest.Drivers play.
type fixture struct {
	mem    *memory.Guest
	dev    *balloon.Device
	drv    []*virtiotest.Driver // one per queue the device has
	irq    []chan struct{}      // one pending interrupt per queue, as a line holds it
	events *events
	logs   testlog.Records
}

// newFixture returns a balloon configured with cfg (its Logger replaced by
// the fixture's) and drivers for its queues, not yet activated; shared
// backs guest RAM with memfds. The device is reset when the test ends.
func newFixture(t *testing.T, cfg balloon.Config, shared bool) *fixture {
	t.Helper()
	newMem := memory.New
	if shared {
		newMem = memory.NewShared
	}
	ranges := []memory.Range{{GPA: 0, Size: dataSize}}
	for i := range 3 {
		ranges = append(ranges, memory.Range{GPA: queueBase + uint64(i)<<20, Size: 1 << 20})
	}
	mem, err := newMem(ranges)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { mem.Close() })
	f := &fixture{mem: mem, events: &events{reset: make(chan struct{}, 1)}, logs: make(testlog.Records, 64)}
	cfg.Logger = slog.New(f.logs)
	if f.dev, err = balloon.New(cfg); err != nil {
		t.Fatal(err)
	}
	f.dev.SetEvents(f.events)
	for i := range f.dev.QueueSizes() {
		drv, err := virtiotest.New(mem, virtiotest.Config{Base: queueBase + uint64(i)<<20, Size: balloon.QueueSize})
		if err != nil {
			t.Fatal(err)
		}
		f.drv = append(f.drv, drv)
		f.irq = append(f.irq, make(chan struct{}, 1))
	}
	t.Cleanup(f.dev.Reset)
	return f
}

// activate activates the device with every queue enabled and the features
// it offers negotiated, as Linux does.
func (f *fixture) activate(t *testing.T) {
	t.Helper()
	f.activateWith(t, virtio.FeatureVersion1|f.dev.Features())
}

// activateWith activates the device with features negotiated.
func (f *fixture) activateWith(t *testing.T, features uint64) {
	t.Helper()
	queues := make([]*virtio.Queue, len(f.drv))
	for i, d := range f.drv {
		queues[i] = d.Queue
	}
	interrupt := func(queue int) {
		if queue < 0 || queue >= len(f.irq) {
			t.Errorf("interrupt for queue %d", queue)
			return
		}
		select {
		case f.irq[queue] <- struct{}{}:
		default:
		}
	}
	if err := f.dev.Activate(f.mem, features, queues, interrupt); err != nil {
		t.Fatal(err)
	}
}

// add offers a chain on queue and notifies the device if the driver must.
func (f *fixture) add(t *testing.T, queue int, bufs ...virtiotest.Buffer) uint16 {
	t.Helper()
	drv := f.drv[queue]
	old := drv.AvailIdx()
	head, _, err := drv.Add(bufs...)
	if err != nil {
		t.Fatal(err)
	}
	if notify, err := drv.NeedsNotify(old); err != nil {
		t.Fatal(err)
	} else if notify {
		f.dev.Notify(queue)
	}
	return head
}

// used returns the next used element of queue, waiting for an interrupt
// when there is none yet.
func (f *fixture) used(t *testing.T, queue int) virtiotest.Used {
	t.Helper()
	drv, deadline := f.drv[queue], time.After(wait)
	for {
		if u, ok, err := drv.Used(); err != nil || ok {
			if err != nil {
				t.Fatal(err)
			}
			return u
		}
		if err := drv.ArmInterrupt(); err != nil {
			t.Fatal(err)
		}
		if u, ok, err := drv.Used(); err != nil || ok {
			if err != nil {
				t.Fatal(err)
			}
			return u
		}
		select {
		case <-f.irq[queue]:
		case <-deadline:
			t.Fatalf("queue %d: no used buffer after %v", queue, wait)
		}
	}
}

// served adds a chain to queue and waits for it to come back, with nothing
// written.
func (f *fixture) served(t *testing.T, queue int, bufs ...virtiotest.Buffer) {
	t.Helper()
	head := f.add(t, queue, bufs...)
	if u := f.used(t, queue); u.Head != head || u.Len != 0 {
		t.Fatalf("queue %d: used %+v, want head %d with 0 bytes", queue, u, head)
	}
}

// log waits for the device to log a record at level or above.
func (f *fixture) log(t *testing.T, level slog.Level) slog.Record {
	t.Helper()
	rec, ok := f.logs.Next(level, wait)
	if !ok {
		t.Fatalf("nothing logged at %v after %v", level, wait)
	}
	return rec
}

// fillData writes page k of the data region full of byte k+1.
func (f *fixture) fillData(t *testing.T) {
	t.Helper()
	for k := range dataSize / balloon.PageSize {
		if _, err := f.mem.WriteAt(bytes.Repeat([]byte{byte(k + 1)}, balloon.PageSize), int64(k*balloon.PageSize)); err != nil {
			t.Fatal(err)
		}
	}
}

// checkData checks that the pages of released read as zeros and every
// other data page as fillData left it.
func (f *fixture) checkData(t *testing.T, released ...uint32) {
	t.Helper()
	gone := map[uint32]bool{}
	for _, p := range released {
		gone[p] = true
	}
	page := make([]byte, balloon.PageSize)
	for k := range uint32(dataSize / balloon.PageSize) {
		if _, err := f.mem.ReadAt(page, int64(k)*balloon.PageSize); err != nil {
			t.Fatal(err)
		}
		want := byte(k + 1)
		if gone[k] {
			want = 0
		}
		if n := bytes.Count(page, []byte{want}); n != len(page) {
			t.Errorf("page %d: %d of %d bytes are %#x (first %#x); want all", k, n, len(page), want, page[0])
		}
	}
}

// pfns encodes page frame numbers as a driver puts them in a buffer.
func pfns(p ...uint32) []byte {
	b := make([]byte, 4*len(p))
	for i, x := range p {
		binary.LittleEndian.PutUint32(b[4*i:], x)
	}
	return b
}

// stat is one statistics entry as a driver writes it.
type stat struct {
	tag uint16
	val uint64
}

// stats encodes statistics entries as a driver puts them in a buffer.
func stats(entries ...stat) []byte {
	b := make([]byte, 10*len(entries))
	for i, e := range entries {
		binary.LittleEndian.PutUint16(b[10*i:], e.tag)
		binary.LittleEndian.PutUint64(b[10*i+2:], e.val)
	}
	return b
}

// TestInflateReleasesPages: the pages an inflate chain names, in one
// buffer or several, in runs or scattered, are released and read back as
// zeros, whatever backs guest RAM; pages deflated afterwards are usable
// again; the other pages keep their data.
func TestInflateReleasesPages(t *testing.T) {
	for _, tt := range []struct {
		name   string
		shared bool
	}{{"anonymous", false}, {"memfd", true}} {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, balloon.Config{}, tt.shared)
			f.fillData(t)
			f.activate(t)
			f.served(t, balloon.InflateQueue, virtiotest.Readable(pfns(3, 4, 5, 9)))
			f.served(t, balloon.InflateQueue, virtiotest.Readable(pfns(200, 17)), virtiotest.Readable(pfns(18, 255)))
			released := []uint32{3, 4, 5, 9, 17, 18, 200, 255}
			f.checkData(t, released...)
			if c := f.dev.Counters(); c.InflatedPages != 8 || c.BadPFNs != 0 || c.BadChains != 0 {
				t.Errorf("counters %+v, want 8 pages inflated and nothing bad", c)
			}
			f.served(t, balloon.DeflateQueue, virtiotest.Readable(pfns(3, 4, 5, 9)))
			if _, err := f.mem.WriteAt([]byte("mine again"), 3*balloon.PageSize); err != nil {
				t.Fatal(err)
			}
			got := make([]byte, 10)
			if _, err := f.mem.ReadAt(got, 3*balloon.PageSize); err != nil || string(got) != "mine again" {
				t.Errorf("a deflated page reads %q, %v", got, err)
			}
			if c := f.dev.Counters(); c.DeflatedPages != 4 {
				t.Errorf("counters %+v, want 4 pages deflated", c)
			}
		})
	}
}

// TestPFNsOutsideRAM: a page frame number outside guest RAM, in the hole
// between regions or past its end, is a logged device error and is
// skipped; the chain's other pages are served and the queue goes on.
func TestPFNsOutsideRAM(t *testing.T) {
	for _, tt := range []struct {
		name     string
		queue    int
		pfns     []uint32
		released []uint32
	}{
		{"inflate, in the hole", balloon.InflateQueue, []uint32{7, holePFN, 8}, []uint32{7, 8}},
		{"inflate, past RAM", balloon.InflateQueue, []uint32{beyondPFN, 11}, []uint32{11}},
		{"inflate, the largest number", balloon.InflateQueue, []uint32{math.MaxUint32, 12}, []uint32{12}},
		{"inflate, just past the last region", balloon.InflateQueue,
			[]uint32{(queueBase + 3<<20) / balloon.PageSize, 13}, []uint32{13}},
		{"deflate, in the hole", balloon.DeflateQueue, []uint32{holePFN + 1}, nil},
		{"deflate, the largest number", balloon.DeflateQueue, []uint32{math.MaxUint32}, nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, balloon.Config{}, false)
			f.fillData(t)
			f.activate(t)
			f.served(t, tt.queue, virtiotest.Readable(pfns(tt.pfns...)))
			if r := f.log(t, slog.LevelError); !strings.Contains(r.Message, "outside guest RAM") {
				t.Errorf("logged %q", r.Message)
			}
			f.checkData(t, tt.released...)
			if c := f.dev.Counters(); c.BadPFNs != 1 {
				t.Errorf("counters %+v, want 1 bad page frame number", c)
			}
			f.served(t, balloon.InflateQueue, virtiotest.Readable(pfns(100)))
			f.checkData(t, append(tt.released, 100)...)
		})
	}
}

// TestMalformedChains: a chain that is not an array of page frame numbers
// in device-readable buffers is logged, counted and returned with nothing
// done: none of the pages it names is released. A chain Pop refuses is
// returned too. The queue goes on either way.
func TestMalformedChains(t *testing.T) {
	for _, tt := range []struct {
		name  string
		queue int
		bufs  []virtiotest.Buffer
	}{
		{"inflate, a writable buffer only", balloon.InflateQueue, []virtiotest.Buffer{virtiotest.Writable(8)}},
		{"inflate, page numbers then a writable buffer", balloon.InflateQueue,
			[]virtiotest.Buffer{virtiotest.Readable(pfns(20, 21)), virtiotest.Writable(4)}},
		{"inflate, 6 bytes", balloon.InflateQueue, []virtiotest.Buffer{virtiotest.Readable(pfns(20, 21)[:6])}},
		{"inflate, 1 byte", balloon.InflateQueue, []virtiotest.Buffer{virtiotest.Readable([]byte{20})}},
		{"inflate, odd lengths in two buffers", balloon.InflateQueue,
			[]virtiotest.Buffer{virtiotest.Readable(pfns(20, 21)[:5]), virtiotest.Readable(pfns(22)[:2])}},
		{"deflate, a writable buffer", balloon.DeflateQueue,
			[]virtiotest.Buffer{virtiotest.Readable(pfns(20)), virtiotest.Writable(4)}},
		{"deflate, 3 bytes", balloon.DeflateQueue, []virtiotest.Buffer{virtiotest.Readable(pfns(20)[:3])}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, balloon.Config{}, false)
			f.fillData(t)
			f.activate(t)
			f.served(t, tt.queue, tt.bufs...)
			if r := f.log(t, slog.LevelWarn); !strings.Contains(r.Message, "returned untouched") {
				t.Errorf("logged %q", r.Message)
			}
			f.checkData(t)
			if c := f.dev.Counters(); c.BadChains != 1 || c.InflatedPages != 0 || c.DeflatedPages != 0 {
				t.Errorf("counters %+v, want 1 bad chain and no pages", c)
			}
			f.served(t, balloon.InflateQueue, virtiotest.Readable(pfns(30)))
			f.checkData(t, 30)
		})
	}
	t.Run("a buffer outside RAM", func(t *testing.T) {
		f := newFixture(t, balloon.Config{}, false)
		f.activate(t)
		drv := f.drv[balloon.InflateQueue]
		if err := drv.SetDesc(5, virtiotest.Desc{Addr: holePFN * balloon.PageSize, Len: 8}); err != nil {
			t.Fatal(err)
		}
		if err := drv.Offer(5); err != nil {
			t.Fatal(err)
		}
		f.dev.Notify(balloon.InflateQueue)
		if u := f.used(t, balloon.InflateQueue); u.Head != 5 || u.Len != 0 {
			t.Errorf("used %+v, want head 5 with 0 bytes", u)
		}
		if r := f.log(t, slog.LevelWarn); !strings.Contains(r.Message, "malformed descriptor chain") {
			t.Errorf("logged %q", r.Message)
		}
	})
}

// TestBrokenRingNeedsReset: an available index run far ahead of the ring
// breaks the queue: the device tells the transport it needs a reset and
// serves nothing more until then.
func TestBrokenRingNeedsReset(t *testing.T) {
	f := newFixture(t, balloon.Config{}, false)
	f.fillData(t)
	f.activate(t)
	if err := f.drv[balloon.InflateQueue].SetAvailIdx(balloon.QueueSize + 5); err != nil {
		t.Fatal(err)
	}
	f.dev.Notify(balloon.InflateQueue)
	select {
	case <-f.events.reset:
	case <-time.After(wait):
		t.Fatal("no NeedsReset")
	}
	f.add(t, balloon.DeflateQueue, virtiotest.Readable(pfns(1)))
	f.dev.Reset() // waits for the worker: whatever it would do is done
	if idx, err := f.drv[balloon.DeflateQueue].UsedIdx(); idx != 0 || err != nil {
		t.Errorf("deflate used idx %d, %v after the device broke; want 0", idx, err)
	}
}

// TestStatsRoundTrip: the driver primes the statistics queue before
// DRIVER_OK, as Linux does; the device takes that report at activation
// and holds the buffer; RefreshStats returns it, the driver answers with a
// new report, and RefreshStats and Stats return it, age and all. Tags come
// in any order, unknown ones are ignored, the last of a repeated tag wins.
func TestStatsRoundTrip(t *testing.T) {
	f := newFixture(t, balloon.Config{Stats: true}, false)
	if _, _, ok := f.dev.Stats(); ok {
		t.Error("statistics before the guest reported any")
	}
	// Before DRIVER_OK: no Notify reaches an inactive device.
	if _, _, err := f.drv[balloon.StatsQueue].Add(virtiotest.Readable(stats(stat{4, 100 << 20}, stat{5, 512 << 20}))); err != nil {
		t.Fatal(err)
	}
	f.activate(t)
	reports := []struct {
		name    string
		entries []stat
		want    balloon.Stats
	}{
		{"every tag of virtio 1.2", []stat{{0, 1}, {1, 2}, {2, 3}, {3, 4}, {4, 5}, {5, 6}, {6, 7}, {7, 8}, {8, 9}, {9, 10}},
			balloon.Stats{SwapIn: 1, SwapOut: 2, MajorFaults: 3, MinorFaults: 4, FreeMemory: 5, TotalMemory: 6,
				AvailableMemory: 7, DiskCaches: 8, HugetlbAllocations: 9, HugetlbFailures: 10, Reported: 0x3ff}},
		{"any order, unknown tags", []stat{{7, 70}, {10, 1}, {4, 40}, {0xffff, 2}, {6, 60}},
			balloon.Stats{FreeMemory: 40, AvailableMemory: 60, DiskCaches: 70, Reported: 1<<4 | 1<<6 | 1<<7}},
		{"a repeated tag", []stat{{5, 1}, {5, math.MaxUint64}},
			balloon.Stats{TotalMemory: math.MaxUint64, Reported: 1 << 5}},
	}
	first := balloon.Stats{FreeMemory: 100 << 20, TotalMemory: 512 << 20, Reported: 1<<4 | 1<<5}
	refresh := func() <-chan balloon.Stats {
		got := make(chan balloon.Stats, 1)
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), wait)
			defer cancel()
			s, err := f.dev.RefreshStats(ctx)
			if err != nil {
				t.Error(err)
			}
			got <- s
		}()
		// The device returns the buffer it held: by then it has taken the
		// report the buffer carried.
		f.used(t, balloon.StatsQueue)
		return got
	}
	got := refresh()
	s, age, ok := f.dev.Stats()
	previous := s.Time
	if s.Time.IsZero() || !ok || age < 0 || age > wait {
		t.Errorf("after activation: %+v, age %v, %v", s, age, ok)
	}
	if s.Time = (time.Time{}); s != first {
		t.Errorf("the report primed before DRIVER_OK: %+v, want %+v", s, first)
	}
	for i, r := range reports {
		f.add(t, balloon.StatsQueue, virtiotest.Readable(stats(r.entries...)))
		s := <-got
		if s.Time.Before(previous) {
			t.Errorf("%s: report of %v, before the previous one of %v", r.name, s.Time, previous)
		}
		previous = s.Time
		last, age, ok := f.dev.Stats()
		if last != s || !ok || age < 0 || age > wait {
			t.Errorf("%s: Stats returns %+v, age %v, %v; RefreshStats returned %+v", r.name, last, age, ok, s)
		}
		if s.Time = (time.Time{}); s != r.want {
			t.Errorf("%s: %+v, want %+v", r.name, s, r.want)
		}
		for tag := balloon.Tag(0); tag < 12; tag++ {
			if s.Has(tag) != (r.want.Reported&(1<<tag) != 0) {
				t.Errorf("%s: Has(%d) = %v", r.name, tag, s.Has(tag))
			}
		}
		if i+1 < len(reports) {
			got = refresh()
		}
	}
}

// TestMalformedStats: a statistics buffer that is not an array of
// statistics is logged and its contents are not taken, but the device
// holds it like any other, so the request cycle goes on; a second buffer
// makes the device return the first.
func TestMalformedStats(t *testing.T) {
	for _, tt := range []struct {
		name string
		bufs []virtiotest.Buffer
	}{
		{"a writable buffer", []virtiotest.Buffer{virtiotest.Writable(10)}},
		{"statistics then a writable buffer", []virtiotest.Buffer{virtiotest.Readable(stats(stat{4, 1})), virtiotest.Writable(10)}},
		{"15 bytes", []virtiotest.Buffer{virtiotest.Readable(stats(stat{4, 1}, stat{5, 2})[:15])}},
		{"6 bytes, as the spec's slip would have it", []virtiotest.Buffer{virtiotest.Readable(make([]byte, 6))}},
		{"more than the device parses", []virtiotest.Buffer{virtiotest.Readable(make([]byte, 4100))}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, balloon.Config{Stats: true}, false)
			f.activate(t)
			head := f.add(t, balloon.StatsQueue, tt.bufs...)
			if r := f.log(t, slog.LevelWarn); !strings.Contains(r.Message, "statistics") {
				t.Errorf("logged %q", r.Message)
			}
			if _, _, ok := f.dev.Stats(); ok {
				t.Error("statistics taken from a malformed buffer")
			}
			// A second buffer: the device takes its report and returns the
			// malformed one.
			f.add(t, balloon.StatsQueue, virtiotest.Readable(stats(stat{6, 42})))
			if u := f.used(t, balloon.StatsQueue); u.Head != head || u.Len != 0 {
				t.Errorf("used %+v, want the first buffer, head %d, with 0 bytes", u, head)
			}
			if s, _, ok := f.dev.Stats(); !ok || s.Reported != 1<<6 || s.AvailableMemory != 42 {
				t.Errorf("after the second buffer: %+v, %v; want available memory 42 only", s, ok)
			}
		})
	}
}

// TestStatsPolling: with a StatsInterval the device asks for statistics by
// itself, again and again, without RefreshStats.
func TestStatsPolling(t *testing.T) {
	f := newFixture(t, balloon.Config{Stats: true, StatsInterval: balloon.MinStatsInterval}, false)
	f.activate(t)
	for i := range 3 {
		head := f.add(t, balloon.StatsQueue, virtiotest.Readable(stats(stat{4, uint64(i)})))
		if u := f.used(t, balloon.StatsQueue); u.Head != head {
			t.Fatalf("request %d: used %+v, want head %d", i, u, head)
		}
		if s, _, ok := f.dev.Stats(); !ok || s.FreeMemory != uint64(i) {
			t.Errorf("request %d: %+v, %v; want free memory %d", i, s, ok, i)
		}
	}
}

// TestRefreshStatsRefusals: RefreshStats fails at once with ErrNoStats when
// there is no statistics queue to ask, and with an error when its context
// ends or the device is reset before the driver answers.
func TestRefreshStatsRefusals(t *testing.T) {
	for _, tt := range []struct {
		name     string
		cfg      balloon.Config
		activate bool
		features uint64 // negotiated with activate; 0: all offered
	}{
		{"inactive", balloon.Config{Stats: true}, false, 0},
		{"statistics not configured", balloon.Config{}, true, 0},
		{"VIRTIO_BALLOON_F_STATS_VQ not taken", balloon.Config{Stats: true}, true, virtio.FeatureVersion1},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, tt.cfg, false)
			if tt.activate && tt.features != 0 {
				f.activateWith(t, tt.features)
			} else if tt.activate {
				f.activate(t)
			}
			if _, err := f.dev.RefreshStats(context.Background()); !errors.Is(err, balloon.ErrNoStats) {
				t.Errorf("RefreshStats: %v, want ErrNoStats", err)
			}
		})
	}
	t.Run("no answer", func(t *testing.T) {
		f := newFixture(t, balloon.Config{Stats: true}, false)
		f.activate(t)
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		defer cancel()
		if _, err := f.dev.RefreshStats(ctx); !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("RefreshStats with no buffer to return: %v, want DeadlineExceeded", err)
		}
	})
	t.Run("reset while waiting", func(t *testing.T) {
		f := newFixture(t, balloon.Config{Stats: true}, false)
		f.activate(t)
		f.add(t, balloon.StatsQueue, virtiotest.Readable(stats(stat{4, 1})))
		errc := make(chan error, 1)
		go func() {
			_, err := f.dev.RefreshStats(context.Background())
			errc <- err
		}()
		f.used(t, balloon.StatsQueue) // the request was made; the driver does not answer
		f.dev.Reset()
		select {
		case err := <-errc:
			if err == nil || errors.Is(err, balloon.ErrNoStats) {
				t.Errorf("RefreshStats across a reset: %v", err)
			}
		case <-time.After(wait):
			t.Fatal("RefreshStats still waiting after a reset")
		}
	})
}

// TestSetTargetRaisesConfigInterrupt: SetTarget sets num_pages (whole 4 KiB
// pages, rounded up) and, through the transport's events, bumps the
// configuration generation and raises the configuration interrupt once the
// driver has set DRIVER_OK; the same target again raises nothing, and a
// target beyond 2^32 pages is refused and changes nothing.
func TestSetTargetRaisesConfigInterrupt(t *testing.T) {
	dev, err := balloon.New(balloon.Config{})
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	regs := &virtio.Regs{}
	interrupts := 0
	dev.SetEvents(virtio.TransportEvents{Mu: &mu, Regs: regs, Log: slog.New(slog.DiscardHandler), Name: "test",
		Type: dev.Type(), ConfigInterrupt: func() { interrupts++ }})
	for _, tt := range []struct {
		name       string
		driverOK   bool
		size       uint64
		ok         bool
		pages      uint32 // num_pages afterwards
		interrupts int    // raised by this step
		generation uint8  // bumps by this step
	}{
		{"before DRIVER_OK", false, 8 << 20, true, 2048, 0, 1},
		{"1 MiB", true, 1 << 20, true, 256, 1, 1},
		{"the same again", true, 1 << 20, true, 256, 0, 0},
		{"a byte more: one page more", true, 1<<20 + 1, true, 257, 1, 1},
		{"2^32 pages", true, math.MaxUint32 * balloon.PageSize, true, math.MaxUint32, 1, 1},
		{"more than 2^32 pages", true, (math.MaxUint32 + 1) * balloon.PageSize, false, math.MaxUint32, 0, 0},
		{"all back", true, 0, true, 0, 1, 1},
	} {
		mu.Lock()
		regs.Status = 0
		if tt.driverOK {
			regs.Status = virtio.StatusDriverOK
		}
		before, gen := interrupts, regs.Generation
		mu.Unlock()
		err := dev.SetTarget(tt.size)
		if (err == nil) != tt.ok {
			t.Errorf("%s: SetTarget(%d): %v", tt.name, tt.size, err)
		}
		var c [4]byte
		dev.ReadConfig(0, c[:])
		if got := binary.LittleEndian.Uint32(c[:]); got != tt.pages || dev.Target() != uint64(tt.pages)*balloon.PageSize {
			t.Errorf("%s: num_pages %d, Target %d; want %d pages", tt.name, got, dev.Target(), tt.pages)
		}
		mu.Lock()
		if interrupts-before != tt.interrupts || regs.Generation-gen != tt.generation {
			t.Errorf("%s: %d interrupts, generation +%d; want %d, +%d", tt.name, interrupts-before, regs.Generation-gen, tt.interrupts, tt.generation)
		}
		mu.Unlock()
	}
}

// TestConfigSpace: num_pages is read-only to the driver, actual is its to
// write (whole or byte by byte) and Actual reports it in bytes; the rest
// reads as zeros; a reset empties actual but keeps the target.
func TestConfigSpace(t *testing.T) {
	dev, err := balloon.New(balloon.Config{})
	if err != nil {
		t.Fatal(err)
	}
	if err := dev.SetTarget(64 << 20); err != nil {
		t.Fatal(err)
	}
	le32 := func(v uint32) []byte { return binary.LittleEndian.AppendUint32(nil, v) }
	for _, tt := range []struct {
		name   string
		off    uint64
		data   []byte
		actual uint32
	}{
		{"actual, four bytes", 4, le32(0x1234), 0x1234},
		{"actual, byte by byte: low", 4, []byte{0x78}, 0x1278},
		{"actual, byte by byte: high", 7, []byte{0x01}, 0x01001278},
		{"actual, two bytes in the middle", 5, []byte{0xaa, 0xbb}, 0x01bbaa78},
		{"num_pages and actual at once", 0, append(le32(1), le32(300)...), 300},
		{"num_pages: ignored", 0, le32(7), 300},
		{"past the end: ignored", 8, le32(7), 300},
		{"straddling the end", 6, le32(0xffffffff), 0xffff012c},
	} {
		dev.WriteConfig(tt.off, tt.data)
		if got := dev.Actual(); got != uint64(tt.actual)*balloon.PageSize {
			t.Errorf("%s: Actual %#x bytes, want %#x pages", tt.name, got, tt.actual)
		}
		var c [16]byte
		dev.ReadConfig(0, c[:])
		want := append(append(le32((64<<20)/balloon.PageSize), le32(tt.actual)...), make([]byte, 8)...)
		if !bytes.Equal(c[:], want) {
			t.Errorf("%s: configuration space % x, want % x", tt.name, c, want)
		}
	}
	var b [3]byte
	dev.ReadConfig(5, b[:])
	if !bytes.Equal(b[:], []byte{0x01, 0xff, 0xff}) {
		t.Errorf("3 bytes at offset 5: % x", b)
	}
	dev.ReadConfig(1<<40, b[:])
	if b != [3]byte{} {
		t.Errorf("far past the end: % x", b)
	}
	dev.Reset()
	if dev.Actual() != 0 || dev.Target() != 64<<20 {
		t.Errorf("after a reset: Actual %d, Target %d; want 0 and 64 MiB", dev.Actual(), dev.Target())
	}
}

// TestDeviceDescription: device ID 5, the features and queues each
// configuration offers, and the configurations New refuses.
func TestDeviceDescription(t *testing.T) {
	for _, tt := range []struct {
		name     string
		cfg      balloon.Config
		ok       bool
		features uint64
		queues   int
	}{
		{"plain", balloon.Config{}, true, 0, 2},
		{"deflate on OOM", balloon.Config{DeflateOnOOM: true}, true, balloon.FeatureDeflateOnOOM, 2},
		{"statistics", balloon.Config{Stats: true}, true, balloon.FeatureStatsVQ, 3},
		{"both, polled", balloon.Config{DeflateOnOOM: true, Stats: true, StatsInterval: time.Second}, true,
			balloon.FeatureStatsVQ | balloon.FeatureDeflateOnOOM, 3},
		{"an interval without statistics", balloon.Config{StatsInterval: time.Second}, false, 0, 0},
		{"a negative interval", balloon.Config{Stats: true, StatsInterval: -time.Second}, false, 0, 0},
		{"an interval below the minimum", balloon.Config{Stats: true, StatsInterval: time.Millisecond}, false, 0, 0},
	} {
		dev, err := balloon.New(tt.cfg)
		if (err == nil) != tt.ok {
			t.Errorf("%s: New: %v", tt.name, err)
		}
		if err != nil {
			continue
		}
		if dev.Type() != virtio.IDBalloon || dev.Features() != tt.features {
			t.Errorf("%s: type %d, features %#x; want 5, %#x", tt.name, dev.Type(), dev.Features(), tt.features)
		}
		qs := dev.QueueSizes()
		if len(qs) != tt.queues {
			t.Errorf("%s: %d queues, want %d", tt.name, len(qs), tt.queues)
		}
		for _, n := range qs {
			if n != balloon.QueueSize {
				t.Errorf("%s: queue sizes %v", tt.name, qs)
			}
		}
	}
}

// TestResetStopsTheWorker: Reset returns after the device's goroutine has,
// so activations and resets leak no goroutines; Activate refuses a second
// activation and the wrong number of queues; Notify on an inactive device
// does nothing.
func TestResetStopsTheWorker(t *testing.T) {
	mem, err := memory.New([]memory.Range{{GPA: 0, Size: 1 << 20}})
	if err != nil {
		t.Fatal(err)
	}
	defer mem.Close()
	base := runtime.NumGoroutine()
	dev, err := balloon.New(balloon.Config{Stats: true, StatsInterval: time.Second, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	dev.Reset()
	dev.Notify(0)
	q := &virtio.Queue{Size: 16, Desc: 0x1000, Driver: 0x2000, Device: 0x3000, Ready: true}
	for _, queues := range [][]*virtio.Queue{nil, {q, q}, {q, q, q, q}} {
		if err := dev.Activate(mem, 0, queues, func(int) {}); err == nil {
			t.Errorf("Activate with %d queues succeeded", len(queues))
			dev.Reset()
		}
	}
	for i := range 100 {
		queues := []*virtio.Queue{nil, nil, nil}
		for j := range queues {
			drv, err := virtiotest.New(mem, virtiotest.Config{Base: 0x1000 + uint64(j)*0x4000, Size: 16})
			if err != nil {
				t.Fatal(err)
			}
			queues[j] = drv.Queue
		}
		if err := dev.Activate(mem, balloon.FeatureStatsVQ, queues, func(int) {}); err != nil {
			t.Fatalf("activation %d: %v", i, err)
		}
		if err := dev.Activate(mem, balloon.FeatureStatsVQ, queues, func(int) {}); err == nil {
			t.Fatal("a second Activate without Reset succeeded")
		}
		for j := range 4 {
			dev.Notify(j - 1)
		}
		dev.Reset()
	}
	dev.Notify(0)
	// A goroutine that has closed its done channel may not have exited yet;
	// there is nothing to wait on for that but the count itself.
	deadline := time.Now().Add(wait)
	for runtime.NumGoroutine() > base && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > base {
		t.Errorf("%d goroutines after 100 activations and resets, %d before", n, base)
	}
}
