package net

import (
	"encoding/binary"
	"errors"
	"io"
	"time"

	"ember/virtio"
)

// rxBufferSize is the host buffer a packet is read into: more than the
// longest packet the device delivers, so that a longer one is seen whole
// and dropped rather than cut short by the read.
const rxBufferSize = 128 << 10

// readBackoff is how long the receiver waits after a failed read before it
// tries again, so a backend that keeps failing does not spin it.
const readBackoff = 10 * time.Millisecond

// receiver serves the receive queue: it reads a packet from the backend,
// keeps it until the driver has posted buffers for it, and copies it in.
type receiver struct {
	*worker
	// read reads one packet: the backend's ReadPacket, which waits for
	// one, or on the device's thread a read that returns errWouldBlock
	// instead.
	read   func(p []byte) (int, error)
	buf    []byte          // where a packet is read, header first
	cur    placement       // the packet being delivered; cur.pkt nil: none
	mrg    bool            // VIRTIO_NET_F_MRG_RXBUF: a packet may span several chains
	direct                 // reads straight into the driver's buffers (direct.go)
	spare  []*virtio.Chain // chains returned to the driver, kept for their slices
}

// newReceiver returns the receiver of w's queue, reading with read, and
// with readv straight into the driver's buffers if it is not nil.
func newReceiver(w *worker, read func([]byte) (int, error), readv func([][]byte) (int, error)) *receiver {
	return &receiver{worker: w, read: read, buf: make([]byte, rxBufferSize), mrg: w.features&FeatureMrgRxbuf != 0,
		direct: direct{readv: readv}}
}

// run receives and delivers packets until Reset, on a goroutine of its
// own, where reads wait for the backend.
func (r *receiver) run() {
	for {
		if !r.receive() || !r.deliver() {
			return
		}
	}
}

// receive reads the next packet from the backend that the driver can
// take, waiting for one; false once Reset stopped the receiver. A backend
// that has no more packets (io.EOF) leaves it waiting for Reset.
func (r *receiver) receive() bool {
	for {
		n, err := r.read(r.buf)
		if r.stopped() {
			return false
		}
		switch {
		case errors.Is(err, io.EOF):
			r.ended()
			<-r.stop
			return false
		case err != nil:
			r.warn("virtio-net: reading a packet from the backend", "err", err)
			if !r.pause(readBackoff) {
				return false
			}
			continue
		}
		if r.take(n) {
			return true
		}
	}
}

// ended logs a backend that has no more packets.
func (r *receiver) ended() {
	r.d.log.Error("virtio-net: the backend has no more packets; receiving stops until the driver resets the device")
}

// take makes the n bytes read into buf the packet being delivered, with
// its header cleaned (prepareRX); false if the driver cannot take it
// (logged and counted).
func (r *receiver) take(n int) bool {
	if n > len(r.buf) {
		// A TAP cuts a packet longer than the read short, and says how
		// long it was.
		r.d.stats.rxDropped.Add(1)
		r.warn("virtio-net: received packet dropped: longer than the device reads", "bytes", n, "read", len(r.buf))
		return false
	}
	pkt := r.buf[:n]
	if err := prepareRX(pkt, r.features); err != nil {
		r.d.stats.rxDropped.Add(1)
		r.warn("virtio-net: received packet dropped", "err", err)
		return false
	}
	r.cur = placement{pkt: pkt, chains: r.cur.chains[:0]}
	return true
}

// deliver puts the packet in the receive queue, waiting for the driver to
// post buffers for as long as it takes (the packet is kept, not dropped);
// false when Reset stopped the receiver or the driver broke the queue.
func (r *receiver) deliver() bool {
	for {
		done, err := r.place()
		if err != nil {
			r.fail(err, true)
			return false
		}
		if done {
			return true
		}
		if !r.wait() {
			return false
		}
	}
}

