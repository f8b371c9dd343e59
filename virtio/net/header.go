package net

import (
	"encoding/binary"
	"errors"
	"fmt"

	"ember/virtio"
)

// HeaderSize is the size of struct virtio_net_hdr_v1 (§5.1.6), which leads
// every packet in both directions once VERSION_1 is negotiated: flags,
// gso_type, hdr_len, gso_size, csum_start, csum_offset, num_buffers. The
// backend uses the same 12 bytes (TUNSETVNETHDRSZ 12).
const HeaderSize = 12

// Ethernet frame sizes.
const (
	// ethHeaderLen is an Ethernet header: the shortest frame the device
	// passes on (a TAP refuses shorter ones).
	ethHeaderLen = 14
	// MaxFrameSize is the longest frame the device moves in either
	// direction: a 64 KiB GSO packet (Linux's GSO_LEGACY_MAX_SIZE) behind
	// an Ethernet header and a VLAN tag.
	MaxFrameSize = 65536 + ethHeaderLen + 4
)

// Header flags and GSO types (struct virtio_net_hdr_v1).
const (
	hdrNeedsCsum = 1 // VIRTIO_NET_HDR_F_NEEDS_CSUM: csum_start and csum_offset say where
	hdrDataValid = 2 // VIRTIO_NET_HDR_F_DATA_VALID: the checksum was checked (receive only)

	gsoNone  = 0    // VIRTIO_NET_HDR_GSO_NONE
	gsoTCPv4 = 1    // VIRTIO_NET_HDR_GSO_TCPV4
	gsoUDP   = 3    // VIRTIO_NET_HDR_GSO_UDP
	gsoTCPv6 = 4    // VIRTIO_NET_HDR_GSO_TCPV6
	gsoECN   = 0x80 // VIRTIO_NET_HDR_GSO_ECN: TCP with ECN, or'ed into the type
)

// Offsets in the header.
const (
	hdrFlags      = 0
	hdrGSOType    = 1
	hdrHdrLen     = 2
	hdrGSOSize    = 4
	hdrCsumStart  = 6
	hdrCsumOffset = 8
	hdrNumBuffers = 10
)

// TUNSETOFFLOAD flags (linux/if_tun.h): what the TAP's reader, the guest,
// can take.
const (
	TunCsum   = 0x01 // TUN_F_CSUM: partially checksummed packets
	TunTSO4   = 0x02 // TUN_F_TSO4: TCPv4 GSO packets
	TunTSO6   = 0x04 // TUN_F_TSO6: TCPv6 GSO packets
	TunTSOECN = 0x08 // TUN_F_TSO_ECN: TSO packets with ECN set
	TunUFO    = 0x10 // TUN_F_UFO: UDP fragmentation offload (never set: GUEST_UFO is not offered)
)

// errPacket is a packet the device drops: a malformed transmit chain, or a
// received packet the guest cannot take.
var errPacket = errors.New("virtio-net: packet dropped")

// dropped returns an error wrapping errPacket.
func dropped(format string, args ...any) error {
	return fmt.Errorf("%w: %s", errPacket, fmt.Sprintf(format, args...))
}

// header is struct virtio_net_hdr_v1 decoded.
type header struct {
	flags, gsoType                    uint8
	hdrLen, gsoSize                   uint16
	csumStart, csumOffset, numBuffers uint16
}

// decodeHeader decodes the first HeaderSize bytes of b.
func decodeHeader(b []byte) header {
	le := binary.LittleEndian
	return header{
		flags: b[hdrFlags], gsoType: b[hdrGSOType],
		hdrLen: le.Uint16(b[hdrHdrLen:]), gsoSize: le.Uint16(b[hdrGSOSize:]),
		csumStart: le.Uint16(b[hdrCsumStart:]), csumOffset: le.Uint16(b[hdrCsumOffset:]),
		numBuffers: le.Uint16(b[hdrNumBuffers:]),
	}
}

