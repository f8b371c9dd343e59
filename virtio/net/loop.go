package net

import (
	"errors"
	"fmt"
	"runtime"
	"time"

	"golang.org/x/sys/unix"

	"ember/internal/sysmon"
	"ember/internal/threadname"
	"ember/virtio/internal/queuefd"
)

// rxBudget is how many packets the device's thread moves into the receive
// queue before it looks at the transmit queue again.
const rxBudget = 64

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

// pollable is a backend the device's thread can wait on itself: a
// FileBackend, or a TAP through the one it embeds.
type pollable interface {
	fileBackend() *FileBackend
}

// loop is one activation served on a thread of the device's own, QEMU's
// main loop in small. One epoll waits on each queue's kick eventfd, which
// KVM signals on the guest's notification (virtio.QueueEventFDs), and on
// the backend's descriptor; the thread then sends what the driver queued
// and moves what the backend has into the receive queue, waiting for
// neither. Between a notification and its packets there is one thread
// woken, not Go's poller and a goroutine per queue: in the lab the
// goroutine shape switched threads four times as often as QEMU's main
// loop, on the CPUs the vCPUs need (docs/performance-log.md).
type loop struct {
	d      *pair
	b      *FileBackend
	fd     int          // b's descriptor
	ep     int          // the epoll instance
	wakeFD int          // an eventfd Reset signals to end the thread
	kicks  *queuefd.Set // each enabled queue's kick eventfd
	rx     *receiver    // nil: the driver left the queue disabled
	tx     *transmitter // likewise

	rxState  rxState   // where the last pump left the receive queue
	retry    time.Time // rxBackoff: when to read the backend again
	interest uint32    // what the epoll watches fd for; 0: not registered
	done     chan struct{}

	ticksPerMs int64 // the TSC's rate; 0: not known, and waits are never bounded
	lastEvent  int64 // the TSC after the last wait that had an event
}

// newLoop makes the epoll and eventfds of an activation whose workers
// are rx and tx (either may be nil) on backend b. The loop owns kicks from
// here on: an error closes them with the rest.
func newLoop(d *pair, b *FileBackend, kicks *queuefd.Set, rx *receiver, tx *transmitter) (_ *loop, err error) {
	l := &loop{d: d, b: b, fd: -1, ep: -1, wakeFD: -1, kicks: kicks, rx: rx, tx: tx, done: make(chan struct{})}
	defer func() {
		if err != nil {
			l.close()
		}
	}()
	if err := b.control(func(fd int) error { l.fd = fd; return nil }); err != nil {
		return nil, fmt.Errorf("virtio-net: backend descriptor: %w", err)
	}
	if l.ep, err = unix.EpollCreate1(unix.EPOLL_CLOEXEC); err != nil {
		l.ep = -1
		return nil, fmt.Errorf("virtio-net: epoll: %w", err)
	}
	if l.wakeFD, err = queuefd.NewEventFD(); err != nil {
		return nil, err
	}
	fds := []int{l.wakeFD}
	for q := range 2 {
		if fd, ok := kicks.Kick(q); ok {
			fds = append(fds, fd)
		}
	}
	for _, fd := range fds {
		ev := unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(fd)}
		if err := unix.EpollCtl(l.ep, unix.EPOLL_CTL_ADD, fd, &ev); err != nil {
			return nil, fmt.Errorf("virtio-net: epoll: %w", err)
		}
	}
	return l, nil
}

// ThreadName is the name of the device's thread, as ps -T shows it.
const ThreadName = "ember-net"

// run serves the queues until stop. Its goroutine keeps a thread, which
// sleeps in epoll_wait between events, and never gives it back: the
// thread, with its name, ends with the activation. The process's main
// thread, which Go does not end (and which keeps its name), is given back.
// While it runs the process has a P more (sysmon.Budget): the thread keeps
// its own in epoll_wait, and the process's other goroutines keep theirs.
func (l *loop) run() {
	defer close(l.done)
	runtime.LockOSThread()
	defer sysmon.UnlockIfMain()
	sysmon.Budget.Start(sysmon.Device)
	defer sysmon.Budget.End(sysmon.Device)
	tid := unix.Gettid()
	if err := threadname.Set(ThreadName); err != nil {
		l.d.log.Debug("virtio-net: the device's thread stays unnamed", "err", err)
	}
	l.serve(true, false) // what the driver queued before it set DRIVER_OK
	events := make([]unix.EpollEvent, 4)
	// The thread holds its P in epoll_wait and never blocks in Go: it goes
	// through the scheduler now and then, after its work, or sysmon would
	// keep taking the P (package sysmon). The thread is locked for its
	// name; the yield, which wakes no other thread, may bring the
	// goroutine back on another thread, which then takes the name.
	l.ticksPerMs = sysmon.TicksPerMs()
	pace := sysmon.NewUnlockedPacer(l.ticksPerMs)
	now := sysmon.Cputicks()
	l.lastEvent = now
	for {
		n, err := unix.EpollWait(l.ep, events, l.timeout(now))
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			l.fail(err)
			return
		}
		tx, rx, stop := l.events(events[:n])
		if stop {
			return
		}
		l.serve(tx, rx)
		var yielded bool
		if now, yielded = pace.Maybe(sysmon.Cputicks()); yielded {
			tid = l.keepName(tid)
		}
		if n > 0 {
			l.lastEvent = now
		}
	}
}

