package balloon

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"log/slog"
	"time"

	"ember/internal/wake"
	"ember/memory"
	"ember/virtio"
)

// numQueues is the most queues the device has.
const numQueues = 3

// pfnBatch is how many page frame numbers the worker copies out of a chain
// at a time before it acts on them: Linux sends 256 per chain, and between
// two batches the worker checks for a Reset, so a chain of gigabytes of
// page frame numbers cannot hold one for long.
const pfnBatch = 1024

// worker serves the queues of one activation on one goroutine: the balloon's
// traffic is a few chains per second, and one goroutine keeps the held
// statistics buffer and the queues free of locks.
type worker struct {
	d         *Device
	mem       *memory.Guest
	queues    [numQueues]*virtio.Queue // nil for a queue not served
	interrupt func(queue int)
	kicks     [numQueues]wake.Signal // a pending notification
	refresh   chan chan uint64       // RefreshStats's requests, each with where to reply
	asked     uint64                 // the reports taken when the device last asked for one
	stop      wake.Stop              // given by Reset
	done      chan struct{}          // closed when serve returns
	broken    bool                   // the driver broke a queue: nothing more is served
	held      int                    // the statistics buffer's head the device holds; -1 for none
	logged    map[string]int         // problems seen, by kind: only the first of each is logged above Debug
	pfns      [pfnBatch]uint32       // the batch being served
	raw       [4 * pfnBatch]byte     // the batch as read from the chain
}

// newWorker returns the worker of an activation on queues; reports is how
// many statistics reports the device has taken so far.
func newWorker(d *Device, mem *memory.Guest, queues [numQueues]*virtio.Queue, interrupt func(int), reports uint64) *worker {
	w := &worker{
		d: d, mem: mem, queues: queues, interrupt: interrupt,
		refresh: make(chan chan uint64), asked: reports, stop: wake.NewStop(), done: make(chan struct{}),
		held: -1, logged: map[string]int{},
	}
	for i := range w.kicks {
		w.kicks[i] = wake.NewSignal()
	}
	return w
}

// serve serves the queues until Reset: first whatever the driver made
// available before DRIVER_OK, then at every kick, and, with a statistics
// queue, asks for statistics every Config.StatsInterval and at
// RefreshStats.
func (w *worker) serve() {
	defer close(w.done)
	var tick <-chan time.Time
	if iv := w.d.cfg.StatsInterval; iv > 0 && w.queues[StatsQueue] != nil {
		t := time.NewTicker(iv)
		defer t.Stop()
		tick = t.C
	}
	for i := range numQueues {
		w.serveQueue(i)
	}
	for {
		select {
		case <-w.stop:
			return
		case <-w.kicks[InflateQueue]:
			w.serveQueue(InflateQueue)
		case <-w.kicks[DeflateQueue]:
			w.serveQueue(DeflateQueue)
		case <-w.kicks[StatsQueue]:
			w.serveQueue(StatsQueue)
		case reply := <-w.refresh:
			w.requestStats()
			reply <- w.asked
		case <-tick:
			w.requestStats()
		}
	}
}

// stopped says whether Reset has asked the worker to return.
func (w *worker) stopped() bool { return w.stop.Stopped() }

// serveQueue serves every chain the driver made available in queue i, then
// interrupts the driver if it wants to hear of the ones returned.
func (w *worker) serveQueue(i int) {
	q := w.queues[i]
	if q == nil {
		return
	}
	defer w.notifyDriver(i)
	for !w.broken && !w.stopped() {
		c, err := q.Pop(w.mem)
		var ce *virtio.ChainError
		switch {
		case errors.As(err, &ce):
			w.reject(i, ce.Head, "malformed descriptor chain", "err", err)
			continue
		case err != nil:
			w.fail(i, err)
			return
		case c == nil:
			return
		}
		if i == StatsQueue {
			w.takeStats(c)
			continue
		}
		if !w.servePages(i, c) {
			return // Reset came: the chain goes with the queue
		}
	}
}

