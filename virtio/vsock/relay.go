package vsock

import (
	"errors"
	"io"
)

// Chunk sizes of the relay: readChunk is the most readLoop reads from a
// host program at once, writeChunk the most writeLoop writes.
const (
	readChunk  = 16 << 10
	writeChunk = 64 << 10
)

// readLoop relays the host program's bytes towards the guest: it reads only
// as much as the guest has credit for, less what already waits, and at most
// maxPending ahead, so a guest that does not read stops the host program
// (its writes block in its socket) rather than filling the device. It
// returns at the host program's EOF (the guest gets SHUTDOWN SEND once the
// data is out) or when the connection ends.
func (c *conn) readLoop() {
	buf := make([]byte, readChunk)
	d := c.s.d
	for {
		d.mu.Lock()
		n := c.waitRoom()
		d.mu.Unlock()
		if n == 0 {
			return
		}
		k, err := c.uc.Read(buf[:min(n, len(buf))])
		d.mu.Lock()
		more := c.fromHost(buf[:k], err)
		d.mu.Unlock()
		if !more {
			return
		}
	}
}

// waitRoom waits until the guest has room for more of the host program's
// bytes and returns how much; 0 when readLoop is to return. The caller
// holds d.mu.
func (c *conn) waitRoom() int {
	for {
		if c.isDone() || c.state != stateEstablished || c.peerShut&shutRcv != 0 {
			return 0
		}
		if room := min(maxPending, int(c.credit())) - len(c.out); room > 0 {
			return room
		}
		c.readable.Wait()
	}
}

// fromHost takes what a read from the host program returned; false when
// readLoop is to return. The caller holds d.mu.
func (c *conn) fromHost(b []byte, err error) bool {
	if c.isDone() || c.state != stateEstablished {
		return false
	}
	if len(b) > 0 && c.peerShut&shutRcv == 0 {
		c.out = append(c.out, b...)
		c.s.schedule(c)
	}
	switch {
	case err == nil:
		return true
	case errors.Is(err, io.EOF) && c.peerShut&shutRcv != 0:
		// The device's own CloseRead: the guest wants nothing more.
	case errors.Is(err, io.EOF):
		c.shutWant |= shutSend
		c.s.schedule(c)
	default:
		c.s.d.debug("reading from the host program failed; connection reset", "port", c.key.local, "err", err)
		c.reset()
	}
	return false
}

// writeLoop relays the guest's bytes to the host program, one write at a
// time outside the lock, so a host program that does not read blocks only
// this goroutine; the guest, whose credit stops growing, stops sending. When
// the guest has shut down sending and its bytes are written it half-closes
// the host side; when it has shut down both ways it ends the connection
// with an RST, the reply a clean disconnect expects.
func (c *conn) writeLoop() {
	defer c.s.wg.Done()
	d := c.s.d
	for {
		d.mu.Lock()
		chunk := c.waitBytes()
		d.mu.Unlock()
		if chunk == nil {
			return
		}
		n, err := c.uc.Write(chunk)
		d.mu.Lock()
		c.wrote(n, err)
		d.mu.Unlock()
	}
}

// waitBytes waits for guest bytes to write and returns the next chunk (a
// slice of in, which only grows at its end until wrote); nil when writeLoop
// is to return. The caller holds d.mu.
func (c *conn) waitBytes() []byte {
	for {
		switch {
		case c.isDone():
			return nil
		case len(c.in) > 0:
			return c.in[:min(len(c.in), writeChunk)]
		case c.peerShut == shutBoth:
			c.reset()
			return nil
		case c.peerShut&shutSend != 0 && !c.hostEOF:
			c.hostEOF = true
			c.uc.CloseWrite()
		}
		c.writable.Wait()
	}
}

// wrote accounts for a write to the host program: the bytes written count
// as forwarded (fwd_cnt). A failed write means the host program takes no
// more: what is buffered is dropped and the guest is told (SHUTDOWN RCV).
// The caller holds d.mu.
func (c *conn) wrote(n int, err error) {
	if c.isDone() {
		return
	}
	c.in = c.in[n:]
	c.fwdCnt += uint32(n)
	if err != nil {
		c.s.d.debug("writing to the host program failed", "port", c.key.local, "err", err)
		c.writeFailed = true
		c.fwdCnt += uint32(len(c.in))
		c.in = nil
		c.shutWant |= shutRcv
		c.s.schedule(c)
	}
	c.creditIfDue()
}
