package vsock

import (
	"context"
	"fmt"
	"net"
	"time"
)

// connectTimeout bounds both ways of connecting: the dial of a host socket
// for a guest's REQUEST, and the guest's answer to the device's REQUEST for
// a host program's CONNECT. A variable so that a test can wait less.
var connectTimeout = 5 * time.Second

// dial is the goroutine of a guest-initiated connection: it connects to the
// host socket at path, answers the guest RESPONSE (or RST if nothing
// listens there), then starts writeLoop and becomes readLoop.
func (c *conn) dial(path string) {
	defer c.s.wg.Done()
	ctx, cancel := context.WithTimeout(c.s.ctx, connectTimeout)
	nc, err := (&net.Dialer{}).DialContext(ctx, "unix", path)
	cancel()
	d := c.s.d
	d.mu.Lock()
	if !c.dialed(nc, err, path) {
		d.mu.Unlock()
		return
	}
	c.serve()
}

// dialed records how the dial ended: false if the connection is not to go
// on (it failed, or the guest or a Reset ended it meanwhile). The caller
// holds d.mu.
func (c *conn) dialed(nc net.Conn, err error, path string) bool {
	switch {
	case c.isDone() || c.state != stateConnecting:
		if nc != nil {
			nc.Close()
		}
		return false
	case err != nil:
		c.s.d.debug("guest connect refused: no host socket", "path", path, "err", err)
		c.reset()
		return false
	}
	c.uc = nc.(*net.UnixConn) // "unix" dials give one
	c.state = stateEstablished
	c.sendResponse = true
	c.s.schedule(c)
	return true
}

// awaitResponse is the goroutine of a host-initiated connection: it waits
// for the guest to accept (RESPONSE) or refuse (RST, and the host program's
// connection is closed), tells the host program "OK <host port>", then
// starts writeLoop and becomes readLoop.
func (c *conn) awaitResponse() {
	defer c.s.wg.Done()
	if !c.waitAccepted() {
		return
	}
	_, err := fmt.Fprintf(c.uc, "OK %d\n", c.key.local)
	d := c.s.d
	d.mu.Lock()
	if err != nil {
		d.debug("host program went away before OK", "port", c.key.local, "err", err)
		c.reset()
	}
	if c.isDone() {
		d.mu.Unlock()
		return
	}
	c.serve()
}

// waitAccepted waits for the guest's answer to the device's REQUEST, up to
// connectTimeout; false if the connection is not to go on.
func (c *conn) waitAccepted() bool {
	t := time.NewTimer(connectTimeout)
	defer t.Stop()
	select {
	case <-c.up:
		return true
	case <-c.done:
		return false
	case <-t.C:
	}
	d := c.s.d
	d.mu.Lock()
	defer d.mu.Unlock()
	if c.state == stateRequesting {
		d.debug("guest did not answer the REQUEST in time", "guest_port", c.key.peer, "timeout", connectTimeout)
		c.reset()
	}
	return c.state == stateEstablished
}

// serve starts c's write loop and runs its read loop, releasing d.mu (which
// the caller holds, so Reset cannot end the session before the write loop
// is counted in its WaitGroup) in between.
func (c *conn) serve() {
	c.s.wg.Add(1)
	go c.writeLoop()
	c.s.d.mu.Unlock()
	c.readLoop()
}
