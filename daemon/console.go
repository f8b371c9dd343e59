package daemon

import (
	"context"
	"net"
	"sync"
	"time"
)

// consoleWriteTimeout is how long a console stream's client may leave the
// daemon's writes unread before the daemon hangs up on it: a client that
// stopped reading but kept its connection would otherwise hold a goroutine
// and a connection for as long as the VM lives.
const consoleWriteTimeout = time.Minute

// consoleHistory is how much of a VM's console output the daemon keeps for
// GET /v1/vms/{id}/console and for a stream's first screen.
const consoleHistory = 256 << 10

// console is a VM's console output: the last consoleHistory bytes and the
// streams attached to it. It is the machine's console writer, so it is
// written from vCPU and device goroutines and never blocks them: a stream
// that cannot keep up loses output (its reader is told nothing; a terminal
// shows a gap), as a serial line's would.
type console struct {
	mu     sync.Mutex
	ring   []byte // the newest bytes, at most consoleHistory
	subs   map[chan []byte]struct{}
	done   chan struct{} // closed when the VM is deleted: streams end
	closed bool
}

// ended returns a channel closed when the console's VM is deleted.
func (c *console) ended() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.done == nil {
		c.done = make(chan struct{})
	}
	return c.done
}

// end ends every stream, when the VM is deleted.
func (c *console) end() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.done == nil {
		c.done = make(chan struct{})
	}
	if !c.closed {
		c.closed = true
		close(c.done)
	}
}

// Write records p and passes a copy to every stream.
func (c *console) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.ring = append(c.ring, p...)
	if over := len(c.ring) - consoleHistory; over > 0 {
		c.ring = append(c.ring[:0:0], c.ring[over:]...)
	}
	if len(c.subs) > 0 {
		cp := append([]byte(nil), p...)
		for s := range c.subs {
			select {
			case s <- cp:
			default: // the stream is behind: this chunk is lost to it
			}
		}
	}
	return len(p), nil
}

// History returns the kept output.
func (c *console) History() []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]byte(nil), c.ring...)
}

// attach returns the history so far and a channel of what is written after
// it, without a byte lost or repeated between the two, and how to detach.
func (c *console) attach() ([]byte, <-chan []byte, func()) {
	s := make(chan []byte, 64)
	c.mu.Lock()
	if c.subs == nil {
		c.subs = map[chan []byte]struct{}{}
	}
	c.subs[s] = struct{}{}
	hist := append([]byte(nil), c.ring...)
	c.mu.Unlock()
	return hist, s, func() {
		c.mu.Lock()
		delete(c.subs, s)
		c.mu.Unlock()
	}
}

// pump writes hist and then the console's output from out to conn, until
// ctx ends, the VM is deleted, or one write waits longer than
// writeTimeout for the client to read. A write blocked on a client that
// does not read ends as soon as ctx ends or the VM is deleted.
func (c *console) pump(ctx context.Context, conn net.Conn, hist []byte, out <-chan []byte, writeTimeout time.Duration) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	ended := c.ended()
	go func() {
		select {
		case <-ended:
			cancel()
		case <-ctx.Done():
		}
	}()
	stop := context.AfterFunc(ctx, func() { conn.SetWriteDeadline(time.Unix(1, 0)) })
	defer stop()
	write := func(p []byte) bool {
		conn.SetWriteDeadline(time.Now().Add(writeTimeout))
		if ctx.Err() != nil { // ended before the deadline was set: the AfterFunc's came first
			return false
		}
		_, err := conn.Write(p)
		return err == nil
	}
	if !write(hist) {
		return
	}
	for {
		select {
		case <-ctx.Done():
			return
		case p := <-out:
			if !write(p) {
				return
			}
		}
	}
}
