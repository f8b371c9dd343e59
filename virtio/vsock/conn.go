package vsock

import (
	"net"
	"sync"
)

// maxPending bounds the host program's bytes a connection holds for the
// guest: the device reads no more until the rx worker has passed them on.
const maxPending = 64 << 10

// creditThreshold is how far fwd_cnt advances before the device tells the
// guest unasked (CREDIT_UPDATE): a quarter of the buffer, so a guest that
// filled it hears of room long before the buffer is empty.
const creditThreshold = BufAlloc / 4

// connState is where a connection is in its life.
type connState int

const (
	stateConnecting  connState = iota // guest REQUEST: dialling the host socket
	stateRequesting                   // host CONNECT: waiting for the guest's RESPONSE
	stateEstablished                  // relaying
	stateClosing                      // host side closed; an RST for the guest is pending
	stateClosed                       // gone from the table
)

// conn is one stream between a guest port and a host port. Its fields are
// guarded by Device.mu; its goroutines (dial or awaitResponse, then
// readLoop, and writeLoop) wait on its two conditions.
type conn struct {
	s     *session
	key   key
	uc    *net.UnixConn // the host side; nil until a dial succeeds
	state connState
	up    chan struct{} // closed when a host-initiated connection is accepted
	done  chan struct{} // closed when the host side is closed

	readable sync.Cond // readLoop waits for credit or room
	writable sync.Cond // writeLoop waits for guest bytes

	// Host to guest.
	out          []byte // read from the host program, not yet sent
	txCnt        uint32 // payload bytes sent to the guest
	peerBufAlloc uint32 // the guest's buf_alloc
	peerFwdCnt   uint32 // the guest's fwd_cnt
	shutWant     uint32 // SHUTDOWN flags for the guest
	shutSent     uint32 // ... already sent

	// Guest to host.
	in          []byte // received from the guest, not yet written
	fwdCnt      uint32 // guest bytes written to the host program (or dropped)
	fwdSent     uint32 // fwdCnt as last told to the guest
	peerShut    uint32 // SHUTDOWN flags the guest sent
	writeFailed bool   // the host program stopped taking bytes
	hostEOF     bool   // the host program was told: no more bytes (CloseWrite)

	// Control packets for the guest, and bookkeeping.
	sendRequest, sendResponse, sendCredit, sendRST bool
	announced                                      bool // the guest knows of the connection
	queued                                         bool // in session.ready
}

// newConn registers a connection in state st. The caller holds d.mu and
// has checked that key is free and there is room.
func (s *session) newConn(k key, st connState) *conn {
	c := &conn{s: s, key: k, state: st, up: make(chan struct{}), done: make(chan struct{})}
	c.readable.L = &s.d.mu
	c.writable.L = &s.d.mu
	s.conns[k] = c
	s.ports[k.local]++
	return c
}

// header returns a packet header for the guest about c. It carries the
// device's current credit, as every packet must (§5.10.6, "Buffer Space
// Management"), which it records as told.
func (c *conn) header(op uint16) header {
	c.fwdSent = c.fwdCnt
	c.sendCredit = false
	return header{
		srcCID: HostCID, dstCID: c.s.d.cid, srcPort: c.key.local, dstPort: c.key.peer,
		typ: typeStream, op: op, bufAlloc: BufAlloc, fwdCnt: c.fwdCnt,
	}
}

// updateCredit records the guest's buf_alloc and fwd_cnt from any packet of
// the connection, and wakes what more credit may let go.
func (c *conn) updateCredit(h header) {
	c.peerBufAlloc, c.peerFwdCnt = h.bufAlloc, h.fwdCnt
	c.readable.Signal()
	c.s.schedule(c)
}

// credit is what the guest can take now: peer_buf_alloc − (tx_cnt −
// peer_fwd_cnt), counted modulo 2^32 as the spec's u32s are, and 0 if a
// guest's fwd_cnt runs ahead of what it was sent.
func (c *conn) credit() uint32 {
	inflight := c.txCnt - c.peerFwdCnt
	if inflight >= c.peerBufAlloc {
		return 0
	}
	return c.peerBufAlloc - inflight
}

