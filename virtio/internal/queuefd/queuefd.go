// Package queuefd holds the eventfd pair of each queue of a device whose
// queues are served outside ember's goroutines — by a back-end process
// (virtio/backend) or by the kernel's vhost (virtio/net) — and relays a
// queue's calls to the transport's interrupt while no irqfd takes them.
// It is what such a device needs to be a virtio.QueueEventFDs.
package queuefd

import (
	"fmt"
	"log/slog"
	"os"
	"sync"

	"golang.org/x/sys/unix"

	"ember/virtio"
)

// Set is an active device's queues: a kick eventfd (the driver notified)
// and a call eventfd (interrupt the driver) for each enabled queue, and
// the goroutines relaying calls. Its methods are not safe for concurrent
// use: the device serialises them, as it does Activate, Notify and Reset.
type Set struct {
	kicks, calls []int      // eventfds by queue index; -1 for a disabled queue
	relays       []*os.File // a relay's descriptor of the call eventfd, by queue; nil when it is stopped
	interrupt    func(int)
	log          *slog.Logger
	wg           sync.WaitGroup
}

// New makes an eventfd pair for each enabled (non-nil) queue; interrupt is
// the transport's callback the relays call. Relays start with StartRelays.
func New(queues []*virtio.Queue, interrupt func(int), log *slog.Logger) (*Set, error) {
	return newSet(queues, true, interrupt, log)
}

// NewKicks makes a kick eventfd for each enabled queue, and no call
// eventfds: a device that serves its queues on a thread of ember's and
// interrupts through the transport's callback itself. (Here and in New, a
// queue that carries a kick eventfd, Queue.Kick, a back-end's, gets a
// duplicate of it instead, which the device waits on as on its own.)
func NewKicks(queues []*virtio.Queue) (*Set, error) {
	return newSet(queues, false, nil, nil)
}

// newSet makes each enabled queue's kick eventfd, and its call eventfd if
// calls.
func newSet(queues []*virtio.Queue, calls bool, interrupt func(int), log *slog.Logger) (*Set, error) {
	n := len(queues)
	s := &Set{kicks: make([]int, n), calls: make([]int, n), relays: make([]*os.File, n), interrupt: interrupt, log: log}
	for i := range n {
		s.kicks[i], s.calls[i] = -1, -1
	}
	for i, q := range queues {
		if q == nil {
			continue
		}
		var err error
		if s.kicks[i], err = kickFD(q); err != nil {
			s.Close()
			return nil, err
		}
		if !calls {
			continue
		}
		if s.calls[i], err = NewEventFD(); err != nil {
			s.Close()
			return nil, err
		}
	}
	return s, nil
}

// kickFD returns a new kick eventfd for q, or, if the queue carries one
// (Queue.Kick), a non-blocking duplicate of that.
func kickFD(q *virtio.Queue) (int, error) {
	if q.Kick == nil {
		return NewEventFD()
	}
	// Through SyscallConn, not Fd, which would make the descriptor
	// blocking for every process that shares it.
	rc, err := q.Kick.SyscallConn()
	if err != nil {
		return -1, fmt.Errorf("virtio: kick eventfd: %w", err)
	}
	fd := -1
	if cerr := rc.Control(func(k uintptr) { fd, err = unix.FcntlInt(k, unix.F_DUPFD_CLOEXEC, 0) }); cerr != nil {
		err = cerr
	}
	if err != nil {
		return -1, fmt.Errorf("virtio: kick eventfd: %w", err)
	}
	if err := unix.SetNonblock(fd, true); err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("virtio: kick eventfd: %w", err)
	}
	return fd, nil
}

// NewEventFD returns a non-blocking eventfd. It is kept as a bare
// descriptor, outside Go's poller: KVM, a back-end or vhost may signal it
// or be signalled by it directly, and an epoll registration would wake
// ember's netpoller for each of those signals all the same.
func NewEventFD() (int, error) {
	fd, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		return -1, fmt.Errorf("virtio: eventfd: %w", err)
	}
	return fd, nil
}

// Kick returns queue q's kick eventfd, and false for a disabled queue or
// a nil Set (a device not active).
func (s *Set) Kick(q int) (int, bool) {
	if s == nil {
		return -1, false
	}
	return get(s.kicks, q)
}

// Call returns queue q's call eventfd, as Kick does.
func (s *Set) Call(q int) (int, bool) {
	if s == nil {
		return -1, false
	}
	return get(s.calls, q)
}

