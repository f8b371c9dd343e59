// Package rng is the virtio entropy device (virtio 1.2, §5.4): one request
// queue whose device-writable buffers the device fills with random bytes
// from the host's kernel (crypto/rand, getrandom(2)), so the guest's
// /dev/hwrng, and through it its entropy pool, has a good source from the
// first boot on.
package rng

import (
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"sync"

	"ember/internal/wake"
	"ember/memory"
	"ember/virtio"
)

// QueueSize is the size of the request queue the device offers.
const QueueSize = 256

// MaxRequest is the most bytes the device puts in one request. The spec lets
// the device fill less than a request's buffers ("MAY use less than the
// entire buffer length", §5.4.6.2) and the driver asks again; the bound keeps
// one request from holding the device, and a Reset waiting on it, for as
// long as it takes to draw gigabytes of randomness.
const MaxRequest = 64 << 10

// Device is a virtio-rng device: no feature bits, no configuration space,
// one request queue. It implements virtio.Device.
type Device struct {
	log *slog.Logger

	mu  sync.Mutex // guards run: Activate and Reset against Notify
	run *server    // the active device's server; nil when inactive
}

// New returns an inactive virtio-rng device that logs to log (nil:
// slog.Default()).
func New(log *slog.Logger) *Device {
	if log == nil {
		log = slog.Default()
	}
	return &Device{log: log}
}

// Type returns virtio.IDRNG.
func (d *Device) Type() uint16 { return virtio.IDRNG }

// Features returns 0: the entropy device has no feature bits.
func (d *Device) Features() uint64 { return 0 }

// QueueSizes returns the one request queue's size.
func (d *Device) QueueSizes() []uint16 { return []uint16{QueueSize} }

// ReadConfig reads zeros: the device has no configuration space.
func (d *Device) ReadConfig(off uint64, data []byte) { clear(data) }

// WriteConfig ignores the write: the device has no configuration space.
func (d *Device) WriteConfig(off uint64, data []byte) {}

// Activate starts serving the request queue, which the transport has
// validated, on a goroutine of the device's own. A driver that left the queue disabled gets a device that serves
// nothing. After activation a bad request is logged and stops the queue
// (see server.serve): virtio.Device has no way yet to report
// DEVICE_NEEDS_RESET once Activate has returned.
func (d *Device) Activate(mem *memory.Guest, features uint64, queues []*virtio.Queue, interrupt func(queue int)) error {
	if len(queues) != 1 {
		return fmt.Errorf("virtio-rng: activated with %d queues, want 1", len(queues))
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.run != nil {
		return errors.New("virtio-rng: activated twice without a reset")
	}
	q := queues[0]
	if q == nil {
		d.log.Debug("virtio-rng: the driver left the request queue disabled")
		return nil
	}
	d.run = &server{
		log: d.log, mem: mem, queue: q, interrupt: interrupt,
		kick: wake.NewSignal(), stop: wake.NewStop(), done: make(chan struct{}),
	}
	go d.run.serve()
	return nil
}

// Notify wakes the server: the driver added requests. A kick that arrives
// while one is pending is merged with it; the server drains the whole queue
// for each.
func (d *Device) Notify(queue int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.run == nil || queue != 0 {
		return
	}
	d.run.kick.Send()
}

// Reset stops the server and waits until its goroutine has returned; the
// device is inactive again and can be activated anew.
func (d *Device) Reset() {
	d.mu.Lock()
	run := d.run
	d.run = nil
	d.mu.Unlock()
	if run != nil {
		close(run.stop)
		<-run.done
	}
}

// server serves the request queue of one activation.
type server struct {
	log       *slog.Logger
	mem       *memory.Guest
	queue     *virtio.Queue
	interrupt func(queue int)
	kick      wake.Signal   // a pending notification
	stop      wake.Stop     // given by Reset
	done      chan struct{} // closed when serve returns
	warned    bool          // a request with a readable buffer was logged
}

// serve drains the queue at every kick until Reset. A queue the driver broke
// is logged and no longer served: the device would be DEVICE_NEEDS_RESET,
// and the driver's reset is what brings it back.
func (s *server) serve() {
	defer close(s.done)
	for {
		select {
		case <-s.stop:
			return
		case <-s.kick:
		}
		if err := s.drain(); err != nil {
			s.log.Error("virtio-rng: request queue stopped until the driver resets the device", "err", err)
			<-s.stop
			return
		}
	}
}

// drain serves every request the driver made available, then interrupts
// the driver if it wants to be told. It returns early when Reset stops it.
func (s *server) drain() error {
	defer s.notifyDriver()
	for {
		select {
		case <-s.stop:
			return nil
		default:
		}
		c, err := s.queue.Pop(s.mem)
		if err != nil || c == nil {
			return err
		}
		if err := s.queue.Push(s.mem, c.Head, s.fill(c)); err != nil {
			return err
		}
	}
}

// fill puts random bytes in c's device-writable buffers, up to MaxRequest,
// and returns how many. A request with a device-readable buffer is not one
// the entropy device knows ("the driver MUST NOT place device-readable
// buffers into the queue", §5.4.6.1): it is returned empty, and the first of
// an activation is logged, so a driver cannot flood the host's log.
func (s *server) fill(c *virtio.Chain) uint32 {
	if len(c.Readable) > 0 {
		if !s.warned {
			s.warned = true
			s.log.Warn("virtio-rng: request with a device-readable buffer returned empty (further ones are not logged)",
				"head", c.Head, "readable", c.ReadableLen())
		}
		return 0
	}
	n := 0
	for _, b := range c.Writable {
		b = b[:min(len(b), MaxRequest-n)]
		rand.Read(b) // never fails (crypto/rand since Go 1.24)
		if n += len(b); n == MaxRequest {
			break
		}
	}
	return uint32(n)
}

// notifyDriver interrupts the driver if what drain put in the used ring
// calls for it.
func (s *server) notifyDriver() {
	if s.queue.NeedsInterrupt(s.mem) {
		s.interrupt(0)
	}
}
