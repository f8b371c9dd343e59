// Package devthread is a virtio device's own OS thread, QEMU's main loop in
// small: one epoll waits on the kick eventfds of the queues the thread
// serves (which KVM signals on the guest's notification, an ioeventfd)
// and on whatever else they wait for (a TAP), and the thread then serves
// each that had an event, waiting for nothing else.
//
// Between a guest's notification and the device's work there is one
// thread woken, not Go's poller, then a goroutine, then the idle thread Go
// wakes to run what became ready: in the lab (two CPUs, beside two vCPUs)
// the goroutine shape switched threads four times as often as QEMU's main
// loop, on the CPUs the vCPUs need (docs/performance-log.md). virtio-net
// serves its queue pairs on such threads, and virtio-blk its request
// queues (the disk's thread hands a request that may wait to a goroutine).
package devthread

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
// (TestThreadLeavesSysmonAloneBetweenSparseKicks in virtio/net). sysmon
// also takes a system call's P at its next look when no P is idle, which
// this does not prevent; in the lab's streams most takes of a device
// thread's P were of that kind (docs/performance-log.md, "Sysmon after
// all"), and the P the thread adds to the process while it runs
// (sysmon.Budget) is for that. An idle device waits for ever: the bound
// costs at most busyWindowMs/busyWaitMs wake-ups after its last event.
const (
	busyWaitMs   = 5
	busyWindowMs = 500
)

// wakeTag marks the wake eventfd's epoll events; a server's events carry
// the server's tag (EpollEvent.Pad) instead.
const wakeTag = -1

// Server is what a Thread serves: one queue pair of a network device, one
// request queue of a disk. The thread calls its methods one at a time, on
// its own OS thread, between Start and Stop.
type Server interface {
	// Begin serves what the driver queued before the thread started.
	Begin()
	// Note takes one of the server's epoll events (those watched with its
	// tag), to be served at the next ServeNoted. A kick eventfd's event
	// is the server's to clear (read).
	Note(ev unix.EpollEvent)
	// ServeNoted serves what the events since the last call found, after
	// each wait (with or without events).
	ServeNoted()
	// Timeout is how long the thread may wait for the server's sake, in
	// milliseconds; -1 for as long as there is no event.
	Timeout() int
}

// Thread is one OS thread of a device's own serving any number of
// Servers from one epoll. Make it with New, Add its servers, Start it;
// Stop ends it and releases its descriptors (the servers keep theirs).
type Thread struct {
	name    string
	log     *slog.Logger
	fail    func(error)
	ep      int // the epoll instance
	wakeFD  int // an eventfd Stop signals to end the thread
	servers []Server
	done    chan struct{}

	life             sync.Mutex // guards started and stopped: each server's reset may stop the thread
	started, stopped bool       // Start and Stop were called

	ticksPerMs int64 // the TSC's rate; 0: not known, and waits are never bounded
	lastEvent  int64 // the TSC after the last wait that had an event
}

// New makes the epoll and wake eventfd of a thread not yet started, to be
// named name (ps -T). fail is called, on the thread, if it cannot wait
// any more (epoll_wait failed): the thread has ended, its servers are
// served no more, and the device should ask for a reset.
func New(name string, log *slog.Logger, fail func(error)) (_ *Thread, err error) {
	t := &Thread{name: name, log: log, fail: fail, ep: -1, wakeFD: -1, done: make(chan struct{})}
	defer func() {
		if err != nil {
			t.close()
		}
	}()
	if t.ep, err = unix.EpollCreate1(unix.EPOLL_CLOEXEC); err != nil {
		t.ep = -1
		return nil, fmt.Errorf("%s: epoll: %w", name, err)
	}
	if t.wakeFD, err = queuefd.NewEventFD(); err != nil {
		return nil, err
	}
	if err := t.Watch(unix.EPOLL_CTL_ADD, t.wakeFD, unix.EPOLLIN, wakeTag); err != nil {
		return nil, err
	}
	return t, nil
}

// Add gives the thread, not yet started, s to serve, and returns the tag
// s's descriptors are to be watched with.
func (t *Thread) Add(s Server) int32 {
	t.servers = append(t.servers, s)
	return int32(len(t.servers) - 1)
}