// keepName gives the device's thread name to the thread the loop runs on
// now if that is not thread tid, the one that bore it, after a yield that
// brought the goroutine back on another thread; it returns the thread
// that bears the name.
func (l *loop) keepName(tid int) int {
	now, err := threadname.Follow(tid, ThreadName)
	if err != nil {
		l.d.log.Debug("virtio-net: the device's thread name did not move with it", "err", err)
	}
	return now
}

// fail reports a thread that cannot wait any more (epoll_wait failed):
// the queues stop, and the device needs a reset, which finds the thread
// already ended.
func (l *loop) fail(err error) {
	l.d.log.Error("virtio-net: the device's thread cannot wait; the queues stop until the driver resets the device", "err", err)
	if e := l.d.events.Load(); e != nil {
		(*e).NeedsReset(fmt.Errorf("virtio-net: the device's thread stopped: %w", err))
	}
}

// events reads what the epoll reported: whether the transmit queue or
// the receive queue has work, and whether Reset asked the thread to end.
func (l *loop) events(evs []unix.EpollEvent) (tx, rx, stop bool) {
	for _, ev := range evs {
		fd := int(ev.Fd)
		switch {
		case fd == l.wakeFD:
			return false, false, true
		case fd == l.fd:
			// An error or a hang-up is for both: the held packet's write
			// and the next read report it, and the thread stops watching
			// for what the backend can no longer give (watch), rather than
			// being woken by it again and again.
			broken := ev.Events&(unix.EPOLLERR|unix.EPOLLHUP) != 0
			tx = tx || broken || ev.Events&unix.EPOLLOUT != 0
			rx = rx || broken || ev.Events&unix.EPOLLIN != 0
		default:
			var buf [8]byte
			unix.Read(fd, buf[:]) // clear the kick: the drain takes all there is
			if k, _ := l.kicks.Kick(TXQueue); fd == k {
				tx = true
			} else if l.rxState == rxNoBuffers {
				rx = true
			}
		}
	}
	if l.rxState == rxBackoff && !time.Now().Before(l.retry) {
		rx = true
	}
	return tx, rx, false
}

// serve sends what the transmit queue holds if tx, and pumps the receive
// queue if rx, then sets what the epoll watches the backend for.
func (l *loop) serve(tx, rx bool) {
	if tx && l.tx != nil && !l.tx.failed {
		if err := l.tx.drain(); err != nil {
			l.tx.fail(err, false)
		}
	}
	if rx && l.rx != nil && !l.rx.failed && l.rxState != rxEnded {
		if l.rxState = l.rx.pump(rxBudget); l.rxState == rxBackoff {
			l.retry = time.Now().Add(readBackoff)
		}
	}
	l.watch()
}

// watch sets what the epoll watches the backend's descriptor for: input
// while the receive queue can take a packet, output while a packet waits
// for room. Watching for neither takes the descriptor out of the epoll,
// which would otherwise report a hang-up over and over.
func (l *loop) watch() {
	var want uint32
	if l.rx != nil && !l.rx.failed && (l.rxState == rxIdle || l.rxState == rxBusy) {
		want |= unix.EPOLLIN
	}
	if l.tx != nil && !l.tx.failed && l.tx.held != nil {
		want |= unix.EPOLLOUT
	}
	if want == l.interest {
		return
	}
	op := unix.EPOLL_CTL_MOD
	switch {
	case want == 0:
		op = unix.EPOLL_CTL_DEL
	case l.interest == 0:
		op = unix.EPOLL_CTL_ADD
	}
	ev := unix.EpollEvent{Events: want, Fd: int32(l.fd)}
	if err := unix.EpollCtl(l.ep, op, l.fd, &ev); err != nil {
		l.d.log.Error("virtio-net: watching the backend", "err", err)
		return
	}
	l.interest = want
}

// timeout is how long epoll_wait may wait, in milliseconds, now being the
// TSC: until the backend is to be read again after a failure, at most
// busyWaitMs while the device is busy, else for ever.
func (l *loop) timeout(now int64) int {
	t := -1
	if l.rxState == rxBackoff {
		t = max(int(time.Until(l.retry).Milliseconds()), 1)
	}
	if l.busy(now) && (t < 0 || t > busyWaitMs) {
		t = busyWaitMs
	}
	return t
}

// busy reports whether the thread had an event within busyWindowMs of
// now (a TSC; one that went backwards counts as long ago).
func (l *loop) busy(now int64) bool {
	return l.ticksPerMs > 0 && uint64(now-l.lastEvent) < uint64(busyWindowMs*l.ticksPerMs)
}

// stop ends the thread and waits for it.
func (l *loop) stop() {
	queuefd.Signal(l.wakeFD)
	<-l.done
}

// close releases the epoll, the wake eventfd and the kick eventfds; the
// thread has ended, or never started.
func (l *loop) close() {
	for _, fd := range []int{l.ep, l.wakeFD} {
		if fd >= 0 {
			unix.Close(fd)
		}
	}
	l.kicks.Close()
}
