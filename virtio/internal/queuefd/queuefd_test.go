package queuefd

import (
	"log/slog"
	"os"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"ember/internal/kvmtest"
	"ember/virtio"
)

// TestNilSet: a nil Set is an inactive device's: no eventfds, nothing to
// notify or relay.
func TestNilSet(t *testing.T) {
	var s *Set
	if _, ok := s.Kick(0); ok {
		t.Error("a kick eventfd")
	}
	if _, ok := s.Call(0); ok {
		t.Error("a call eventfd")
	}
	if s.RelayCalls(0, false) {
		t.Error("a call reported")
	}
	s.Notify(0)
}

// TestSet: a disabled queue has no eventfds; Notify signals the kick
// eventfd; a call reaches the interrupt through the relay, one signalled
// while the relay is stopped is reported by RelayCalls, and a restarted
// relay passes calls on again; Close releases every descriptor.
func TestSet(t *testing.T) {
	before := kvmtest.OpenFDs(t)
	irq := make(chan int, 4)
	s, err := New([]*virtio.Queue{{}, nil}, func(q int) { irq <- q }, slog.Default())
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := s.Kick(1); ok {
		t.Error("the disabled queue has a kick eventfd")
	}
	if s.RelayCalls(1, false) {
		t.Error("the disabled queue reported a call")
	}
	kick, _ := s.Kick(0)
	call, ok := s.Call(0)
	if !ok {
		t.Fatal("queue 0 has no call eventfd")
	}
	s.Notify(0)
	var buf [8]byte
	if n, err := unix.Read(kick, buf[:]); err != nil || n != 8 || buf[0] != 1 {
		t.Errorf("kick eventfd after Notify: %d bytes % x, %v", n, buf, err)
	}

	s.StartRelays()
	if err := Signal(call); err != nil {
		t.Fatal(err)
	}
	waitIRQ(t, irq)
	if s.RelayCalls(0, false) {
		t.Error("a call the relay passed on was reported again")
	}
	if err := Signal(call); err != nil {
		t.Fatal(err)
	}
	if !s.RelayCalls(0, false) {
		t.Error("a call signalled while the relay was stopped was lost")
	}
	s.RelayCalls(0, true)
	if err := Signal(call); err != nil {
		t.Fatal(err)
	}
	waitIRQ(t, irq)

	s.Close()
	if after := kvmtest.OpenFDs(t); after != before {
		t.Errorf("%d descriptors open before, %d after Close", before, after)
	}
}

func waitIRQ(t *testing.T, irq chan int) {
	t.Helper()
	select {
	case q := <-irq:
		if q != 0 {
			t.Errorf("interrupt for queue %d", q)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the relay did not interrupt")
	}
}

// TestNewKicksAdoptsAQueuesKick: a queue that carries a kick eventfd (a
// back-end's) gets a duplicate of it, so a signal of the original is read
// from the Set's kick eventfd, which stays open after the original closes;
// a queue without one gets an eventfd of its own.
func TestNewKicksAdoptsAQueuesKick(t *testing.T) {
	orig, err := NewEventFD()
	if err != nil {
		t.Fatal(err)
	}
	f := os.NewFile(uintptr(orig), "kick")
	s, err := NewKicks([]*virtio.Queue{{Kick: f}, {}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	adopted, _ := s.Kick(0)
	own, _ := s.Kick(1)
	Signal(orig)
	f.Close()
	var buf [8]byte
	if n, err := unix.Read(adopted, buf[:]); n != 8 || err != nil || buf[0] != 1 {
		t.Errorf("read of the adopted kick eventfd after a signal of the original: %d, %v, %v", n, err, buf)
	}
	if _, err := unix.Read(own, buf[:]); err != unix.EAGAIN {
		t.Errorf("read of the queue's own kick eventfd: %v, want EAGAIN (not signalled)", err)
	}
}
