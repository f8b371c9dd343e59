package devthread

import (
	"log/slog"
	"os"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"ember/virtio/internal/queuefd"
)

// fake is a Server that reports what the thread asks of it.
type fake struct {
	fd      int           // its kick eventfd
	timeout int           // what Timeout returns
	begun   chan struct{} // closed by Begin
	noted   bool
	served  chan bool // each ServeNoted: whether an event of its came since the last
}

func newFake(t *testing.T, timeout int) *fake {
	t.Helper()
	fd, err := queuefd.NewEventFD()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	return &fake{fd: fd, timeout: timeout, begun: make(chan struct{}), served: make(chan bool, 1000)}
}

func (f *fake) Begin() { close(f.begun) }

func (f *fake) Note(ev unix.EpollEvent) {
	if int(ev.Fd) == f.fd {
		var buf [8]byte
		unix.Read(f.fd, buf[:])
		f.noted = true
	}
}

func (f *fake) ServeNoted() {
	f.served <- f.noted
	f.noted = false
}

func (f *fake) Timeout() int { return f.timeout }

// start makes a thread serving servers, each watched on its eventfd, and
// stops it at the test's end.
func start(t *testing.T, servers ...*fake) *Thread {
	t.Helper()
	th, err := New("ember-test", slog.Default(), func(err error) { t.Errorf("the thread failed: %v", err) })
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(th.Stop)
	for _, s := range servers {
		if err := th.Watch(unix.EPOLL_CTL_ADD, s.fd, unix.EPOLLIN, th.Add(s)); err != nil {
			t.Fatal(err)
		}
	}
	th.Start()
	return th
}

// waitServed returns the next ServeNoted report of s in which it had an
// event, failing after a few seconds.
func waitServed(t *testing.T, s *fake) {
	t.Helper()
	deadline := time.After(5 * time.Second)
	for {
		select {
		case noted := <-s.served:
			if noted {
				return
			}
		case <-deadline:
			t.Fatal("the server was never served its event")
		}
	}
}

// TestEventsGoToTheirServer: each server is begun, and an event on one
// server's descriptor is noted and served for it, not for the other.
func TestEventsGoToTheirServer(t *testing.T) {
	a, b := newFake(t, -1), newFake(t, -1)
	start(t, a, b)
	for _, s := range []*fake{a, b} {
		select {
		case <-s.begun:
		case <-time.After(5 * time.Second):
			t.Fatal("a server was never begun")
		}
	}
	queuefd.Signal(b.fd)
	waitServed(t, b)
	for len(a.served) > 0 {
		if <-a.served {
			t.Fatal("a server was served an event of the other's")
		}
	}
	queuefd.Signal(a.fd)
	waitServed(t, a)
}

// TestTimeoutsWakeTheThread: a server that asks to run again within 5 ms
// is served without events, again and again.
func TestTimeoutsWakeTheThread(t *testing.T) {
	s := newFake(t, 5)
	start(t, s)
	time.Sleep(200 * time.Millisecond)
	if n := len(s.served); n < 5 {
		t.Errorf("served %d times in 200 ms with a 5 ms timeout, want at least 5", n)
	}
}

// TestStopReleasesEverything: Stop ends the thread and closes its epoll
// and eventfd, whether it ran or not, and may be called again.
func TestStopReleasesEverything(t *testing.T) {
	before := openFDs(t)
	for _, run := range []bool{false, true} {
		th, err := New("ember-test", slog.Default(), func(error) {})
		if err != nil {
			t.Fatal(err)
		}
		if run {
			th.Start()
		}
		th.Stop()
		th.Stop()
	}
	if after := openFDs(t); after != before {
		t.Errorf("%d descriptors open after the threads stopped, %d before", after, before)
	}
}

// openFDs counts the process's open descriptors.
func openFDs(t *testing.T) int {
	t.Helper()
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(fds)
}
