package backend

import (
	"log/slog"
	"os"
	"sync"

	"golang.org/x/sys/unix"
)

// session is an active Remote's queues: the eventfds ember made for them
// and the goroutines relaying calls. A queue's relay may be stopped while
// a transport has KVM deliver its calls (Remote.RelayCalls).
type session struct {
	kicks, calls []int      // eventfds by queue index; -1 for a disabled queue
	relays       []*os.File // a relay's descriptor of the call eventfd, by queue; nil when it is stopped
	interrupt    func(int)
	log          *slog.Logger
	wg           sync.WaitGroup
}

// newSession returns a session of n queues, none with eventfds yet.
func newSession(n int, interrupt func(int), log *slog.Logger) *session {
	s := &session{kicks: make([]int, n), calls: make([]int, n), relays: make([]*os.File, n), interrupt: interrupt, log: log}
	for i := range n {
		s.kicks[i], s.calls[i] = -1, -1
	}
	return s
}

// startRelay starts a goroutine that interrupts the driver for queue q
// each time the back-end signals its call eventfd. It reads a duplicate of
// the eventfd through Go's poller, so that closing the duplicate (stopRelay)
// ends the read and drops the eventfd from the poller, while the eventfd
// itself stays open for the back-end and KVM. The caller holds the Remote's
// mu, or owns the session alone.
func (s *session) startRelay(q int) {
	fd, err := unix.FcntlInt(uintptr(s.calls[q]), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		s.log.Error("virtio-backend: queue's interrupts lost: cannot relay its call eventfd", "queue", q, "err", err)
		return
	}
	f := os.NewFile(uintptr(fd), "virtio-backend-call")
	s.relays[q] = f
	s.wg.Add(1)
	go s.relay(q, f)
}

// relay is queue q's relay goroutine; it ends when f is closed. A call it
// read just before is still passed on.
func (s *session) relay(q int, f *os.File) {
	defer s.wg.Done()
	var buf [8]byte
	for {
		if _, err := f.Read(buf[:]); err != nil {
			return
		}
		s.interrupt(q)
	}
}

// stopRelay ends queue q's relay without waiting for it (it may be waiting
// for the transport's lock, held by the caller).
func (s *session) stopRelay(q int) {
	if f := s.relays[q]; f != nil {
		f.Close()
		s.relays[q] = nil
	}
}

// close ends the relays, waits for them, and closes the eventfds.
func (s *session) close() {
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
