package vsock

import (
	"errors"
	"fmt"
	"io"

	"ember/virtio"
)

// MaxPayload is the most payload bytes one packet carries either way: what
// Linux sends at most (VIRTIO_VSOCK_MAX_PKT_BUF_SIZE). A tx packet that
// claims more is malformed; one to the guest is also cut to the rx buffer.
const MaxPayload = 64 << 10

// Errors of parsePacket.
var (
	// errShort is a tx chain too short for a header: nothing in it can be
	// answered, so it is dropped.
	errShort = errors.New("packet shorter than its header")
	// errMalformed is a packet whose header was read but whose payload is
	// not what the header says: the header's connection is reset.
	errMalformed = errors.New("malformed packet")
)

// packet is one packet the driver put in the tx queue: its header and its
// payload, hdr.len bytes, as slices of the chain's guest memory.
type packet struct {
	hdr     header
	payload [][]byte
}

// payloadLen returns the number of payload bytes.
func (p *packet) payloadLen() int {
	n := 0
	for _, b := range p.payload {
		n += len(b)
	}
	return n
}

// parsePacket reads the packet in c's device-readable buffers: the header,
// which may span buffers, then exactly hdr.len payload bytes (§5.10.6: the
// buffers may be longer than len, never shorter). The header and payload are
// the driver's: only their framing is checked here. An error wraps errShort
// (no header: the packet has nowhere to be answered) or errMalformed (the
// returned header is valid, its payload is not).
func parsePacket(c *virtio.Chain) (packet, error) {
	var raw [HeaderSize]byte
	if _, err := io.ReadFull(c.Reader(), raw[:]); err != nil {
		return packet{}, fmt.Errorf("%w: %d bytes", errShort, c.ReadableLen())
	}
	p := packet{hdr: decodeHeader(raw[:])}
	switch n := uint64(p.hdr.len); {
	case n > MaxPayload:
		return p, fmt.Errorf("%w: len %d is more than %d", errMalformed, n, MaxPayload)
	case n > c.ReadableLen()-HeaderSize:
		return p, fmt.Errorf("%w: len %d, but the chain holds %d payload bytes", errMalformed, n, c.ReadableLen()-HeaderSize)
	}
	p.payload = span(c.Readable, HeaderSize, int(p.hdr.len))
	return p, nil
}

// span returns the n bytes of bufs, taken as one stream, from off on, as
// sub-slices; bufs holds at least off+n bytes.
func span(bufs [][]byte, off, n int) [][]byte {
	var out [][]byte
	for _, b := range bufs {
		if n == 0 {
			break
		}
		if off >= len(b) {
			off -= len(b)
			continue
		}
		k := min(len(b)-off, n)
		out = append(out, b[off:off+k])
		off, n = 0, n-k
	}
	return out
}