// place puts the packet in the chains the driver made available: true
// once it is delivered (the driver interrupted if it asks) or dropped,
// false if it waits for more buffers. An error is a queue the driver
// broke.
func (r *receiver) place() (bool, error) {
	done, err := r.fill(&r.cur)
	if err != nil || !done {
		return false, err
	}
	r.cur.pkt = nil
	r.notifyDriver()
	return true, nil
}

// rxState is where a pump left the receive queue, which says what the
// device's thread waits for before it pumps again.
type rxState int

const (
	rxIdle      rxState = iota // the backend has no packet: wait for one
	rxBusy                     // the budget is spent and more may wait: pump again soon
	rxNoBuffers                // the packet waits for buffers: wait for the driver's kick
	rxBackoff                  // the backend failed: try again after readBackoff
	rxEnded                    // the backend ended or the driver broke the queue: wait for Reset
)

// pump moves up to budget packets from the backend to the queue without
// waiting for either, on the device's thread.
func (r *receiver) pump(budget int) rxState {
	for range budget {
		if r.cur.pkt == nil {
			// Straight into the driver's buffers when they can take any
			// packet; else into the device's buffer, then copied.
			if st, ok := r.pumpDirect(); ok {
				if st != rxBusy {
					return st
				}
				continue
			}
			n, err := r.read(r.buf)
			if err != nil {
				return r.readFailed(err)
			}
			if !r.take(n) {
				continue
			}
		}
		done, err := r.place()
		if err != nil {
			r.fail(err, false)
			return rxEnded
		}
		if !done {
			return rxNoBuffers
		}
	}
	return rxBusy
}

// readFailed logs a read from the backend that failed, and returns what
// the device's thread waits for next.
func (r *receiver) readFailed(err error) rxState {
	switch {
	case errors.Is(err, errWouldBlock):
		return rxIdle
	case errors.Is(err, io.EOF):
		r.ended()
		return rxEnded
	}
	r.warn("virtio-net: reading a packet from the backend", "err", err)
	return rxBackoff
}

// next returns the next chain to fill: the first the receiver holds, or
// the next the driver made available (nil if none).
func (r *receiver) next() (*virtio.Chain, error) {
	if c := r.unhold(); c != nil {
		return c, nil
	}
	return r.popSpare()
}

// popSpare pops the next chain the driver made available into a spare
// one, whose slices it reuses (nil if there is none; the spare is kept).
func (r *receiver) popSpare() (*virtio.Chain, error) {
	var spare *virtio.Chain
	if n := len(r.spare); n > 0 {
		spare, r.spare = r.spare[n-1], r.spare[:n-1]
	}
	c, err := r.popInto(spare)
	if c == nil && spare != nil {
		r.spare = append(r.spare, spare)
	}
	return c, err
}

// giveBack returns c to the driver with written bytes in it, and keeps
// the chain for its slices.
func (r *receiver) giveBack(c *virtio.Chain, written uint32) error {
	if err := r.putBack(c, written); err != nil {
		return err
	}
	return r.q.Publish(r.mem)
}

// putBack is giveBack without showing the driver the chain yet: the
// chains of one packet are put back one by one and published together
// (publish).
func (r *receiver) putBack(c *virtio.Chain, written uint32) error {
	if len(r.spare) < int(r.q.Size) {
		r.spare = append(r.spare, c)
	}
	return r.q.Put(r.mem, c.Head, written)
}

// fill places the packet in the chains the driver made available: true
// once it is delivered, or dropped because the buffers cannot hold it;
// false when the queue ran out of chains first (the chains it holds stay
// with p). An error is a queue the driver broke.
func (r *receiver) fill(p *placement) (bool, error) {
	for !r.stopped() {
		c, err := r.next()
		if err != nil || c == nil {
			return false, err
		}
		if why := r.unusable(c, len(p.chains) == 0); why != "" {
			if err := r.refuse(c, why); err != nil {
				return false, err
			}
			continue
		}
		if !r.mrg && c.WritableLen() < uint64(len(p.pkt)) {
			p.chains = append(p.chains, placed{chain: c})
			return true, r.drop(p, "packet longer than the receive buffer (VIRTIO_NET_F_MRG_RXBUF not negotiated)", c.WritableLen())
		}
		p.add(c)
		switch {
		case p.done():
			return true, r.publish(p.chains, len(p.pkt))
		case len(p.chains) >= int(r.q.Size):
			return true, r.drop(p, "packet longer than a whole queue of receive buffers", uint64(p.off))
		}
	}
	return false, nil
}

