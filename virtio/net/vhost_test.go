package net

import (
	"bytes"
	"log/slog"
	"runtime"
	"testing"
	"time"

	"ember/internal/kvmtest"
	"ember/virtio/virtiotest"
)

// vhostRig is a rig whose device has vhost-net serve its queues on a real
// TAP, with a packet socket on the TAP's host side and the transport's
// events recorded.
type vhostRig struct {
	*rig
	ps     *packetSocket
	events *recordedEvents
}

// newVhostRig puts a vhost-served device on a fresh TAP that is up and
// activates it with MRG_RXBUF and EVENT_IDX.
func newVhostRig(t *testing.T) *vhostRig {
	t.Helper()
	kvmtest.RequireVhostNet(t)
	tap := openTestTAP(t)
	if err := tap.Up(); err != nil {
		t.Fatal(err)
	}
	r := &vhostRig{rig: newRigWith(t, Config{Backend: tap, Vhost: true}), ps: openPacketSocket(t, tap.Name()),
		events: &recordedEvents{reset: make(chan error, 1)}}
	r.dev.SetEvents(r.events)
	r.activate(FeatureMrgRxbuf, true)
	return r
}

// recordedEvents is a transport's virtio.Events that records NeedsReset.
type recordedEvents struct{ reset chan error }

func (e *recordedEvents) NeedsReset(err error) {
	select {
	case e.reset <- err:
	default:
	}
}
func (e *recordedEvents) ConfigChanged() {}

// exchange sends a frame each way and checks both arrive.
func (r *vhostRig) exchange(t *testing.T, seed byte) {
	t.Helper()
	out := frame(300, seed)
	r.add(TXQueue, virtiotest.Readable(hdr(header{})), virtiotest.Readable(out))
	r.ps.find(t, func(_ header, fr []byte) bool { return bytes.Equal(fr, out) })
	pool := r.postRX(4, 2048)
	in := frame(200, seed+1)
	copy(in, testMAC)
	r.ps.send(t, header{}, in)
	pool.find(t, func(_ header, fr []byte) bool { return bytes.Equal(fr, in) })
}

// TestVhostFeatures: with vhost the device offers what it offers without,
// MRG_RXBUF included where vhost-net merges (every kernel since 2.6.35),
// and ember's counters stay at zero: the packets never pass through it.
func TestVhostFeatures(t *testing.T) {
	r := newVhostRig(t)
	if got := r.dev.Features(); got != offered {
		t.Errorf("features %#x with vhost, %#x without", got, uint64(offered))
	}
	r.exchange(t, 40)
	if s := r.dev.Stats(); s != (Stats{}) {
		t.Errorf("stats %+v: ember counted packets vhost moved", s)
	}
}

// TestVhostBadDescriptor: a transmit descriptor outside guest RAM makes
// vhost-net stop the queue; the device logs it and asks for a reset
// (DEVICE_NEEDS_RESET), and after the driver's reset both queues work.
func TestVhostBadDescriptor(t *testing.T) {
	r := newVhostRig(t)
	r.offerOutsideRAM()
	select {
	case err := <-r.events.reset:
		t.Logf("NeedsReset: %v", err)
	case <-time.After(wait):
		t.Fatal("no DEVICE_NEEDS_RESET after a descriptor outside guest RAM")
	}
	r.logged(slog.LevelError)
	r.dev.Reset()
	r.activate(FeatureMrgRxbuf, true)
	r.exchange(t, 42)
}

// TestVhostReleasesEverything: activations, a reset and Close leave no
// descriptor behind (vhost-net's, the eventfds, the TAP) and no goroutine
// (the relays, the error watcher).
func TestVhostReleasesEverything(t *testing.T) {
	kvmtest.RequireVhostNet(t)
	fds, goroutines := kvmtest.OpenFDs(t), runtime.NumGoroutine()
	t.Run("device", func(t *testing.T) {
		r := newVhostRig(t)
		r.exchange(t, 44)
		r.dev.Reset()
		r.activate(FeatureMrgRxbuf, false)
		r.exchange(t, 46)
	})
	if after := kvmtest.OpenFDs(t); after != fds {
		t.Errorf("%d descriptors open before, %d after", fds, after)
	}
	for deadline := time.Now().Add(wait); runtime.NumGoroutine() > goroutines; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			t.Fatalf("%d goroutines, %d before:\n%s", runtime.NumGoroutine(), goroutines, buf[:runtime.Stack(buf, true)])
		}
	}
}

// TestVhostNeedsTAP: vhost is refused for a backend that is not a TAP.
func TestVhostNeedsTAP(t *testing.T) {
	b, _ := socketPair(t)
	if _, err := New(Config{Backend: b, Vhost: true}); err == nil {
		t.Error("a vhost device on a socket pair was made")
	}
}