// encode writes h into the first HeaderSize bytes of b.
func (h header) encode(b []byte) {
	le := binary.LittleEndian
	b[hdrFlags], b[hdrGSOType] = h.flags, h.gsoType
	le.PutUint16(b[hdrHdrLen:], h.hdrLen)
	le.PutUint16(b[hdrGSOSize:], h.gsoSize)
	le.PutUint16(b[hdrCsumStart:], h.csumStart)
	le.PutUint16(b[hdrCsumOffset:], h.csumOffset)
	le.PutUint16(b[hdrNumBuffers:], h.numBuffers)
}

// tunOffload returns the TUNSETOFFLOAD flags for the features the driver
// accepted: the receive offloads it can take. The kernel takes TSO only
// with checksum offload and ECN only with TSO (the spec has the same
// dependencies), so a driver that broke them gets the subset that holds.
func tunOffload(features uint64) int {
	if features&FeatureGuestCsum == 0 {
		return 0
	}
	flags := TunCsum
	if features&FeatureGuestTSO4 != 0 {
		flags |= TunTSO4
	}
	if features&FeatureGuestTSO6 != 0 {
		flags |= TunTSO6
	}
	if flags&(TunTSO4|TunTSO6) != 0 && features&FeatureGuestECN != 0 {
		flags |= TunTSOECN
	}
	return flags
}

// txPacket is a transmit chain checked and ready for the backend: a copy
// of the header, cleaned, and the frame in guest memory. The transmitter
// keeps one and parses every chain into it, so sending allocates nothing;
// its buffers point into it, so it is not copied.
type txPacket struct {
	hdr      [HeaderSize]byte
	bufs     [][]byte // hdr, then the frame's buffers
	frameLen int
}

// buffers returns the packet as the backend takes it: header, then frame.
func (p *txPacket) buffers() [][]byte { return p.bufs }

// frame returns the frame's buffers, in guest memory.
func (p *txPacket) frame() [][]byte { return p.bufs[1:] }

// parse checks a transmit chain against the features the driver accepted
// (§5.1.6.2) and makes p the packet to send. The header is copied out of
// guest memory once, so the driver cannot change it between the check and
// the send. Flag bits the device does not know are ignored (cleared), as
// §5.1.6.2.2 requires; num_buffers is sent as 0 and hdr_len, a hint, is
// kept within the frame. Everything else a driver must not do is an error
// wrapping errPacket: a device-writable buffer, a chain shorter than the
// header and an Ethernet header or longer than MaxFrameSize, an offload it
// did not negotiate, a checksum outside the frame, GSO without checksum
// offload or segment size.
func (p *txPacket) parse(c *virtio.Chain, features uint64) error {
	p.bufs, p.frameLen = p.bufs[:0], 0
	if len(c.Writable) > 0 {
		return dropped("transmit chain with %d device-writable bytes", c.WritableLen())
	}
	total := c.ReadableLen()
	if total < HeaderSize+ethHeaderLen {
		return dropped("transmit chain of %d bytes, shorter than the %d-byte header and an Ethernet header", total, HeaderSize)
	}
	if total-HeaderSize > MaxFrameSize {
		return dropped("frame of %d bytes, longer than %d", total-HeaderSize, MaxFrameSize)
	}
	virtio.Gather(p.hdr[:], c.Readable) // all of it: total > HeaderSize
	h, err := checkTXHeader(decodeHeader(p.hdr[:]), features, int(total-HeaderSize))
	if err != nil {
		return err
	}
	h.encode(p.hdr[:])
	p.frameLen = int(total - HeaderSize)
	p.bufs = virtio.AppendSkip(append(p.bufs, p.hdr[:]), c.Readable, HeaderSize)
	return nil
}

// checkTXHeader checks and cleans a transmit header for a frame of n bytes.
func checkTXHeader(h header, features uint64, n int) (header, error) {
	h.flags &= hdrNeedsCsum
	h.numBuffers = 0
	if h.flags&hdrNeedsCsum != 0 {
		if features&FeatureCsum == 0 {
			return h, dropped("checksum offload without VIRTIO_NET_F_CSUM")
		}
		if err := checkCsum(h, n); err != nil {
			return h, err
		}
	}
	if err := checkTXGSO(h, features); err != nil {
		return h, err
	}
	if h.gsoType == gsoNone {
		h.gsoSize = 0
	}
	if int(h.hdrLen) > n || h.hdrLen < ethHeaderLen {
		h.hdrLen = 0 // a hint (§5.1.6.2.2), and one the TAP would refuse
	}
	return h, nil
}

