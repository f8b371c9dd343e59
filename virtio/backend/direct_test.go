package backend

import (
	"runtime"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"ember/internal/kvmtest"
	"ember/virtio/blk"
	"ember/virtio/virtiotest"
)

// readable reports whether the eventfd fd has a count, without taking it.
func readable(fd int) bool {
	p := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
	n, _ := unix.Poll(p, 0)
	return n == 1
}

// TestQueueEventFDs: what a transport does with a Remote's eventfds when
// KVM serves them: a write to the kick eventfd (KVM's ioeventfd) reaches
// the back-end with no Notify; with the relay stopped, a call stays in the
// call eventfd (for KVM's irqfd) and raises nothing in ember; switching
// back either reports the call (stopping again) or relays it (restarting),
// once; and nothing is left after the device is closed.
func TestQueueEventFDs(t *testing.T) {
	rd, wr := virtiotest.Readable, virtiotest.Writable
	goroutines, fds := runtime.NumGoroutine(), kvmtest.OpenFDs(t)
	for _, tc := range []struct {
		name    string
		restart bool // restart the relay, else stop it again
	}{
		{"stopping again reports the call", false},
		{"restarting the relay delivers the call", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newRig(t, false)
			if !r.start() {
				t.Fatalf("device did not start: status %#x", r.status())
			}
			kick, ok := r.remote.KickFD(0)
			call, ok2 := r.remote.CallFD(0)
			if _, ok3 := r.remote.KickFD(1); !ok || !ok2 || ok3 {
				t.Fatalf("eventfds: queue 0 kick %v call %v, disabled queue 1 kick %v", ok, ok2, ok3)
			}
			// The kick as KVM signals it: the request completes, and the
			// relay raises its interrupt.
			_, addrs, err := r.drv.Add(rd(header(blkIn, 3)), wr(blk.SectorSize), wr(1))
			if err != nil {
				t.Fatal(err)
			}
			unix.Write(kick, []byte{1, 0, 0, 0, 0, 0, 0, 0})
			waitFor(t, "the request kicked on the eventfd", func() bool { _, ok, _ := r.drv.Used(); return ok })
			if b, _ := r.drv.Read(addrs[2], 1); b[0] != blkOK {
				t.Fatalf("status %d", b[0])
			}
			waitFor(t, "the relayed interrupt", func() bool { return r.f.Stats().INTx == 1 })
			if r.remote.RelayCalls(0, false) {
				t.Error("a call reported pending that the relay had passed on")
			}
			if err := r.drv.ArmInterrupt(); err != nil {
				t.Fatal(err)
			}
			if st, _ := r.do(rd(header(blkIn, 4)), wr(blk.SectorSize), wr(1)); st != blkOK {
				t.Fatalf("status %d", st)
			}
			waitFor(t, "the back-end's call", func() bool { return readable(call) })
			time.Sleep(10 * time.Millisecond)
			if n := r.f.Stats().INTx; n != 1 {
				t.Fatalf("%d interrupts with the relay stopped, want the first one only", n)
			}
			if tc.restart {
				r.remote.RelayCalls(0, true)
				waitFor(t, "the call the relay missed", func() bool { return r.f.Stats().INTx == 2 })
			} else if !r.remote.RelayCalls(0, false) {
				t.Error("the call made while stopped was not reported")
			}
			time.Sleep(10 * time.Millisecond)
			if n, want := r.f.Stats().INTx, map[bool]uint64{false: 1, true: 2}[tc.restart]; n != want {
				t.Errorf("%d interrupts, want %d", n, want)
			}
			if readable(call) {
				t.Error("the call is still in the eventfd")
			}
		})
	}
	waitFor(t, "goroutines to end", func() bool { return runtime.NumGoroutine() <= goroutines })
	if got := kvmtest.OpenFDs(t); got != fds {
		t.Errorf("%d descriptors open after close, %d before", got, fds)
	}
}