// unusable says why c cannot take (part of) a received packet, or "" if it
// can: a receive chain must be all device-writable (§5.1.6.3.1), and the
// one that takes the header must hold it whole (with mergeable buffers,
// "each buffer MUST be at least the size of the struct virtio_net_hdr").
// Such a chain is returned empty and the packet waits for the next.
func (r *receiver) unusable(c *virtio.Chain, first bool) string {
	switch {
	case len(c.Readable) > 0:
		return "device-readable buffer in the receive queue"
	case c.WritableLen() == 0:
		return "no device-writable buffer"
	case first && c.WritableLen() < HeaderSize:
		return "buffer shorter than the header"
	}
	return ""
}

// refuse returns a chain that cannot take a packet (unusable says why)
// empty, and logs it.
func (r *receiver) refuse(c *virtio.Chain, why string) error {
	r.warn("virtio-net: receive chain dropped: "+why, "head", c.Head)
	return r.giveBack(c, 0)
}

// publish sets num_buffers in the header of a packet of n bytes placed in
// chains, returns them to the driver with the bytes each holds, in order
// and all at once (the driver, having read the first, takes num_buffers
// elements more, and drops the packet if one is not there yet: §5.1.6.4,
// TestReceivedPacketsBuffersAppearTogether), and counts the packet.
func (r *receiver) publish(chains []placed, n int) error {
	var num [2]byte
	binary.LittleEndian.PutUint16(num[:], uint16(len(chains)))
	writeAt(chains[0].chain.Writable, hdrNumBuffers, num[:])
	for _, pc := range chains {
		if err := r.putBack(pc.chain, pc.n); err != nil {
			return err
		}
	}
	if err := r.q.Publish(r.mem); err != nil {
		return err
	}
	r.d.stats.rxPackets.Add(1)
	r.d.stats.rxBytes.Add(uint64(n - HeaderSize))
	return nil
}

// drop returns the packet's chains with nothing written (the driver drops
// an empty buffer and posts it again), and logs and counts the packet.
func (r *receiver) drop(p *placement, why string, room uint64) error {
	r.d.stats.rxDropped.Add(1)
	r.warn("virtio-net: received packet dropped: "+why, "bytes", len(p.pkt)-HeaderSize, "room", room)
	for _, pc := range p.chains {
		if err := r.giveBack(pc.chain, 0); err != nil {
			return err
		}
	}
	return nil
}

// placement is a packet on its way into the driver's buffers: how much of
// it the chains taken so far hold.
type placement struct {
	pkt    []byte // header and frame
	off    int    // bytes of pkt placed
	chains []placed
}

// placed is one chain of a placement and the bytes put in it.
type placed struct {
	chain *virtio.Chain
	n     uint32
}

// add puts as much of the rest of the packet in c's device-writable
// buffers as they hold.
func (p *placement) add(c *virtio.Chain) {
	w := c.Writer()
	w.Write(p.pkt[p.off:]) // a short write is the packet going on in the next chain
	p.off += int(w.Written())
	p.chains = append(p.chains, placed{chain: c, n: w.Written()})
}

// done says whether the whole packet is placed.
func (p *placement) done() bool { return p.off == len(p.pkt) }

// writeAt copies data into the buffers bufs, taken as one stream, at off;
// what lies beyond their end is not written.
func writeAt(bufs [][]byte, off int, data []byte) {
	for _, b := range bufs {
		if off >= len(b) {
			off -= len(b)
			continue
		}
		k := copy(b[off:], data)
		data, off = data[k:], 0
		if len(data) == 0 {
			return
		}
	}
}
