package vsock

import "ember/virtio"

// minRXChain is the least room an rx chain must have: a header and one
// payload byte, so that whatever a connection has to send, part of it fits.
const minRXChain = HeaderSize + 1

// interruptBatch is how many packets the rx worker delivers before it asks
// whether the driver wants an interrupt, when it has more to deliver.
const interruptBatch = 32

// serveRX delivers packets for the guest into the driver's rx buffers until
// Reset: one packet per chain, waiting for a packet to send (session.work)
// and, when the queue is empty, for the driver's notification, never
// spinning. A chain taken when there turned out to be nothing to send is
// held for the next packet.
func (s *session) serveRX() {
	defer s.wg.Done()
	w := &worker{s: s, q: s.rxq, index: RXQueue, kick: s.rxKick}
	var held *virtio.Chain
	for sent := 0; !s.stopped(); {
		if !s.hasPacket() {
			w.notifyDriver()
			s.wait(s.work)
			continue
		}
		if held == nil {
			if held = w.popRX(); held == nil {
				w.notifyDriver()
				if w.broken {
					<-s.stop
					return
				}
				s.wait(w.kick)
				continue
			}
		}
		n, ok := s.fill(held)
		if !ok {
			continue
		}
		if !w.push(held.Head, n) {
			<-s.stop
			return
		}
		held = nil
		if sent++; sent%interruptBatch == 0 {
			w.notifyDriver()
		}
	}
}

// popRX returns the next chain that can take a packet: rx buffers are
// device-writable (§5.10.6, "Receive and Transmit") and must have
// minRXChain bytes of room. Others are logged and returned empty.
func (w *worker) popRX() *virtio.Chain {
	for {
		c := w.pop()
		if c == nil {
			return nil
		}
		if len(c.Readable) == 0 && c.WritableLen() >= minRXChain {
			return c
		}
		w.s.d.refuse("rx chain that cannot hold a packet returned empty",
			"head", c.Head, "readable", c.ReadableLen(), "writable", c.WritableLen())
		if !w.push(c.Head, 0) {
			return nil
		}
	}
}

// hasPacket says whether a packet for the guest may be waiting.
func (s *session) hasPacket() bool {
	s.d.mu.Lock()
	defer s.d.mu.Unlock()
	return len(s.ctrl) > 0 || len(s.ready) > 0
}

// fill writes the next packet for the guest into c and returns its size;
// false if there was none after all.
func (s *session) fill(c *virtio.Chain) (uint32, bool) {
	room := int(min(c.WritableLen()-HeaderSize, MaxPayload))
	s.d.mu.Lock()
	defer s.d.mu.Unlock()
	h, data, ok := s.nextPacket(room)
	if !ok {
		return 0, false
	}
	w := c.Writer()
	b := h.encode()
	w.Write(b[:])
	w.Write(data) // fits: len(data) <= room
	return w.Written(), true
}

// nextPacket takes the next packet for the guest, with room bytes of
// payload at most: connectionless replies first, then each connection with
// something to send in turn, one packet each. The caller holds d.mu.
func (s *session) nextPacket(room int) (header, []byte, bool) {
	if len(s.ctrl) > 0 {
		h := s.ctrl[0]
		s.ctrl = s.ctrl[1:]
		s.space.Send()
		return h, nil, true
	}
	for len(s.ready) > 0 {
		c := s.ready[0]
		s.ready[0] = nil
		s.ready = s.ready[1:]
		c.queued = false
		if h, data, ok := c.next(room); ok {
			s.schedule(c)
			return h, data, true
		}
	}
	return header{}, nil, false
}
