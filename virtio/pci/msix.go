package pci

import (
	"encoding/binary"
	"log/slog"
)

// A Vector is an MSI-X vector's own path into the VM, one that costs no
// system call but a write per interrupt: pc gives each vector a KVM irqfd
// (eventfd.MSIVector), an eventfd KVM turns into the vector's message inside the
// kernel. Config.NewVector makes them; the function calls their methods
// under its register lock, never two at once.
type Vector interface {
	// Signal delivers the message the vector is routed to.
	Signal() error
	// SetMessage routes the vector to another message: the driver rewrote
	// its table entry.
	SetMessage(addr uint64, data uint32) error
	// Close releases the vector (its eventfd and GSI).
	Close() error
}

// An FDVector is a Vector that can deliver its message for other eventfds
// too: pc binds a device's eventfd with KVM_IRQFD to the vector's GSI, so
// an out-of-process back-end's signal on it reaches the guest without
// ember (virtio.QueueEventFDs). The function calls its methods under its
// register lock.
type FDVector interface {
	Vector
	// Bind makes a signal on the eventfd fd deliver the vector's message,
	// as Signal does, until Unbind.
	Bind(fd int) error
	// Unbind undoes Bind; when it returns, a signal on fd no longer
	// reaches the guest. The function unbinds every eventfd before it
	// closes the vector.
	Unbind(fd int) error
}

// message is an MSI-X table entry's message: where it is written and what.
type message struct {
	addr uint64
	data uint32
}

// msixTable is the function's MSI-X table and pending-bit array (PCI Local
// Bus 3.0, §6.8.2), in BAR0, and where each vector's messages go: to its
// Vector if it has one, else through send.
//
// A vector gets a Vector (newVector) the first time it is live: MSI-X
// enabled, neither the function nor the vector masked. Its route follows the
// entry while it is live (a rewrite of the message reroutes it before any
// interrupt can use it); a masked vector keeps its Vector but sends nothing
// on it, and sets its pending bit instead, which unmasking delivers.
// Disabling MSI-X, the function's reset and its Close release every Vector.
// If making or rerouting one fails, the table logs a warning, releases them
// all and sends every message through send (one ioctl each) until MSI-X is
// disabled or the function reset.
type msixTable struct {
	n       int
	entries []byte // 16 bytes a vector: address low, high, data, vector control
	pending []bool
	enabled bool
	masked  bool // the function mask

	send      func(lo, hi, data uint32) error                // Config.MSI
	newVector func(addr uint64, data uint32) (Vector, error) // Config.NewVector; nil: send only
	log       *slog.Logger
	stats     *Stats
	unbind    func(i int) // takes other eventfds off vector i's Vector before it is closed

	vectors  []Vector  // vector i's Vector, or nil
	routed   []message // the message vectors[i] is routed to
	unrouted bool      // routing failed: send carries every message
	closed   bool      // Close: no more Vectors
}

// init sizes the table for n vectors, each masked, as at reset.
func (t *msixTable) init(n int) {
	t.n = n
	t.entries = make([]byte, 16*n)
	t.pending = make([]bool, n)
	t.vectors = make([]Vector, n)
	t.routed = make([]message, n)
	t.reset()
}

// reset returns the table to its power-on state: MSI-X disabled, every
// vector masked with an empty message, nothing pending, no Vectors.
func (t *msixTable) reset() {
	t.release()
	t.enabled, t.masked, t.unrouted = false, false, false
	clear(t.entries)
	clear(t.pending)
	for i := range t.n {
		t.entries[16*i+12] = msixVectorMask
	}
}

// close releases every Vector for good: the function is going away.
func (t *msixTable) close() {
	t.release()
	t.closed = true
}

// accept returns v if it names a vector of the table, else NO_VECTOR: the
// driver reads the register back to learn its choice was refused.
func (t *msixTable) accept(v uint16) uint16 {
	if int(v) < t.n {
		return v
	}
	return noVector
}

// setControl applies the message control's enable and function-mask bits:
// disabling releases the Vectors; unmasking routes the live vectors and
// delivers what it releases.
func (t *msixTable) setControl(ctl uint16) {
	was := t.enabled
	t.enabled, t.masked = ctl&msixEnable != 0, ctl&msixMaskAll != 0
	if was && !t.enabled {
		t.release()
		t.unrouted = false // the next enable tries irqfds again
	}
	t.update()
}

