package vsock

import "fmt"

// dispatch acts on a packet from the guest whose header parsePacket read;
// perr is the error it found in the payload's framing, if any. The caller
// holds d.mu.
func (s *session) dispatch(p packet, perr error) {
	h, d := p.hdr, s.d
	switch {
	case h.srcCID != d.cid:
		// Not the guest's own address: answering it would be answering
		// whatever the driver claims to be.
		d.refuse("packet with a source CID not the guest's dropped", "src_cid", h.srcCID, "op", h.op)
		return
	case h.dstCID>>32 != 0:
		// The upper 32 bits of a CID are reserved and zeroed (§5.10.6): an
		// RST from such an address would break the rule in turn.
		d.refuse("packet to a CID with reserved bits set dropped", "dst_cid", h.dstCID, "op", h.op)
		return
	case h.dstCID != HostCID:
		d.refuse("packet to a CID other than the host's refused", "dst_cid", h.dstCID, "op", h.op)
		s.replyRST(h)
		return
	case h.typ != typeStream:
		// §5.10.6: an unknown type MUST be answered with RST.
		d.refuse("packet of a socket type other than stream refused", "type", h.typ, "op", h.op)
		s.replyRST(h)
		return
	}
	c := s.conns[key{local: h.dstPort, peer: h.srcPort}]
	switch {
	case perr != nil:
		d.refuse("malformed packet", "op", h.op, "src_port", h.srcPort, "dst_port", h.dstPort, "err", perr)
		s.resetOrReply(c, h)
	case h.op < opRequest || h.op > opCreditRequest:
		d.refuse("packet with an unknown op", "op", h.op, "src_port", h.srcPort, "dst_port", h.dstPort)
		s.resetOrReply(c, h)
	case c == nil:
		s.unconnected(h)
	default:
		s.connected(c, p)
	}
}

// resetOrReply resets connection c, or answers h with RST if it belongs to
// none.
func (s *session) resetOrReply(c *conn, h header) {
	if c != nil {
		c.reset()
		return
	}
	s.replyRST(h)
}

// replyRST answers h, which belongs to no connection, with an RST; an RST
// is not answered, so two peers cannot bounce RSTs forever.
func (s *session) replyRST(h header) {
	if h.op == opRST {
		return
	}
	s.ctrl = append(s.ctrl, header{
		srcCID: h.dstCID, dstCID: h.srcCID, srcPort: h.dstPort, dstPort: h.srcPort,
		typ: h.typ, op: opRST,
	})
	s.work.Send()
}

// unconnected acts on a packet for no connection: a REQUEST connects, an
// RST is ignored, anything else is answered with RST.
func (s *session) unconnected(h header) {
	switch h.op {
	case opRequest:
		s.accept(h)
	case opRST:
	default:
		s.d.debug("packet for no connection answered with RST", "op", opName(h.op), "src_port", h.srcPort, "dst_port", h.dstPort)
		s.replyRST(h)
	}
}

// accept starts a guest-initiated connection: a goroutine dials the host
// socket "<Path>_<port>" and the guest gets RESPONSE or RST when it is done.
func (s *session) accept(h header) {
	if len(s.conns) >= MaxConnections {
		s.d.refuse("REQUEST refused: too many connections", "max", MaxConnections, "dst_port", h.dstPort)
		s.replyRST(h)
		return
	}
	c := s.newConn(key{local: h.dstPort, peer: h.srcPort}, stateConnecting)
	c.announced = true
	c.peerBufAlloc, c.peerFwdCnt = h.bufAlloc, h.fwdCnt
	s.wg.Add(1)
	go c.dial(fmt.Sprintf("%s_%d", s.d.path, h.dstPort))
}

// connected acts on a well-formed packet of connection c.
func (s *session) connected(c *conn, p packet) {
	h := p.hdr
	switch {
	case c.state == stateClosing:
		return // our RST is on its way; this packet crossed it
	case h.op == opRST:
		c.finish()
		return
	case c.state == stateRequesting && h.op != opResponse:
		s.d.refuse("packet before the RESPONSE to the device's REQUEST; connection reset", "op", opName(h.op), "dst_port", h.srcPort)
		c.reset()
		return
	}
	c.updateCredit(h)
	switch h.op {
	case opRequest:
		s.d.refuse("REQUEST for an existing connection; connection reset", "src_port", h.srcPort, "dst_port", h.dstPort)
		c.reset()
	case opResponse:
		c.accepted()
	case opShutdown:
		c.peerShutdown(h.flags)
	case opRW:
		c.fromGuest(p)
	case opCreditRequest:
		c.sendCredit = true
		s.schedule(c)
	}
}

// accepted is the guest's RESPONSE to the device's REQUEST: the connection
// is established, and awaitResponse tells the host program.
func (c *conn) accepted() {
	if c.state != stateRequesting {
		c.s.d.refuse("RESPONSE the device did not ask for; connection reset", "src_port", c.key.peer, "dst_port", c.key.local)
		c.reset()
		return
	}
	c.state = stateEstablished
	close(c.up)
	c.s.schedule(c)
}

// peerShutdown records the guest's SHUTDOWN flags, which are permanent
// (§5.10.6, "Stream Sockets"): RCV drops what waits for the guest and stops
// reading from the host program (whose writes then fail), SEND lets
// writeLoop half-close the host side once the guest's bytes are written,
// and both make writeLoop end the connection there (clean disconnect).
func (c *conn) peerShutdown(flags uint32) {
	if c.state != stateEstablished {
		c.s.d.refuse("SHUTDOWN before the connection was established; connection reset", "src_port", c.key.peer, "dst_port", c.key.local)
		c.reset()
		return
	}
	added := flags & shutBoth &^ c.peerShut
	c.peerShut |= added
	if added&shutRcv != 0 {
		c.out = nil
		c.uc.CloseRead()
		c.readable.Signal()
	}
	if added != 0 {
		c.writable.Signal()
	}
}

// fromGuest queues the guest's payload for writeLoop. A guest that sends
// beyond the credit the device gave it, or after saying it would not, has
// its connection reset: the buffer it would overrun is all the device
// keeps for it.
func (c *conn) fromGuest(p packet) {
	n := p.payloadLen()
	switch {
	case c.state != stateEstablished || c.peerShut&shutSend != 0:
		c.s.d.refuse("RW on a connection not open for it; connection reset", "src_port", c.key.peer, "dst_port", c.key.local)
		c.reset()
	case c.writeFailed:
		c.fwdCnt += uint32(n) // dropped: the host program is gone, the guest was told (SHUTDOWN RCV)
		c.creditIfDue()
	case len(c.in)+n > BufAlloc:
		c.s.d.refuse("RW beyond the credit the device gave; connection reset", "bytes", n, "buffered", len(c.in), "buf_alloc", BufAlloc)
		c.reset()
	default:
		for _, b := range p.payload {
			c.in = append(c.in, b...)
		}
		c.writable.Signal()
	}
}

// creditIfDue schedules a CREDIT_UPDATE when fwd_cnt has moved enough since
// the guest last heard it.
func (c *conn) creditIfDue() {
	if c.fwdCnt-c.fwdSent >= creditThreshold {
		c.sendCredit = true
		c.s.schedule(c)
	}
}
