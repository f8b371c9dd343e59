package rng_test

import (
	"bytes"
	"log/slog"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"ember/internal/testlog"
	"ember/memory"
	"ember/virtio"
	"ember/virtio/rng"
	"ember/virtio/virtiotest"
)

// wait bounds every wait for the device: long enough for a loaded machine,
// short enough to fail a stuck test.
const wait = 10 * time.Second

// fixture is a device activated on a queue a virtiotest.Driver plays.
type fixture struct {
	mem  *memory.Guest
	drv  *virtiotest.Driver
	dev  *rng.Device
	irq  chan struct{} // one pending interrupt, as a line would hold it
	irqs atomic.Int64  // interrupts raised
	logs testlog.Records
}

// newFixture activates a device on a queue of rng.QueueSize at 0x1000 in
// 4 MiB of guest RAM; the device is reset when the test ends.
func newFixture(t *testing.T, eventIdx bool) *fixture {
	t.Helper()
	mem, err := memory.New([]memory.Range{{GPA: 0, Size: 4 << 20}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { mem.Close() })
	drv, err := virtiotest.New(mem, virtiotest.Config{Base: 0x1000, Size: rng.QueueSize, EventIdx: eventIdx})
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{mem: mem, drv: drv, irq: make(chan struct{}, 1), logs: make(testlog.Records, 16)}
	f.dev = rng.New(slog.New(f.logs))
	interrupt := func(queue int) {
		if queue != 0 {
			t.Errorf("interrupt for queue %d", queue)
		}
		f.irqs.Add(1)
		select {
		case f.irq <- struct{}{}:
		default:
		}
	}
	if err := f.dev.Activate(mem, virtio.FeatureVersion1, []*virtio.Queue{drv.Queue}, interrupt); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(f.dev.Reset)
	return f
}

// add offers a chain and notifies the device if the driver must.
func (f *fixture) add(t *testing.T, bufs ...virtiotest.Buffer) (uint16, []uint64) {
	t.Helper()
	old := f.drv.AvailIdx()
	head, gpas, err := f.drv.Add(bufs...)
	if err != nil {
		t.Fatal(err)
	}
	if notify, err := f.drv.NeedsNotify(old); err != nil {
		t.Fatal(err)
	} else if notify {
		f.dev.Notify(0)
	}
	return head, gpas
}

// used returns the next used element, waiting for an interrupt when there
// is none yet.
func (f *fixture) used(t *testing.T) virtiotest.Used {
	t.Helper()
	deadline := time.After(wait)
	for {
		if u, ok, err := f.drv.Used(); err != nil || ok {
			if err != nil {
				t.Fatal(err)
			}
			return u
		}
		if err := f.drv.ArmInterrupt(); err != nil {
			t.Fatal(err)
		}
		if u, ok, err := f.drv.Used(); err != nil || ok {
			if err != nil {
				t.Fatal(err)
			}
			return u
		}
		select {
		case <-f.irq:
		case <-deadline:
			t.Fatalf("no used buffer after %v", wait)
		}
	}
}

// log waits for the device to log a record at level or above.
func (f *fixture) log(t *testing.T, level slog.Level) slog.Record {
	t.Helper()
	rec, ok := f.logs.Next(level, wait)
	if !ok {
		t.Fatalf("nothing logged at %v after %v", level, wait)
	}
	return rec
}

// TestServesRandomBytes: two requests, one of one buffer and one of two,
// come back filled with random bytes, with their lengths, and an interrupt.
func TestServesRandomBytes(t *testing.T) {
	f := newFixture(t, false)
	head1, gpas1 := f.add(t, virtiotest.Writable(16))
	head2, gpas2 := f.add(t, virtiotest.Writable(8), virtiotest.Writable(24))
	want := map[uint16]uint32{head1: 16, head2: 32}
	for range 2 {
		u := f.used(t)
		if want[u.Head] != u.Len {
			t.Errorf("used head %d with %d bytes, want one of %v", u.Head, u.Len, want)
		}
		delete(want, u.Head)
	}
	for _, b := range []struct {
		gpa uint64
		n   int
	}{{gpas1[0], 16}, {gpas2[0], 8}, {gpas2[1], 24}} {
		got, err := f.drv.Read(b.gpa, b.n)
		if err != nil || bytes.Count(got, []byte{0}) == b.n {
			t.Errorf("buffer at %#x: %x, %v; want random bytes", b.gpa, got, err)
		}
	}
	if f.irqs.Load() == 0 {
		t.Error("no interrupt")
	}
}

// TestServesAtMostMaxRequest: a request larger than rng.MaxRequest gets
// MaxRequest bytes and its length says so; the rest is untouched.
func TestServesAtMostMaxRequest(t *testing.T) {
	f := newFixture(t, false)
	_, gpas := f.add(t, virtiotest.Writable(rng.MaxRequest-10), virtiotest.Writable(100))
	if u := f.used(t); u.Len != rng.MaxRequest {
		t.Errorf("used length %d, want %d", u.Len, rng.MaxRequest)
	}
	got, err := f.drv.Read(gpas[1], 100)
	if err != nil || bytes.Count(got[:10], []byte{0}) == 10 || bytes.Count(got[10:], []byte{0}) != 90 {
		t.Errorf("second buffer %x, %v; want 10 random bytes then zeros", got, err)
	}
}

// TestReadableRequestReturnedEmpty: a request with a device-readable buffer
// is returned with no bytes and logged once; the queue goes on.
func TestReadableRequestReturnedEmpty(t *testing.T) {
	f := newFixture(t, false)
	f.add(t, virtiotest.Readable([]byte("hostile")), virtiotest.Writable(16))
	if u := f.used(t); u.Len != 0 {
		t.Errorf("used length %d, want 0", u.Len)
	}
	if r := f.log(t, slog.LevelWarn); !strings.Contains(r.Message, "device-readable") {
		t.Errorf("logged %q", r.Message)
	}
	f.add(t, virtiotest.Readable([]byte("again")), virtiotest.Writable(16))
	f.add(t, virtiotest.Writable(16))
	if u := f.used(t); u.Len != 0 {
		t.Errorf("second bad request: used length %d, want 0", u.Len)
	}
	if u := f.used(t); u.Len != 16 {
		t.Errorf("good request after bad ones: used length %d, want 16", u.Len)
	}
	select {
	case r := <-f.logs:
		t.Errorf("logged again: %q", r.Message)
	default:
	}
}

// TestBadChainStopsTheQueue: a malformed chain (here a loop) is logged and
// the device serves nothing more until it is reset.
func TestBadChainStopsTheQueue(t *testing.T) {
	f := newFixture(t, false)
	if err := f.drv.SetDesc(0, virtiotest.Desc{Addr: 0x100000, Len: 16, Flags: virtio.DescWrite | virtio.DescNext, Next: 0}); err != nil {
		t.Fatal(err)
	}
	if err := f.drv.Offer(0); err != nil {
		t.Fatal(err)
	}
	f.dev.Notify(0)
	if r := f.log(t, slog.LevelError); !strings.Contains(r.Message, "stopped") {
		t.Errorf("logged %q", r.Message)
	}
	f.add(t, virtiotest.Writable(16))
	f.dev.Notify(0)
	f.dev.Reset() // waits for the server: whatever it would do is done
	if idx, err := f.drv.UsedIdx(); idx != 0 || err != nil {
		t.Errorf("used idx %d, %v after the queue stopped; want 0", idx, err)
	}
}

// TestManyRequestsWithNotificationSuppression: a driver that notifies and
// waits for interrupts only as the rings say it must (EVENT_IDX's
// avail_event and used_event, or the flags) gets thousands of requests
// served while it keeps adding them: neither side misses the other's
// notification.
func TestManyRequestsWithNotificationSuppression(t *testing.T) {
	for _, eventIdx := range []bool{false, true} {
		f := newFixture(t, eventIdx)
		const requests = 5000
		added, served := 0, 0
		for served < requests {
			for added < requests && added-served < rng.QueueSize {
				f.add(t, virtiotest.Writable(8))
				added++
			}
			if u := f.used(t); u.Len != 8 {
				t.Fatalf("EventIdx=%v: used length %d, want 8", eventIdx, u.Len)
			}
			served++
		}
		t.Logf("EventIdx=%v: %d requests, %d interrupts", eventIdx, requests, f.irqs.Load())
	}
}

// TestResetStopsTheServer: Reset returns after the device's goroutine has,
// so activations and resets leak no goroutines; a reset device can be
// activated again, and Notify on an inactive one does nothing.
func TestResetStopsTheServer(t *testing.T) {
	mem, err := memory.New([]memory.Range{{GPA: 0, Size: 1 << 20}})
	if err != nil {
		t.Fatal(err)
	}
	defer mem.Close()
	base := runtime.NumGoroutine()
	dev := rng.New(slog.New(slog.DiscardHandler))
	dev.Reset()
	dev.Notify(0)
	for i := range 100 {
		drv, err := virtiotest.New(mem, virtiotest.Config{Base: 0x1000, Size: rng.QueueSize})
		if err != nil {
			t.Fatal(err)
		}
		if err := dev.Activate(mem, 0, []*virtio.Queue{drv.Queue}, func(int) {}); err != nil {
			t.Fatalf("activation %d: %v", i, err)
		}
		if err := dev.Activate(mem, 0, []*virtio.Queue{drv.Queue}, func(int) {}); err == nil {
			t.Fatal("a second Activate without Reset succeeded")
		}
		dev.Notify(0)
		dev.Reset()
	}
	dev.Notify(0)
	// A goroutine that has closed its done channel may not have exited yet;
	// there is nothing to wait on for that but the count itself.
	deadline := time.Now().Add(wait)
	for runtime.NumGoroutine() > base && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > base {
		t.Errorf("%d goroutines after 100 activations and resets, %d before", n, base)
	}
}

// TestActivateRefusesABrokenSetup: the wrong number of queues fails
// Activate (the transport then sets DEVICE_NEEDS_RESET); a disabled queue
// makes a device that serves nothing.
func TestActivateRefusesABrokenSetup(t *testing.T) {
	mem, err := memory.New([]memory.Range{{GPA: 0, Size: 1 << 20}})
	if err != nil {
		t.Fatal(err)
	}
	defer mem.Close()
	dev := rng.New(nil)
	q := &virtio.Queue{Size: 256, Desc: 0x1000, Driver: 0x2000, Device: 0x3000, Ready: true}
	for _, queues := range [][]*virtio.Queue{nil, {q, q}} {
		if err := dev.Activate(mem, 0, queues, func(int) {}); err == nil {
			t.Errorf("Activate with %d queues (%v) succeeded", len(queues), queues)
			dev.Reset()
		}
	}
	if err := dev.Activate(mem, 0, []*virtio.Queue{nil}, func(int) {}); err != nil {
		t.Errorf("Activate with the queue disabled: %v", err)
	}
	dev.Notify(0)
	dev.Reset()
}

// TestDeviceDescription: device ID 4, no features, one queue of
// rng.QueueSize, no configuration space.
func TestDeviceDescription(t *testing.T) {
	dev := rng.New(nil)
	if dev.Type() != virtio.IDRNG || dev.Features() != 0 {
		t.Errorf("type %d, features %#x", dev.Type(), dev.Features())
	}
	if qs := dev.QueueSizes(); len(qs) != 1 || qs[0] != rng.QueueSize {
		t.Errorf("queue sizes %v", qs)
	}
	b := []byte{1, 2, 3, 4}
	dev.WriteConfig(0, b)
	dev.ReadConfig(0, b)
	if !bytes.Equal(b, make([]byte, 4)) {
		t.Errorf("config space reads %x, want zeros", b)
	}
}
