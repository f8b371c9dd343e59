package net

import (
	"encoding/binary"
	"io"

	"ember/virtio"
)

// The control queue (§5.1.6.5): each request is a chain of struct
// virtio_net_ctrl — class and command (device-readable), the command's
// data (device-readable), then an ack byte the device writes. The device
// offers the control queue only with several queue pairs, for the one
// command of VIRTIO_NET_F_MQ; every other command is answered with an
// error, as a class whose feature was not negotiated must be.
const (
	ctrlClassMQ      = 4 // VIRTIO_NET_CTRL_MQ
	ctrlMQVQPairsSet = 0 // VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET: le16 virtqueue_pairs

	ctrlOK  = 0 // VIRTIO_NET_OK
	ctrlErr = 1 // VIRTIO_NET_ERR
)

// serveControl answers every request the control queue holds and
// reports whether the driver wants an interrupt for them, which the
// caller sends once it has let go of d.mu. A malformed chain is returned
// with nothing written; a broken queue stops the control queue until the
// driver resets the device. The caller holds d.mu.
func (d *Device) serveControl() bool {
	w := d.ctrl
	if w.failed {
		return false
	}
	for {
		c, err := w.popInto(&d.ctrlChain)
		if err != nil {
			w.fail(err, false)
			return false
		}
		if c == nil {
			break
		}
		ack := d.command(c)
		written, err := writeAck(c, ack)
		if err != nil {
			w.warn("virtio-net: control request without room for its ack", "err", err)
		}
		if err := w.q.Push(w.mem, c.Head, written); err != nil {
			w.fail(err, false)
			return false
		}
	}
	return w.q.NeedsInterrupt(w.mem)
}

// command carries out one control request and returns its ack.
func (d *Device) command(c *virtio.Chain) byte {
	r := c.Reader()
	var hdr [2]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		d.ctrl.warn("virtio-net: control request shorter than its class and command", "bytes", c.ReadableLen())
		return ctrlErr
	}
	class, cmd := hdr[0], hdr[1]
	if class != ctrlClassMQ || cmd != ctrlMQVQPairsSet {
		d.log.Debug("virtio-net: control command not offered", "class", class, "command", cmd)
		return ctrlErr
	}
	var b [2]byte
	if _, err := io.ReadFull(r, b[:]); err != nil {
		d.ctrl.warn("virtio-net: VQ_PAIRS_SET without its pair count", "bytes", c.ReadableLen())
		return ctrlErr
	}
	k := int(binary.LittleEndian.Uint16(b[:]))
	if !d.mq || k < 1 || k > len(d.pairs) {
		d.ctrl.warn("virtio-net: VQ_PAIRS_SET refused", "pairs", k, "max", len(d.pairs), "mq", d.mq)
		return ctrlErr
	}
	if err := d.usePairs(k); err != nil {
		d.log.Error("virtio-net: VQ_PAIRS_SET failed", "pairs", k, "err", err)
		return ctrlErr
	}
	d.log.Debug("virtio-net: the driver uses queue pairs", "pairs", k)
	return ctrlOK
}

// writeAck writes the ack at the start of c's device-writable bytes —
// the driver's one-byte ack buffer; QEMU writes it there too — and
// returns the bytes written.
func writeAck(c *virtio.Chain, ack byte) (uint32, error) {
	w := c.Writer()
	if _, err := w.Write([]byte{ack}); err != nil {
		return 0, err
	}
	return w.Written(), nil
}
