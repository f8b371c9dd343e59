package net

import "ember/virtio"

// directRoom is the room a read straight into the driver's buffers needs:
// the header and the longest frame the device delivers, and one byte
// more, so that a longer packet is seen to be longer (a TAP returns a cut
// packet's whole length, a socket only what fit) and dropped.
const directRoom = HeaderSize + MaxFrameSize + 1

// direct is the receiver's way of reading a packet from the backend
// straight into the driver's buffers, one readv with no copy after it, as
// vhost-net does: the copy from the device's own buffer, a whole packet's
// worth of memory traffic on the device's thread, is gone. It takes
// chains from the queue until they can hold the longest packet, and holds
// on to those the packet did not need for the next one: a small packet
// uses one chain and leaves the rest. When the driver has not made that
// much room available, the packet takes the other way (a read into the
// device's buffer, then placed as the driver's buffers come).
type direct struct {
	// readv reads one packet into buffers taken as one; nil: the backend
	// cannot (a Backend served on goroutines), and every packet is copied.
	readv    func(bufs [][]byte) (int, error)
	held     []*virtio.Chain  // taken from the queue, not yet used, in order
	heldRoom uint64           // their device-writable bytes
	hdr      [HeaderSize]byte // a direct read's header, checked before the driver sees it
	iov      [][]byte         // a direct read's buffers
	placed   []placed         // the chains a direct read filled
}

// pumpDirect reads the next packet straight into the chains the receiver
// holds and delivers it; false, with nothing read, when they cannot take
// the longest packet. Otherwise it returns rxBusy once a packet was
// delivered or dropped, or the state the read or the queue left.
func (r *receiver) pumpDirect() (rxState, bool) {
	if r.readv == nil {
		return 0, false
	}
	iov, ok, err := r.gather()
	if err != nil {
		r.fail(err, false)
		return rxEnded, true
	}
	if !ok {
		return 0, false
	}
	n, err := r.readv(iov)
	if err != nil {
		return r.readFailed(err), true
	}
	if err := r.placeDirect(n); err != nil {
		r.fail(err, false)
		return rxEnded, true
	}
	r.notifyDriver()
	return rxBusy, true
}

// gather takes chains from the queue until those held can take the
// longest packet, and returns them as the buffers of one read: hdr for
// the header, then the chains' own after the header's room. False when
// the driver has not made enough room available, when (without mergeable
// buffers) the first chain alone cannot take it, or when the buffers
// would be more than one readv takes. A chain that cannot take a packet
// is returned empty, as fill does, and so is one shorter than the header
// wherever it comes ("each buffer MUST be at least the size of the struct
// virtio_net_hdr", §5.1.6.3.1), which fill lets pass after the first: the
// first chain of every packet is one of these. An error is a queue the
// driver broke.
func (r *receiver) gather() ([][]byte, bool, error) {
	for r.room() < directRoom {
		if !r.mrg && len(r.held) > 0 {
			return nil, false, nil
		}
		c, err := r.popSpare()
		if err != nil || c == nil {
			return nil, false, err
		}
		if why := r.unusable(c, true); why != "" {
			if err := r.refuse(c, why); err != nil {
				return nil, false, err
			}
			continue
		}
		r.held = append(r.held, c)
		r.heldRoom += c.WritableLen()
	}
	iov := r.buffers()
	return iov, len(iov) <= iovMax, nil
}

// room is what the held chains can take of one packet: all of them with
// mergeable buffers, else the first.
func (r *receiver) room() uint64 {
	switch {
	case len(r.held) == 0:
		return 0
	case r.mrg:
		return r.heldRoom
	}
	return r.held[0].WritableLen()
}

// buffers lists hdr and then, past the header's room in the first, the
// held chains' buffers that directRoom needs.
func (r *receiver) buffers() [][]byte {
	iov := append(r.iov[:0], r.hdr[:])
	skip, need := HeaderSize, uint64(directRoom-HeaderSize)
	for _, c := range r.held {
		for _, b := range c.Writable {
			if need == 0 {
				break
			}
			k := min(skip, len(b))
			b, skip = b[k:], skip-k
			if len(b) > 0 {
				iov = append(iov, b)
				need -= min(need, uint64(len(b)))
			}
		}
	}
	r.iov = iov
	return iov
}

// placeDirect delivers a packet of n bytes read into the held chains:
// its header, checked and cleaned, goes into the first, and the chains it
// fills go back to the driver. A packet the driver cannot take is dropped
// and leaves the chains held, for the next packet to overwrite. An error
// is a queue the driver broke.
func (r *receiver) placeDirect(n int) error {
	if err := prepareRXHeader(r.hdr[:], n, r.features); err != nil {
		r.d.stats.rxDropped.Add(1)
		r.warn("virtio-net: received packet dropped", "err", err)
		return nil
	}
	chains := r.spread(n)
	writeAt(r.held[0].Writable, 0, r.hdr[:])
	for range chains {
		r.unhold()
	}
	return r.publish(chains, n)
}

// spread lists the held chains a packet of n bytes read into them fills,
// in order, and the bytes each holds: all of every chain but the last.
// room() >= directRoom > n, so the packet never runs past the last chain.
func (r *receiver) spread(n int) []placed {
	r.placed = r.placed[:0]
	for left := uint64(n); left > 0; {
		c := r.held[len(r.placed)]
		k := min(left, c.WritableLen())
		r.placed = append(r.placed, placed{chain: c, n: uint32(k)})
		left -= k
	}
	return r.placed
}

// unhold takes the first held chain from the held ones and returns it, or
// nil if none is held.
func (r *receiver) unhold() *virtio.Chain {
	if len(r.held) == 0 {
		return nil
	}
	c := r.held[0]
	r.heldRoom -= c.WritableLen()
	r.held = r.held[:copy(r.held, r.held[1:])]
	return c
}
