package net

import (
	"errors"

	"ember/virtio"
)

// errWouldBlock is a write the backend cannot take without waiting, on the
// device's thread, which does not wait for it.
var errWouldBlock = errors.New("virtio-net: the backend is full")

// transmitter serves the transmit queue: every chain is one packet, header
// and frame, which goes to the backend in one write straight from guest
// memory and is returned to the driver with nothing written.
type transmitter struct {
	*worker
	// write sends one packet: the backend's WritePacket, which waits
	// while the backend is full, or on the device's thread a write that
	// returns errWouldBlock instead.
	write func(bufs [][]byte) (int, error)
	held  *virtio.Chain // a packet the backend could not take yet; sent first
	// chain and packet are reused for every chain, one at a time (held is
	// chain when set), so the transmit path allocates nothing a packet.
	chain  virtio.Chain
	packet txPacket
}

// newTransmitter returns the transmitter of w's queue, writing with write.
func newTransmitter(w *worker, write func([][]byte) (int, error)) *transmitter {
	return &transmitter{worker: w, write: write}
}

// run sends what the driver made available at activation and at every
// notification, until Reset. It serves the queue on a goroutine of its
// own, where writes wait for the backend.
func (t *transmitter) run() {
	for {
		if err := t.drain(); err != nil {
			t.fail(err, true)
			return
		}
		if !t.wait() {
			return
		}
	}
}

// drain sends every packet the driver made available, or until the backend
// cannot take one without waiting (held keeps it, for the next drain). With
// EVENT_IDX it interrupts the driver after any packet the driver asked to
// hear of: Linux asks once three quarters of what it queued is sent, and
// the interrupt lets it free those buffers and queue more while the rest
// is still being sent, where one interrupt at the end of the drain left it
// waiting for the whole batch. Without EVENT_IDX a driver that wants
// interrupts wants one for every buffer, so there it is one per drain. An
// error is a queue the driver broke.
func (t *transmitter) drain() error {
	defer t.notifyDriver()
	for !t.stopped() {
		c := t.held
		if c == nil {
			var err error
			if c, err = t.popInto(&t.chain); err != nil || c == nil {
				return err
			}
		}
		if t.held = nil; !t.send(c) {
			t.held = c
			return nil
		}
		if err := t.q.Push(t.mem, c.Head, 0); err != nil {
			return err
		}
		if t.q.EventIdx {
			t.notifyDriver()
		}
	}
	return nil
}

// send checks one transmit chain and writes its packet to the backend; a
// malformed one, or one the backend refuses, is logged and counted. False
// if the backend cannot take it yet (errWouldBlock): the chain stays with
// the device.
func (t *transmitter) send(c *virtio.Chain) bool {
	st := t.d.stats
	p := &t.packet
	if err := p.parse(c, t.features); err != nil {
		st.txDropped.Add(1)
		t.warn("virtio-net: transmit chain dropped", "head", c.Head, "err", err)
		return true
	}
	if _, err := t.write(p.buffers()); err != nil {
		if errors.Is(err, errWouldBlock) {
			return false
		}
		st.txDropped.Add(1)
		if !t.stopped() {
			t.warn("virtio-net: the backend refused a packet", "bytes", p.frameLen, "err", err)
		}
		return true
	}
	st.txPackets.Add(1)
	st.txBytes.Add(uint64(p.frameLen))
	return true
}