// get returns fds[q] if q is a queue with an eventfd.
func get(fds []int, q int) (int, bool) {
	if q < 0 || q >= len(fds) || fds[q] < 0 {
		return -1, false
	}
	return fds[q], true
}

// Notify signals queue q's kick eventfd (nothing on a nil Set).
func (s *Set) Notify(q int) {
	fd, ok := s.Kick(q)
	if !ok {
		return
	}
	Signal(fd) // EAGAIN (the counter full) still leaves a kick pending
}

// Signal adds 1 to the eventfd fd, as KVM does for an ioeventfd: a kick, a
// call, or any wake-up a thread waits for on an eventfd. An error is
// write(2)'s; EAGAIN means the counter is full, and so still signalled.
func Signal(fd int) error {
	if _, err := unix.Write(fd, one[:]); err != nil {
		return fmt.Errorf("virtio: signalling eventfd %d: %w", fd, err)
	}
	return nil
}

// one is what Signal writes, shared and never written: a local array
// would go to the heap at each call under the race detector.
var one = [8]byte{1}

// StartRelays starts the relay of every enabled queue's calls.
func (s *Set) StartRelays() {
	for q, fd := range s.calls {
		if fd >= 0 {
			s.startRelay(q)
		}
	}
}

// RelayCalls is virtio.QueueEventFDs.RelayCalls: it stops (on false) or
// restarts queue q's relay. Stopping takes the call eventfd out of Go's
// poller and reads its counter once, so a call the relay did not see is
// reported, never lost. On a nil Set it does nothing.
func (s *Set) RelayCalls(q int, on bool) bool {
	fd, ok := s.Call(q)
	if !ok {
		return false
	}
	if on {
		if s.relays[q] == nil {
			s.startRelay(q)
		}
		return false
	}
	s.stopRelay(q)
	return takeCount(fd)
}

// takeCount reads the eventfd fd's counter if it is set, and reports
// whether it was. It polls first: the file's O_NONBLOCK is shared with a
// back-end, which could clear it, and a read of a blocking eventfd at 0
// would hold the caller (a vCPU thread, under the transport's lock).
func takeCount(fd int) bool {
	p := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
	if n, err := unix.Poll(p, 0); err != nil || n == 0 || p[0].Revents&unix.POLLIN == 0 {
		return false
	}
	var buf [8]byte
	n, _ := unix.Read(fd, buf[:])
	return n == len(buf)
}

// startRelay starts a goroutine that interrupts the driver for queue q
// each time its call eventfd is signalled. It reads a duplicate of the
// eventfd through Go's poller, so that closing the duplicate (stopRelay)
// ends the read and drops the eventfd from the poller, while the eventfd
// itself stays open for the back-end and KVM.
func (s *Set) startRelay(q int) {
	fd, err := unix.FcntlInt(uintptr(s.calls[q]), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		s.log.Error("virtio: queue's interrupts lost: cannot relay its call eventfd", "queue", q, "err", err)
		return
	}
	f := os.NewFile(uintptr(fd), "virtio-call")
	s.relays[q] = f
	s.wg.Add(1)
	go s.relay(q, f)
}

// relay is queue q's relay goroutine; it ends when f is closed. A call it
// read just before is still passed on.
func (s *Set) relay(q int, f *os.File) {
	defer s.wg.Done()
	Forward(f, func() { s.interrupt(q) })
}

// Forward calls fn each time the eventfd f (read through Go's poller) is
// signalled, until f is closed: a goroutine's loop that turns one side's
// eventfd into the other side's call.
func Forward(f *os.File, fn func()) {
	var buf [8]byte
	for {
		if _, err := f.Read(buf[:]); err != nil {
			return
		}
		fn()
	}
}

// stopRelay ends queue q's relay without waiting for it (it may be waiting
// for the transport's lock, held by the caller).
func (s *Set) stopRelay(q int) {
	if f := s.relays[q]; f != nil {
		f.Close()
		s.relays[q] = nil
	}
}

// Close ends the relays, waits for them, and closes the eventfds.
func (s *Set) Close() {
	for q := range s.relays {
		s.stopRelay(q)
	}
	s.wg.Wait()
	for _, fd := range append(s.kicks, s.calls...) {
		if fd >= 0 {
			unix.Close(fd)
		}
	}
}