// Watch adds, changes or removes (op) fd in the epoll, for events, its
// events going to the server whose tag is tag. Only the thread itself, or
// its owner before Start, may call it.
func (t *Thread) Watch(op, fd int, events uint32, tag int32) error {
	ev := unix.EpollEvent{Events: events, Fd: int32(fd), Pad: tag}
	if err := unix.EpollCtl(t.ep, op, fd, &ev); err != nil {
		return fmt.Errorf("%s: epoll: %w", t.name, err)
	}
	return nil
}

// Start runs the thread.
func (t *Thread) Start() {
	t.life.Lock()
	defer t.life.Unlock()
	t.started = true
	go t.run()
}

// run serves the servers until Stop. Its goroutine keeps a thread, which
// sleeps in epoll_wait between events, and never gives it back: the
// thread, with its name, ends with the activation. The process's main
// thread, which Go does not end (and which keeps its name), is given back.
// While it runs the process has a P more (sysmon.Budget): the thread keeps
// its own in epoll_wait, and the process's other goroutines keep theirs.
func (t *Thread) run() {
	defer close(t.done)
	runtime.LockOSThread()
	defer sysmon.UnlockIfMain()
	sysmon.Budget.Start(sysmon.Device)
	defer sysmon.Budget.End(sysmon.Device)
	tid, err := threadname.Hold(t.name)
	if err != nil {
		t.log.Debug("the device's thread stays unnamed", "thread", t.name, "err", err)
	}
	defer func() { threadname.Drop(tid, t.name) }()
	for _, s := range t.servers {
		s.Begin()
	}
	events := make([]unix.EpollEvent, 4*max(len(t.servers), 1))
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
			t.log.Error("the device's thread cannot wait; its queues stop until the driver resets the device", "thread", t.name, "err", err)
			t.fail(fmt.Errorf("%s: the device's thread stopped: %w", t.name, err))
			return
		}
		if t.note(events[:n]) {
			return
		}
		for _, s := range t.servers {
			s.ServeNoted()
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

// note passes each event to its server; true if Stop asked the thread to
// end.
func (t *Thread) note(evs []unix.EpollEvent) (stop bool) {
	for _, ev := range evs {
		if ev.Pad == wakeTag {
			return true
		}
		if ev.Pad >= 0 && int(ev.Pad) < len(t.servers) {
			t.servers[ev.Pad].Note(ev)
		}
	}
	return false
}

// keepName gives the thread's name to the thread the goroutine runs on
// now if that is not thread tid, the one that bore it, after a yield that
// brought the goroutine back on another thread; it returns the thread that
// bears the name.
func (t *Thread) keepName(tid int) int {
	now, err := threadname.Follow(tid, t.name)
	if err != nil {
		t.log.Debug("the device's thread name did not move with it", "thread", t.name, "err", err)
	}
	return now
}

// timeout is how long epoll_wait may wait, in milliseconds, now being the
// TSC: until a server must run again, at most busyWaitMs while the device
// is busy, else for ever.
func (t *Thread) timeout(now int64) int {
	w := -1
	for _, s := range t.servers {
		if sw := s.Timeout(); sw >= 0 && (w < 0 || sw < w) {
			w = sw
		}
	}
	if t.busy(now) && (w < 0 || w > busyWaitMs) {
		w = busyWaitMs
	}
	return w
}

// busy reports whether the thread had an event within busyWindowMs of
// now (a TSC; one that went backwards counts as long ago).
func (t *Thread) busy(now int64) bool {
	return t.ticksPerMs > 0 && uint64(now-t.lastEvent) < uint64(busyWindowMs*t.ticksPerMs)
}

// Stop ends the thread, if it started, waits for it and releases its
// epoll and wake eventfd; the servers keep their own descriptors. Every
// server's reset may call it: the first stops the thread.
func (t *Thread) Stop() {
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
func (t *Thread) close() {
	for _, fd := range []int{t.ep, t.wakeFD} {
		if fd >= 0 {
			unix.Close(fd)
		}
	}
	t.ep, t.wakeFD = -1, -1
}