// read reads the table or the PBA at off (from the table's start).
func (t *msixTable) read(off uint64, data []byte) {
	clear(data)
	switch {
	case off < uint64(len(t.entries)):
		copy(data, t.entries[off:])
	case off >= msixPBAOff-msixTableOff:
		var bits uint64
		base := int(off-(msixPBAOff-msixTableOff)) * 8
		for i := 0; i < 64 && base+i < t.n; i++ {
			if t.pending[base+i] {
				bits |= 1 << i
			}
		}
		var b [8]byte
		binary.LittleEndian.PutUint64(b[:], bits)
		copy(data, b[:])
	}
}

// write writes the table at off; a live vector's route follows its new
// message, and unmasking a vector with its pending bit set delivers it.
func (t *msixTable) write(off uint64, data []byte) {
	if off >= uint64(len(t.entries)) {
		return
	}
	copy(t.entries[off:], data)
	t.update()
}

// live reports whether vector i may send: MSI-X on, neither the function
// nor the vector masked.
func (t *msixTable) live(i int) bool {
	return t.enabled && !t.masked && t.entries[16*i+12]&msixVectorMask == 0
}

// message returns vector i's message as its entry holds it.
func (t *msixTable) message(i int) message {
	e := t.entries[16*i:]
	le := binary.LittleEndian
	return message{addr: uint64(le.Uint32(e[4:]))<<32 | uint64(le.Uint32(e)), data: le.Uint32(e[8:])}
}

// update brings the routes of the live vectors to their messages, then
// delivers pending vectors that are live.
func (t *msixTable) update() {
	t.route()
	for i, p := range t.pending {
		if p && t.live(i) {
			t.pending[i] = false
			t.deliver(i)
		}
	}
}

// route gives each live vector a Vector routed to its message, making or
// rerouting one where needed. A failure falls back to send.
func (t *msixTable) route() {
	if t.newVector == nil || t.unrouted || t.closed {
		return
	}
	for i := range t.n {
		if !t.live(i) {
			continue
		}
		m := t.message(i)
		switch {
		case t.vectors[i] == nil:
			v, err := t.newVector(m.addr, m.data)
			if err != nil {
				t.fallBack(i, err)
				return
			}
			t.vectors[i], t.routed[i] = v, m
		case t.routed[i] != m:
			if err := t.vectors[i].SetMessage(m.addr, m.data); err != nil {
				t.fallBack(i, err)
				return
			}
			t.routed[i] = m
		}
	}
}

// fallBack gives up on Vectors after vector i's failed: it logs why,
// releases them all and lets send carry every message.
func (t *msixTable) fallBack(i int, err error) {
	t.log.Warn("virtio-pci: an MSI-X vector could not be routed to an irqfd; the function's interrupts go through KVM_SIGNAL_MSI, one ioctl each, until MSI-X is re-enabled",
		"vector", i, "err", err)
	t.release()
	t.unrouted = true
}

// release closes every Vector.
func (t *msixTable) release() {
	for i, v := range t.vectors {
		if v == nil {
			continue
		}
		if t.unbind != nil {
			t.unbind(i)
		}
		if err := v.Close(); err != nil {
			t.log.Warn("virtio-pci: releasing an MSI-X vector", "vector", i, "err", err)
		}
		t.vectors[i], t.routed[i] = nil, message{}
	}
}

// fdVector returns vector i's Vector if it is live and can bind other
// eventfds.
func (t *msixTable) fdVector(i int) (FDVector, bool) {
	if i >= t.n || !t.live(i) {
		return nil, false
	}
	v, ok := t.vectors[i].(FDVector)
	return v, ok
}

// signal sends vector's message, or marks it pending while it is masked.
func (t *msixTable) signal(v uint16) {
	if int(v) >= t.n {
		return // NO_VECTOR: the driver asked for no interrupt
	}
	if !t.live(int(v)) {
		t.pending[v] = true
		return
	}
	t.deliver(int(v))
}

// deliver sends live vector i's message: a signal on its Vector, or the
// message through send. Its route is current: route ran after the last
// change of the entry or of the mask bits.
func (t *msixTable) deliver(i int) {
	if v := t.vectors[i]; v != nil {
		err := v.Signal()
		if err == nil {
			t.stats.IRQFD++
			return
		}
		t.fallBack(i, err)
	}
	if t.send == nil {
		return
	}
	m := t.message(i)
	t.stats.MSI++
	if err := t.send(uint32(m.addr), uint32(m.addr>>32), m.data); err != nil {
		t.log.Warn("virtio-pci: MSI-X message refused", "vector", i, "err", err)
	}
}