// servePages serves an inflate or deflate chain: an array of 32-bit page
// frame numbers, in device-readable buffers only. Inflated pages are
// released to the host; deflated ones need nothing, the host gives a
// released page back, zeroed, when the guest touches it. A page frame
// number outside guest RAM is logged and skipped. A chain that is not such
// an array (a device-writable buffer, a length that is not a multiple of
// 4) is not acted on at all: nothing says which of its numbers the driver
// meant. The chain is returned with nothing written. servePages returns
// false if a Reset stopped it first.
func (w *worker) servePages(i int, c *virtio.Chain) bool {
	name := "inflate"
	if i == DeflateQueue {
		name = "deflate"
	}
	switch n := c.ReadableLen(); {
	case len(c.Writable) > 0:
		w.reject(i, c.Head, name+" chain with a device-writable buffer",
			"readable", n, "writable", c.WritableLen())
		return true
	case n%4 != 0:
		w.reject(i, c.Head, name+" chain whose length is not a whole number of page frame numbers", "readable", n)
		return true
	}
	r := c.Reader()
	for {
		if w.stopped() {
			return false
		}
		k, err := io.ReadFull(r, w.raw[:])
		if k == 0 {
			break
		}
		batch := w.pfns[:k/4]
		for j := range batch {
			batch[j] = binary.LittleEndian.Uint32(w.raw[4*j:])
		}
		if i == InflateQueue {
			w.inflate(batch)
		} else {
			w.deflate(batch)
		}
		if err != nil { // io.ErrUnexpectedEOF: that was the last batch
			break
		}
	}
	w.push(i, c.Head)
	return true
}

// inflate releases the pages of pfns to the host, a run of consecutive
// pages in one RAM region at a time.
func (w *worker) inflate(pfns []uint32) {
	regions := w.mem.Regions()
	var start, n uint64 // the run: its first page's address and its pages
	region := -1        // the run's region
	flush := func() {
		if n > 0 {
			w.release(start, n)
		}
		n = 0
	}
	for _, pfn := range pfns {
		gpa := uint64(pfn) * PageSize
		r := regionOf(regions, gpa)
		if r < 0 {
			flush()
			w.badPFN(InflateQueue, pfn)
			continue
		}
		w.d.inflated.Add(1)
		if n > 0 && r == region && gpa == start+n*PageSize {
			n++
			continue
		}
		flush()
		start, n, region = gpa, 1, r
	}
	flush()
}

// release discards n pages at gpa, all in one region of RAM.
func (w *worker) release(gpa, n uint64) {
	err := w.mem.Discard(gpa, n*PageSize)
	switch {
	case err == nil:
	case errors.Is(err, memory.ErrNotOwned):
		w.problem(slog.LevelWarn, "inflate-lent", "virtio-balloon: inflated pages are memory lent by another owner; not released",
			"gpa", gpa, "pages", n)
	default:
		// The region went (Unmap) since the worker looked, or the kernel
		// refused: the pages stay, the guest loses nothing.
		w.problem(slog.LevelError, "inflate-failed", "virtio-balloon: releasing inflated pages failed",
			"gpa", gpa, "pages", n, "err", err)
	}
}

// deflate accounts for the pages of pfns leaving the balloon.
func (w *worker) deflate(pfns []uint32) {
	regions := w.mem.Regions()
	for _, pfn := range pfns {
		if regionOf(regions, uint64(pfn)*PageSize) < 0 {
			w.badPFN(DeflateQueue, pfn)
			continue
		}
		w.d.deflated.Add(1)
	}
}

// regionOf returns the index of the region holding the page at gpa, or -1
// if that page is not wholly RAM.
func regionOf(regions []memory.Region, gpa uint64) int {
	for i, r := range regions {
		if gpa >= r.GPA && gpa-r.GPA < r.Size && r.Size-(gpa-r.GPA) >= PageSize {
			return i
		}
	}
	return -1
}

// badPFN logs and counts a page frame number outside guest RAM.
func (w *worker) badPFN(queue int, pfn uint32) {
	w.d.badPFNs.Add(1)
	w.problem(slog.LevelError, "pfn", "virtio-balloon: page frame number outside guest RAM; skipped",
		"queue", queue, "pfn", pfn, "gpa", uint64(pfn)*PageSize)
}

