package net

import "ember/virtio"

// transmitter serves the transmit queue: every chain is one packet, header
// and frame, which goes to the backend in one write straight from guest
// memory and is returned to the driver with nothing written.
type transmitter struct{ *worker }

// run sends what the driver made available at activation and at every
// notification, until Reset.
func (t *transmitter) run() {
	for {
		if err := t.drain(); err != nil {
			t.fail(err)
			return
		}
		if !t.wait() {
			return
		}
	}
}

// drain sends every packet the driver made available. With EVENT_IDX it
// interrupts the driver after any packet the driver asked to hear of:
// Linux asks once three quarters of what it queued is sent, and the
// interrupt lets it free those buffers and queue more while the rest is
// still being sent, where one interrupt at the end of the drain left it
// waiting for the whole batch. Without EVENT_IDX a driver that wants
// interrupts wants one for every buffer, so there it is one per drain.
// An error is a queue the driver broke.
func (t *transmitter) drain() error {
	defer t.notifyDriver()
	for !t.stopped() {
		c, err := t.pop()
		if err != nil || c == nil {
			return err
		}
		t.send(c)
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
// malformed one, or one the backend refuses, is logged and counted.
func (t *transmitter) send(c *virtio.Chain) {
	st := &t.d.stats
	p, err := parseTX(c, t.features)
	if err != nil {
		st.txDropped.Add(1)
		t.warn("virtio-net: transmit chain dropped", "head", c.Head, "err", err)
		return
	}
	if _, err := t.d.backend.WritePacket(p.buffers()); err != nil {
		st.txDropped.Add(1)
		if !t.stopped() {
			t.warn("virtio-net: the backend refused a packet", "bytes", p.frameLen, "err", err)
		}
		return
	}
	st.txPackets.Add(1)
	st.txBytes.Add(uint64(p.frameLen))
}