// checkCsum checks that the checksum to fill in lies in a frame of n bytes,
// after the Ethernet header.
func checkCsum(h header, n int) error {
	start, end := int(h.csumStart), int(h.csumStart)+int(h.csumOffset)+2
	if start < ethHeaderLen || end > n {
		return dropped("checksum at %d+%d outside the %d-byte frame's payload", h.csumStart, h.csumOffset, n)
	}
	return nil
}

// checkTXGSO checks a transmit header's segmentation request against the
// features the driver accepted.
func checkTXGSO(h header, features uint64) error {
	typ, ecn := h.gsoType&^gsoECN, h.gsoType&gsoECN != 0
	switch {
	case typ == gsoNone && ecn:
		return dropped("GSO ECN bit without a GSO type")
	case typ == gsoNone:
		return nil
	case typ == gsoTCPv4 && features&FeatureHostTSO4 == 0:
		return dropped("TCPv4 segmentation without VIRTIO_NET_F_HOST_TSO4")
	case typ == gsoTCPv6 && features&FeatureHostTSO6 == 0:
		return dropped("TCPv6 segmentation without VIRTIO_NET_F_HOST_TSO6")
	case typ != gsoTCPv4 && typ != gsoTCPv6:
		return dropped("GSO type %#x not offered", h.gsoType)
	case ecn && features&FeatureHostECN == 0:
		return dropped("GSO with ECN without VIRTIO_NET_F_HOST_ECN")
	case h.flags&hdrNeedsCsum == 0:
		return dropped("GSO without checksum offload (NEEDS_CSUM)")
	case h.gsoSize == 0:
		return dropped("GSO with a segment size of 0")
	}
	return nil
}

// prepareRX checks and cleans the header of a packet the backend gave
// (header and frame, in host memory) for a driver that accepted features
// (§5.1.6.3): a partially checksummed or segmented packet it did not say it
// can take is an error wrapping errPacket, DATA_VALID is cleared for a
// driver without GUEST_CSUM and unknown flags for all, and num_buffers is 1
// (deliver sets it when the packet spans several buffers).
func prepareRX(pkt []byte, features uint64) error { return prepareRXHeader(pkt, len(pkt), features) }

// prepareRXHeader is prepareRX of a packet of n bytes whose header alone
// is in hdr: one read straight into the driver's buffers (direct.go).
func prepareRXHeader(hdr []byte, n int, features uint64) error {
	if n < HeaderSize+ethHeaderLen {
		return dropped("received packet of %d bytes, shorter than the header and an Ethernet header", n)
	}
	if n-HeaderSize > MaxFrameSize {
		return dropped("received frame of %d bytes, longer than %d", n-HeaderSize, MaxFrameSize)
	}
	h := decodeHeader(hdr)
	h.flags &= hdrNeedsCsum | hdrDataValid
	if features&FeatureGuestCsum == 0 {
		if h.flags&hdrNeedsCsum != 0 {
			return dropped("partially checksummed packet for a driver without VIRTIO_NET_F_GUEST_CSUM")
		}
		h.flags = 0
	}
	if err := checkRXGSO(h, features); err != nil {
		return err
	}
	h.numBuffers = 1
	h.encode(hdr)
	return nil
}

// checkRXGSO checks a received packet's segmentation against the features
// the driver accepted.
func checkRXGSO(h header, features uint64) error {
	typ, ecn := h.gsoType&^gsoECN, h.gsoType&gsoECN != 0
	switch {
	case typ == gsoNone && !ecn:
		return nil
	case typ == gsoTCPv4 && features&FeatureGuestTSO4 == 0,
		typ == gsoTCPv6 && features&FeatureGuestTSO6 == 0,
		typ == gsoUDP && features&FeatureGuestUFO == 0,
		typ != gsoTCPv4 && typ != gsoTCPv6 && typ != gsoUDP,
		ecn && features&FeatureGuestECN == 0:
		return dropped("received GSO type %#x the driver did not accept", h.gsoType)
	}
	return nil
}