// takeStats keeps c, a statistics buffer, to return it at the next request,
// and the statistics it holds. A driver keeps one buffer in the queue
// ("the driver MUST make at most one buffer available", §5.5.6.3); if it
// adds another the device keeps the newer and returns the one it held,
// after it took the newer's report. A buffer that is not an array of
// statistics (a device-writable buffer, a length that is not a multiple of
// 10, more than maxStatsBytes) is held all the same, so the driver's
// request cycle goes on, but its contents are not taken.
func (w *worker) takeStats(c *virtio.Chain) {
	w.report(c)
	if w.held >= 0 {
		w.problem(slog.LevelWarn, "stats-second", "virtio-balloon: a second statistics buffer; the first is returned",
			"held", w.held, "head", c.Head)
		w.push(StatsQueue, uint16(w.held))
	}
	w.held = int(c.Head)
}

// report takes the statistics of buffer c, if it is well-formed.
func (w *worker) report(c *virtio.Chain) {
	n := c.ReadableLen()
	switch {
	case len(c.Writable) > 0:
		w.malformed(StatsQueue, c.Head, "statistics buffer with a device-writable buffer; held, not read",
			"readable", n, "writable", c.WritableLen())
		return
	case n%statSize != 0 || n > maxStatsBytes:
		w.malformed(StatsQueue, c.Head, "statistics buffer that is not an array of statistics; held, not read", "readable", n)
		return
	case n == 0:
		return // the spec's "empty buffer": nothing reported
	}
	var b [maxStatsBytes]byte
	s, unknown := parseStats(b[:virtio.Gather(b[:], c.Readable)])
	if unknown > 0 {
		w.problem(slog.LevelDebug, "stats-unknown", "virtio-balloon: statistics with tags the device does not know; ignored",
			"unknown", unknown)
	}
	s.Time = time.Now()
	w.d.setStats(s)
}

// requestStats returns the statistics buffer the device holds, which asks
// the driver for fresh statistics, and notes in asked how many reports came
// before: the next one answers. Without a buffer (the driver has not given
// the last back yet) the request under way will do.
func (w *worker) requestStats() {
	if w.held < 0 || w.broken {
		return
	}
	head := uint16(w.held)
	w.held = -1
	w.asked = w.d.statsReports()
	w.push(StatsQueue, head)
	w.notifyDriver(StatsQueue)
}

// reject logs and counts a chain the device will not serve and returns it
// to the driver with nothing written. A head outside the queue cannot be
// returned (Push refuses it); that chain is only dropped.
func (w *worker) reject(queue int, head uint16, why string, args ...any) {
	w.malformed(queue, head, why+"; returned untouched", args...)
	if head < w.queues[queue].Size {
		w.push(queue, head)
	}
}

// malformed logs and counts a malformed chain.
func (w *worker) malformed(queue int, head uint16, why string, args ...any) {
	w.d.badChains.Add(1)
	w.problem(slog.LevelWarn, "chain", "virtio-balloon: "+why,
		append([]any{"queue", queue, "head", head}, args...)...)
}

// problem logs something the guest did wrong: the first of each kind in an
// activation at level, the rest at Debug, so a driver cannot flood the
// host's log.
func (w *worker) problem(level slog.Level, kind, msg string, args ...any) {
	w.logged[kind]++
	if n := w.logged[kind]; n > 1 {
		level = min(level, slog.LevelDebug)
		args = append(args, "times", n)
	}
	w.d.log.Log(context.Background(), level, msg, args...)
}

// push returns a chain to the driver with nothing written: the balloon
// writes nothing to any buffer. A queue Push cannot write to is broken.
func (w *worker) push(queue int, head uint16) {
	if err := w.queues[queue].Push(w.mem, head, 0); err != nil {
		w.fail(queue, err)
	}
}

// fail stops serving a driver that broke a queue until Reset, and tells the
// transport the device needs one (DEVICE_NEEDS_RESET); the driver's reset
// brings it back.
func (w *worker) fail(queue int, err error) {
	if w.broken {
		return
	}
	w.broken = true
	w.d.log.Error("virtio-balloon: queues stopped until the driver resets the device", "queue", queue, "err", err)
	if e := w.d.events.Load(); e != nil {
		(*e).NeedsReset(err)
	}
}

// notifyDriver interrupts the driver if what the worker put in queue's used
// ring calls for it.
func (w *worker) notifyDriver(queue int) {
	if q := w.queues[queue]; q != nil && q.NeedsInterrupt(w.mem) {
		w.interrupt(queue)
	}
}