// sendable returns how many bytes of out the next RW packet may carry in
// room bytes of payload.
func (c *conn) sendable(room int) int {
	if c.state != stateEstablished || c.peerShut&shutRcv != 0 {
		return 0
	}
	return min(len(c.out), int(min(c.credit(), MaxPayload)), room)
}

// hasWork says whether c has a packet for the guest now.
func (c *conn) hasWork() bool {
	switch {
	case c.state == stateClosed:
		return false
	case c.sendRST, c.sendRequest, c.sendResponse:
		return true
	case c.state != stateEstablished:
		return false
	}
	return c.sendable(MaxPayload) > 0 || c.shutdownDue() || c.sendCredit
}

// shutdownDue says whether a SHUTDOWN is to be sent: new flags, and the
// data read before the host program's EOF is all out.
func (c *conn) shutdownDue() bool { return c.shutWant != c.shutSent && len(c.out) == 0 }

// next returns c's next packet for the guest, with room bytes of payload at
// most, and false if it has none: RST, REQUEST or RESPONSE first, then data,
// then SHUTDOWN (after the data), then a credit update. Data is returned as
// a slice of out, valid while d.mu is held.
func (c *conn) next(room int) (header, []byte, bool) {
	switch {
	case c.state == stateClosed:
		return header{}, nil, false
	case c.sendRST:
		h := c.header(opRST)
		c.sendRST = false
		c.remove()
		return h, nil, true
	case c.sendRequest:
		c.sendRequest, c.announced = false, true
		return c.header(opRequest), nil, true
	case c.sendResponse:
		c.sendResponse = false
		return c.header(opResponse), nil, true
	case c.state != stateEstablished:
		return header{}, nil, false
	}
	if n := c.sendable(room); n > 0 {
		data := c.out[:n]
		c.out = c.out[n:]
		c.txCnt += uint32(n)
		c.readable.Signal()
		h := c.header(opRW)
		h.len = uint32(n)
		return h, data, true
	}
	if c.shutdownDue() {
		c.shutSent = c.shutWant
		h := c.header(opShutdown)
		h.flags = c.shutWant
		return h, nil, true
	}
	if c.sendCredit {
		return c.header(opCreditUpdate), nil, true
	}
	return header{}, nil, false
}

// schedule puts c in the rx worker's turn if it has a packet for the guest
// and is not there yet. The caller holds d.mu.
func (s *session) schedule(c *conn) {
	if c.queued || !c.hasWork() {
		return
	}
	c.queued = true
	s.ready = append(s.ready, c)
	s.work.Send()
}

// reset aborts the connection: the host side is closed, and the guest, if
// it knows of the connection, gets an RST, after which the connection
// leaves the table (its ports are not reused before the guest was told).
func (c *conn) reset() {
	if c.state == stateClosing || c.state == stateClosed {
		return
	}
	c.closeHost()
	c.out, c.in = nil, nil
	c.sendRequest, c.sendResponse, c.sendCredit = false, false, false
	if !c.announced {
		c.remove()
		return
	}
	c.state = stateClosing
	c.sendRST = true
	c.s.schedule(c)
}

// finish ends a connection the guest reset: no reply.
func (c *conn) finish() {
	c.closeHost()
	c.remove()
}

// remove takes c out of the table.
func (c *conn) remove() {
	if c.state == stateClosed {
		return
	}
	c.state = stateClosed
	s := c.s
	if s.conns[c.key] == c {
		delete(s.conns, c.key)
		if s.ports[c.key.local]--; s.ports[c.key.local] <= 0 {
			delete(s.ports, c.key.local)
		}
	}
}

// closeHost closes the host side and wakes c's goroutines so they return.
func (c *conn) closeHost() {
	if c.isDone() {
		return
	}
	close(c.done)
	if c.uc != nil {
		c.uc.Close()
	}
	c.readable.Broadcast()
	c.writable.Broadcast()
}

// isDone says whether the host side is closed.
func (c *conn) isDone() bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}
