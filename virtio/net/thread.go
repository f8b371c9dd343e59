package net

import (
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"sync"

	"golang.org/x/sys/unix"

	"ember/internal/sysmon"
	"ember/internal/threadname"
	"ember/virtio/internal/queuefd"
)

// While the device is busy — it had an event in the last busyWindowMs —
// the thread waits at most busyWaitMs at a time. Its goroutine holds its P
// through epoll_wait, and Go's sysmon takes the P of a system call that
// has lasted 10 ms; each take resets sysmon to looking every 20 µs, some
// fifty wake-ups before it backs off again, each one taking a CPU from a
// vCPU in a lab of two. A wait that ends first, and the yield after it
// (the Pacer), keep the P out of that rule's reach
// (TestThreadLeavesSysmonAloneBetweenSparseKicks). sysmon also takes a
// system call's P at its next look when no P is idle, which this does not
// prevent; in the lab's streams most takes of this thread's P were of that
// kind (docs/performance-log.md, "Sysmon after all"), and the P the thread
// adds to the process while it runs (sysmon.Budget) is for that. An idle
// device waits for ever, as before: the bound costs at most
// busyWindowMs/busyWaitMs wake-ups after its last event.
const (
	busyWaitMs   = 5
	busyWindowMs = 500
)

// ThreadName is the name of the device's threads, as ps -T shows them.
const ThreadName = "ember-net"

// wakeTag marks the wake eventfd's epoll events; a loop's events carry
// the loop's index in the thread instead (EpollEvent.Pad).
const wakeTag = -1

// thread is one OS thread of the device's own, QEMU's main loop in small:
// one epoll waits on the kick eventfds and backends of every queue pair
// it serves (a loop each), and the thread then serves each pair that had
// an event, waiting for nothing else. A device with one pair has one
// thread; with several, Config.Threads says how many share them. Between
// a notification and its packets there is one thread woken, not Go's
// poller and a goroutine per queue: in the lab the goroutine shape
// switched threads four times as often as QEMU's main loop, on the CPUs
// the vCPUs need (docs/performance-log.md).
type thread struct {
	log    *slog.Logger
	ep     int // the epoll instance
	wakeFD int // an eventfd stop signals to end the thread
	loops  []*loop
	done   chan struct{}

	life             sync.Mutex // guards started and stopped: each pair's reset stops the thread
	started, stopped bool       // start and stop were called

	ticksPerMs int64 // the TSC's rate; 0: not known, and waits are never bounded
	lastEvent  int64 // the TSC after the last wait that had an event
}

// newThread makes the epoll and wake eventfd of a thread not yet started.
func newThread(log *slog.Logger) (_ *thread, err error) {
	t := &thread{log: log, ep: -1, wakeFD: -1, done: make(chan struct{})}
	defer func() {
		if err != nil {
			t.close()
		}
	}()
	if t.ep, err = unix.EpollCreate1(unix.EPOLL_CLOEXEC); err != nil {
		t.ep = -1
		return nil, fmt.Errorf("virtio-net: epoll: %w", err)
	}
	if t.wakeFD, err = queuefd.NewEventFD(); err != nil {
		return nil, err
	}
	if err := t.watch(unix.EPOLL_CTL_ADD, t.wakeFD, unix.EPOLLIN, wakeTag); err != nil {
		return nil, err
	}
	return t, nil
}

// add gives the thread loop l to serve, watching its kick eventfds; the
// thread has not started.
func (t *thread) add(l *loop) error {
	l.th, l.tag = t, int32(len(t.loops))
	for q := range 2 {
		if fd, ok := l.kicks.Kick(q); ok {
			if err := t.watch(unix.EPOLL_CTL_ADD, fd, unix.EPOLLIN, l.tag); err != nil {
				return err
			}
		}
	}
	t.loops = append(t.loops, l)
	return nil
}

// watch adds, changes or removes (op) fd in the epoll, for events, its
// events tagged with tag.
func (t *thread) watch(op, fd int, events uint32, tag int32) error {
	ev := unix.EpollEvent{Events: events, Fd: int32(fd), Pad: tag}
	if err := unix.EpollCtl(t.ep, op, fd, &ev); err != nil {
		return fmt.Errorf("virtio-net: epoll: %w", err)
	}
	return nil
}

// start runs the thread.
func (t *thread) start() {
	t.life.Lock()
	defer t.life.Unlock()
	t.started = true
	go t.run()
}

