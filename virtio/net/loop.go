package net

import (
	"fmt"
	"time"

	"golang.org/x/sys/unix"

	"ember/virtio/internal/devthread"
	"ember/virtio/internal/queuefd"
)

// ThreadName is the name of the device's threads, as ps -T shows them.
const ThreadName = "ember-net"

// rxBudget is how many packets the device's thread moves into the receive
// queue before it looks at the transmit queue again.
const rxBudget = 64

// pollable is a backend the device's thread can wait on itself: a
// FileBackend, or a TAP through the one it embeds.
type pollable interface {
	fileBackend() *FileBackend
}

// loop is one queue pair's activation as a thread of the device's
// (devthread.Thread) serves it, a devthread.Server: the pair's kick
// eventfds, which KVM signals on the guest's notification
// (virtio.QueueEventFDs), and its backend's descriptor are in the
// thread's epoll; on their events the thread sends what the driver
// queued and moves what the backend has into the receive queue, waiting
// for neither.
type loop struct {
	d     *pair
	b     *FileBackend
	fd    int               // b's descriptor
	kicks *queuefd.Set      // each enabled queue's kick eventfd
	rx    *receiver         // nil: the driver left the queue disabled
	tx    *transmitter      // likewise
	th    *devthread.Thread // the thread that serves the loop (attach)
	tag   int32             // the loop's tag in th, on its epoll events

	rxState  rxState   // where the last pump left the receive queue
	retry    time.Time // rxBackoff: when to read the backend again
	interest uint32    // what the epoll watches fd for; 0: not registered

	notedTX, notedRX bool // the thread's last wait found work for the queue
}

// newLoop makes the loop of an activation whose workers are rx and tx
// (either may be nil) on backend b. The loop owns kicks from here on:
// an error closes them.
func newLoop(d *pair, b *FileBackend, kicks *queuefd.Set, rx *receiver, tx *transmitter) (*loop, error) {
	l := &loop{d: d, b: b, fd: -1, kicks: kicks, rx: rx, tx: tx}
	if err := b.control(func(fd int) error { l.fd = fd; return nil }); err != nil {
		kicks.Close()
		return nil, fmt.Errorf("virtio-net: backend descriptor: %w", err)
	}
	return l, nil
}

// attach gives the loop to th, not yet started, to serve, with its kick
// eventfds in th's epoll.
func (l *loop) attach(th *devthread.Thread) error {
	l.th, l.tag = th, th.Add(l)
	for q := range 2 {
		if fd, ok := l.kicks.Kick(q); ok {
			if err := th.Watch(unix.EPOLL_CTL_ADD, fd, unix.EPOLLIN, l.tag); err != nil {
				return err
			}
		}
	}
	return nil
}

// Begin is devthread.Server: it sends what the driver queued before the
// thread started.
func (l *loop) Begin() { l.serve(true, false) }

// Note is devthread.Server: it takes one of the loop's epoll events,
// whether the transmit queue or the receive queue has work, kept until
// ServeNoted.
func (l *loop) Note(ev unix.EpollEvent) {
	switch fd := int(ev.Fd); {
	case fd == l.fd:
		// An error or a hang-up is for both: the held packet's write and
		// the next read report it, and the thread stops watching for what
		// the backend can no longer give (watch), rather than being woken
		// by it again and again.
		broken := ev.Events&(unix.EPOLLERR|unix.EPOLLHUP) != 0
		l.notedTX = l.notedTX || broken || ev.Events&unix.EPOLLOUT != 0
		l.notedRX = l.notedRX || broken || ev.Events&unix.EPOLLIN != 0
	default:
		var buf [8]byte
		unix.Read(fd, buf[:]) // clear the kick: the drain takes all there is
		if k, _ := l.kicks.Kick(TXQueue); fd == k {
			l.notedTX = true
		} else if l.rxState == rxNoBuffers {
			l.notedRX = true
		}
	}
}

// ServeNoted is devthread.Server: it serves what the thread's last wait
// found for the loop, and reads the backend again once a failed read's
// backoff is over.
func (l *loop) ServeNoted() {
	tx, rx := l.notedTX, l.notedRX
	l.notedTX, l.notedRX = false, false
	if l.rxState == rxBackoff && !time.Now().Before(l.retry) {
		rx = true
	}
	l.serve(tx, rx)
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
	if err := l.th.Watch(op, l.fd, want, l.tag); err != nil {
		l.d.log.Error("virtio-net: watching the backend", "err", err)
		return
	}
	l.interest = want
}

// Timeout is devthread.Server: how long the thread may wait for the
// loop's sake, in milliseconds: until the backend is to be read again
// after a failure, or for ever (-1).
func (l *loop) Timeout() int {
	if l.rxState != rxBackoff {
		return -1
	}
	return max(int(time.Until(l.retry).Milliseconds()), 1)
}

// close releases the kick eventfds; the thread has ended, or never
// started (its epoll, which watched them and the backend, goes with it).
func (l *loop) close() {
	l.kicks.Close()
}
