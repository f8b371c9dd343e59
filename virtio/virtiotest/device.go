package virtiotest

import (
	"sync"

	"ember/memory"
	"ember/virtio"
)

// Device is a virtio.Device that records what a transport asks of it, for
// transport tests: a virtio-rng type with a device feature (bit 5), two
// queues (256 and 128), and configuration bytes that read as their offset.
type Device struct {
	mu        sync.Mutex
	activated [][]*virtio.Queue
	features  uint64
	notified  []int
	resets    int
	interrupt func(int)
	events    virtio.Events
	// Fail, if set, is what Activate returns.
	Fail error
}

// Type returns virtio.IDRNG.
func (d *Device) Type() uint16 { return virtio.IDRNG }

// Features offers bit 5.
func (d *Device) Features() uint64 { return 1 << 5 }

// QueueSizes returns two queues' maxima.
func (d *Device) QueueSizes() []uint16 { return []uint16{256, 128} }

// ReadConfig fills data with the offsets it covers.
func (d *Device) ReadConfig(off uint64, data []byte) {
	for i := range data {
		data[i] = byte(off) + byte(i)
	}
}

// WriteConfig ignores writes.
func (d *Device) WriteConfig(uint64, []byte) {}

// Activate records the activation (or fails with Fail).
func (d *Device) Activate(_ *memory.Guest, f uint64, qs []*virtio.Queue, irq func(int)) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.Fail != nil {
		return d.Fail
	}
	d.activated, d.features, d.interrupt = append(d.activated, qs), f, irq
	return nil
}

// Notify records the queue.
func (d *Device) Notify(q int) { d.mu.Lock(); d.notified = append(d.notified, q); d.mu.Unlock() }

// Reset counts resets.
func (d *Device) Reset() { d.mu.Lock(); d.resets++; d.mu.Unlock() }

// Activations returns the queues of each activation so far.
func (d *Device) Activations() [][]*virtio.Queue {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([][]*virtio.Queue(nil), d.activated...)
}

// Notified returns the queues notified so far.
func (d *Device) Notified() []int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]int(nil), d.notified...)
}

// Resets returns how many times the device was reset.
func (d *Device) Resets() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.resets
}

// Interrupt calls the interrupt callback of the last activation, as the
// device does after it used buffers of queue q.
func (d *Device) Interrupt(q int) {
	d.mu.Lock()
	irq := d.interrupt
	d.mu.Unlock()
	irq(q)
}

// SetEvents keeps the transport's events (virtio.EventSource).
func (d *Device) SetEvents(e virtio.Events) { d.mu.Lock(); d.events = e; d.mu.Unlock() }

// Events returns what SetEvents was given.
func (d *Device) Events() virtio.Events {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.events
}