// run serves the loops until stop. Its goroutine keeps a thread, which
// sleeps in epoll_wait between events, and never gives it back: the
// thread, with its name, ends with the activation. The process's main
// thread, which Go does not end (and which keeps its name), is given back.
// While it runs the process has a P more (sysmon.Budget): the thread keeps
// its own in epoll_wait, and the process's other goroutines keep theirs.
func (t *thread) run() {
	defer close(t.done)
	runtime.LockOSThread()
	defer sysmon.UnlockIfMain()
	sysmon.Budget.Start(sysmon.Device)
	defer sysmon.Budget.End(sysmon.Device)
	tid, err := threadname.Hold(ThreadName)
	if err != nil {
		t.log.Debug("virtio-net: the device's thread stays unnamed", "err", err)
	}
	defer func() { threadname.Drop(tid) }()
	for _, l := range t.loops {
		l.serve(true, false) // what the driver queued before it set DRIVER_OK
	}
	events := make([]unix.EpollEvent, 4*max(len(t.loops), 1))
	// The thread holds its P in epoll_wait and never blocks in Go: it goes
	// through the scheduler now and then, after its work, or sysmon would
	// keep taking the P (package sysmon). The thread is locked for its
	// name; the yield, which wakes no other thread, may bring the
	// goroutine back on another thread, which then takes the name.
	t.ticksPerMs = sysmon.TicksPerMs()
	pace := sysmon.NewUnlockedPacer(t.ticksPerMs)
	now := sysmon.Cputicks()
	t.lastEvent = now
	for {
		n, err := unix.EpollWait(t.ep, events, t.timeout(now))
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			t.fail(err)
			return
		}
		if t.note(events[:n]) {
			return
		}
		for _, l := range t.loops {
			l.serveNoted()
		}
		var yielded bool
		if now, yielded = pace.Maybe(sysmon.Cputicks()); yielded {
			tid = t.keepName(tid)
		}
		if n > 0 {
			t.lastEvent = now
		}
	}
}

// note passes each event to its loop; true if stop asked the thread to
// end.
func (t *thread) note(evs []unix.EpollEvent) (stop bool) {
	for _, ev := range evs {
		if ev.Pad == wakeTag {
			return true
		}
		if ev.Pad >= 0 && int(ev.Pad) < len(t.loops) {
			t.loops[ev.Pad].note(ev)
		}
	}
	return false
}

// keepName gives the device's thread name to the thread the goroutine
// runs on now if that is not thread tid, the one that bore it, after a
// yield that brought the goroutine back on another thread; it returns
// the thread that bears the name.
func (t *thread) keepName(tid int) int {
	now, err := threadname.Follow(tid, ThreadName)
	if err != nil {
		t.log.Debug("virtio-net: the device's thread name did not move with it", "err", err)
	}
	return now
}

// fail reports a thread that cannot wait any more (epoll_wait failed):
// its queues stop, and the device needs a reset, which finds the thread
// already ended.
func (t *thread) fail(err error) {
	t.log.Error("virtio-net: the device's thread cannot wait; its queues stop until the driver resets the device", "err", err)
	for _, l := range t.loops {
		if e := l.d.events.Load(); e != nil {
			(*e).NeedsReset(fmt.Errorf("virtio-net: the device's thread stopped: %w", err))
			return // one device: one reset
		}
	}
}

// timeout is how long epoll_wait may wait, in milliseconds, now being the
// TSC: until a loop's backend is to be read again after a failure, at
// most busyWaitMs while the device is busy, else for ever.
func (t *thread) timeout(now int64) int {
	w := -1
	for _, l := range t.loops {
		if lw := l.timeout(); lw >= 0 && (w < 0 || lw < w) {
			w = lw
		}
	}
	if t.busy(now) && (w < 0 || w > busyWaitMs) {
		w = busyWaitMs
	}
	return w
}

// busy reports whether the thread had an event within busyWindowMs of
// now (a TSC; one that went backwards counts as long ago).
func (t *thread) busy(now int64) bool {
	return t.ticksPerMs > 0 && uint64(now-t.lastEvent) < uint64(busyWindowMs*t.ticksPerMs)
}

// stop ends the thread, if it started, waits for it and releases its
// epoll and wake eventfd; the loops keep their own descriptors. Every
// pair the thread serves calls it on reset: the first stops it.
func (t *thread) stop() {
	t.life.Lock()
	defer t.life.Unlock()
	if t.stopped {
		return
	}
	t.stopped = true
	if t.started {
		queuefd.Signal(t.wakeFD)
		<-t.done
	}
	t.close()
}

// close releases the epoll and the wake eventfd.
func (t *thread) close() {
	for _, fd := range []int{t.ep, t.wakeFD} {
		if fd >= 0 {
			unix.Close(fd)
		}
	}
	t.ep, t.wakeFD = -1, -1
}
