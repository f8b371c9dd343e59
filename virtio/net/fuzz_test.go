package net

import (
	"bytes"
	"encoding/binary"
	"errors"
	"log/slog"
	"slices"
	"testing"

	"ember/virtio"
)

// FuzzTX throws arbitrary transmit chains at the transmit parser: a header
// and frame of any bytes, cut into readable buffers at fuzzed points,
// perhaps with device-writable bytes after them, under any feature bits.
// Whatever comes, parsing must not panic or write to the chain, and a
// packet it accepts must be one the spec allows under the features
// negotiated: the frame as the driver gave it, a header with only the
// flags, offloads and bounds §5.1.6.2 permits.
func FuzzTX(f *testing.F) {
	csum := header{flags: hdrNeedsCsum, csumStart: 34, csumOffset: 16}
	tso := header{flags: hdrNeedsCsum, gsoType: gsoTCPv4 | gsoECN, hdrLen: 54, gsoSize: 1448, csumStart: 34, csumOffset: 16}
	f.Add(packet(header{}, frame(60, 0)), uint64(0), []byte{}, uint16(0))
	f.Add(packet(csum, frame(100, 1)), uint64(offloads), []byte{5, 12, 40}, uint16(0))
	f.Add(packet(tso, frame(3000, 2)), uint64(offloads), []byte{12}, uint16(0))
	f.Add(packet(tso, frame(3000, 2)), uint64(FeatureCsum|FeatureHostTSO4), []byte{12}, uint16(0))
	f.Add(packet(header{flags: 0xff, gsoType: gsoUDP}, frame(20, 3)), uint64(offloads), []byte{1, 1, 1}, uint16(0))
	f.Add(packet(header{}, frame(60, 4)), uint64(offloads), []byte{30}, uint16(7))
	f.Add(make([]byte, 20), uint64(offloads), []byte{3}, uint16(0))
	f.Fuzz(func(t *testing.T, data []byte, features uint64, cuts []byte, writable uint16) {
		c := txChain(data, cuts, writable)
		before := bytes.Clone(data)
		var p txPacket
		err := p.parse(c, features)
		if !bytes.Equal(flatten(c.Readable), before) {
			t.Fatal("parse wrote to a device-readable buffer")
		}
		if err != nil {
			if !errors.Is(err, errPacket) {
				t.Fatalf("error %v does not wrap errPacket", err)
			}
			return
		}
		checkAcceptedTX(t, &p, data, features, writable)
	})
}

// txChain builds a chain of data, cut into readable buffers after the
// offsets in cuts (each byte a step of 1 to 256), and a writable buffer
// of writable bytes if not 0.
func txChain(data []byte, cuts []byte, writable uint16) *virtio.Chain {
	c := &virtio.Chain{}
	rest := data
	for _, step := range cuts {
		n := min(int(step)+1, len(rest))
		if n == 0 {
			break
		}
		c.Readable = append(c.Readable, rest[:n])
		rest = rest[n:]
	}
	if len(rest) > 0 {
		c.Readable = append(c.Readable, rest)
	}
	if writable > 0 {
		c.Writable = [][]byte{make([]byte, writable)}
	}
	return c
}

// checkAcceptedTX checks a packet txPacket.parse accepted from data.
func checkAcceptedTX(t *testing.T, p *txPacket, data []byte, features uint64, writable uint16) {
	t.Helper()
	n := len(data) - HeaderSize
	switch {
	case writable > 0:
		t.Fatal("accepted a chain with a device-writable buffer")
	case n < ethHeaderLen || n > MaxFrameSize:
		t.Fatalf("accepted a frame of %d bytes", n)
	case p.frameLen != n || !bytes.Equal(flatten(p.frame()), data[HeaderSize:]):
		t.Fatalf("frame of %d bytes, want the chain's %d after the header", p.frameLen, n)
	case int(virtio.Len(p.buffers())) != len(data):
		t.Fatalf("sends %d bytes of a %d-byte chain", virtio.Len(p.buffers()), len(data))
	}
	h := decodeHeader(p.hdr[:])
	typ, ecn := h.gsoType&^gsoECN, h.gsoType&gsoECN != 0
	csum := h.flags&hdrNeedsCsum != 0
	switch {
	case h.numBuffers != 0:
		t.Fatalf("num_buffers %d sent", h.numBuffers)
	case h.flags&^hdrNeedsCsum != 0:
		t.Fatalf("flags %#x sent", h.flags)
	case csum && features&FeatureCsum == 0:
		t.Fatal("checksum offload without VIRTIO_NET_F_CSUM")
	case csum && (h.csumStart < ethHeaderLen || int(h.csumStart)+int(h.csumOffset)+2 > n):
		t.Fatalf("checksum at %d+%d in a %d-byte frame", h.csumStart, h.csumOffset, n)
	case typ != gsoNone && typ != gsoTCPv4 && typ != gsoTCPv6:
		t.Fatalf("GSO type %#x sent", h.gsoType)
	case typ == gsoTCPv4 && features&FeatureHostTSO4 == 0, typ == gsoTCPv6 && features&FeatureHostTSO6 == 0:
		t.Fatalf("GSO type %#x not negotiated (features %#x)", h.gsoType, features)
	case ecn && (typ == gsoNone || features&FeatureHostECN == 0):
		t.Fatalf("ECN with GSO type %#x, features %#x", h.gsoType, features)
	case typ != gsoNone && (!csum || h.gsoSize == 0):
		t.Fatalf("GSO without checksum offload or segment size: %+v", h)
	case typ == gsoNone && h.gsoSize != 0:
		t.Fatalf("gso_size %d without GSO", h.gsoSize)
	case h.hdrLen != 0 && (h.hdrLen < ethHeaderLen || int(h.hdrLen) > n):
		t.Fatalf("hdr_len %d for a %d-byte frame", h.hdrLen, n)
	}
}

// FuzzRX throws arbitrary packets from the backend and arbitrary layouts of
// receive buffers at the receive path's header check and placement:
// prepareRX must refuse what the features do not allow, and a packet
// placed in chains must land whole, in order, in their device-writable
// buffers and nowhere else (each buffer sits between guard bytes), with
// num_buffers counting the chains.
func FuzzRX(f *testing.F) {
	f.Add(packet(header{}, frame(100, 0)), uint64(0), []byte{0x20})
	f.Add(packet(header{flags: hdrDataValid}, frame(1514, 1)), uint64(FeatureMrgRxbuf), []byte{0x81, 0x10, 0x90, 0x05, 0xa0})
	f.Add(packet(header{flags: hdrNeedsCsum, gsoType: gsoTCPv4, gsoSize: 1448, csumStart: 34, csumOffset: 16}, frame(5000, 2)), uint64(offloads|FeatureMrgRxbuf), []byte{0x7f, 0xff, 0xff})
	f.Add(packet(header{gsoType: gsoTCPv6 | gsoECN}, frame(60, 3)), uint64(FeatureGuestCsum|FeatureGuestTSO6), []byte{0x01})
	f.Fuzz(func(t *testing.T, pkt []byte, features uint64, layout []byte) {
		orig := bytes.Clone(pkt)
		if err := prepareRX(pkt, features); err != nil {
			if !errors.Is(err, errPacket) {
				t.Fatalf("error %v does not wrap errPacket", err)
			}
			return
		}
		checkAcceptedRX(t, pkt, orig, features)
		g := newGuarded(layout)
		p := placement{pkt: pkt}
		for _, c := range g.chains {
			if p.add(c); p.done() {
				break
			}
		}
		if p.done() && len(p.chains) > 0 && p.chains[0].chain.WritableLen() >= HeaderSize {
			var n [2]byte
			binary.LittleEndian.PutUint16(n[:], uint16(len(p.chains)))
			writeAt(p.chains[0].chain.Writable, hdrNumBuffers, n[:])
			binary.LittleEndian.PutUint16(pkt[hdrNumBuffers:], uint16(len(p.chains)))
		}
		g.check(t, &p)
	})
}

// checkAcceptedRX checks the header prepareRX left on a packet it accepted.
func checkAcceptedRX(t *testing.T, pkt, orig []byte, features uint64) {
	t.Helper()
	h := decodeHeader(pkt)
	typ, ecn := h.gsoType&^gsoECN, h.gsoType&gsoECN != 0
	switch {
	case !bytes.Equal(pkt[HeaderSize:], orig[HeaderSize:]):
		t.Fatal("prepareRX changed the frame")
	case h.numBuffers != 1:
		t.Fatalf("num_buffers %d", h.numBuffers)
	case h.flags&^(hdrNeedsCsum|hdrDataValid) != 0:
		t.Fatalf("flags %#x", h.flags)
	case h.flags != 0 && features&FeatureGuestCsum == 0:
		t.Fatalf("flags %#x for a driver without GUEST_CSUM", h.flags)
	case typ == gsoTCPv4 && features&FeatureGuestTSO4 == 0,
		typ == gsoTCPv6 && features&FeatureGuestTSO6 == 0,
		typ == gsoUDP && features&FeatureGuestUFO == 0,
		typ != gsoNone && typ != gsoTCPv4 && typ != gsoTCPv6 && typ != gsoUDP,
		ecn && (typ == gsoNone || features&FeatureGuestECN == 0):
		t.Fatalf("GSO type %#x for features %#x", h.gsoType, features)
	}
}

// guarded is a set of chains whose writable buffers lie in one backing
// array, each followed by guard bytes the device must not touch.
type guarded struct {
	backing []byte
	bufs    [][2]int // each buffer's start and end in backing
	chains  []*virtio.Chain
}

const guardByte, guardLen = 0xa5, 3

// newGuarded builds chains from layout: each byte is a writable buffer of
// (b&0x7f)*41 bytes, and a set top bit starts a new chain; at most 64
// buffers.
func newGuarded(layout []byte) *guarded {
	g := &guarded{}
	for i, b := range layout[:min(len(layout), 64)] {
		size := int(b&0x7f) * 41
		g.bufs = append(g.bufs, [2]int{len(g.backing), len(g.backing) + size})
		g.backing = append(g.backing, make([]byte, size)...)
		g.backing = append(g.backing, bytes.Repeat([]byte{guardByte}, guardLen)...)
		if i == 0 || b&0x80 != 0 {
			g.chains = append(g.chains, &virtio.Chain{})
		}
		c := g.chains[len(g.chains)-1]
		c.Writable = append(c.Writable, g.backing[len(g.backing)-guardLen-size:len(g.backing)-guardLen])
	}
	return g
}

// check checks that the guards are intact and that the chains p used hold
// the packet: in order, each with the length it claims, and whole if p is
// done.
func (g *guarded) check(t *testing.T, p *placement) {
	t.Helper()
	for _, b := range g.bufs {
		if !bytes.Equal(g.backing[b[1]:b[1]+guardLen], bytes.Repeat([]byte{guardByte}, guardLen)) {
			t.Fatalf("the device wrote past the buffer at %d..%d", b[0], b[1])
		}
	}
	var got []byte
	for _, pc := range p.chains {
		if uint64(pc.n) > pc.chain.WritableLen() {
			t.Fatalf("%d bytes claimed in a chain of %d", pc.n, pc.chain.WritableLen())
		}
		got = append(got, flatten(pc.chain.Writable)[:pc.n]...)
	}
	if p.off != len(got) || !bytes.Equal(got, p.pkt[:p.off]) {
		t.Fatalf("the chains hold %d bytes that are not the packet's first %d", len(got), p.off)
	}
	if p.done() != (p.off == len(p.pkt)) {
		t.Fatal("done disagrees with the bytes placed")
	}
}

// flatten returns the concatenation of bufs.
func flatten(bufs [][]byte) []byte { return gathered(bufs) }

// FuzzRXDirect: a packet read straight into chains of any layout (the
// buffers of one readv, then spread over the chains) lands in them whole
// and in order, behind its header, with nothing written past a buffer;
// a packet longer than the room the device asks for is cut short by the
// read and dropped by prepareRXHeader, never spread past the last chain.
func FuzzRXDirect(f *testing.F) {
	pages := bytes.Repeat([]byte{0xe4}, 17) // 17 chains of 4,674 bytes
	f.Add(uint32(100), byte(0), pages, true)
	f.Add(uint32(HeaderSize+MaxFrameSize), byte(1), pages, true)
	f.Add(uint32(HeaderSize+MaxFrameSize+1), byte(2), pages, true)
	f.Add(uint32(1526), byte(3), bytes.Repeat([]byte{0x7f}, 13), false) // one chain of 13 buffers
	f.Add(uint32(5000), byte(4), append([]byte{0x80}, bytes.Repeat([]byte{0xff, 0x7f}, 30)...), true)
	f.Fuzz(func(t *testing.T, n uint32, seed byte, layout []byte, mrg bool) {
		g := newGuarded(layout)
		r := &receiver{worker: &worker{features: offloads}, mrg: mrg}
		for _, c := range g.chains {
			if r.room() >= directRoom {
				break
			}
			if c.WritableLen() >= HeaderSize && (mrg || len(r.held) == 0) {
				r.held = append(r.held, c)
				r.heldRoom += c.WritableLen()
			}
		}
		if r.room() < directRoom {
			return // the device reads into its own buffer instead
		}
		pkt := packet(header{}, frame(max(int(n%(2*directRoom)), HeaderSize+ethHeaderLen)-HeaderSize, seed))
		iov := r.buffers()
		if &iov[0][0] != &r.hdr[0] || len(iov[0]) != HeaderSize {
			t.Fatal("the read's first buffer is not the header's")
		}
		virtio.Scatter(iov, pkt) // what readv does; a TAP returns len(pkt) even if it cut it
		if err := prepareRXHeader(r.hdr[:], len(pkt), r.features); err != nil {
			if len(pkt)-HeaderSize <= MaxFrameSize {
				t.Fatalf("a packet of %d bytes dropped: %v", len(pkt), err)
			}
			return
		}
		chains := r.spread(len(pkt))
		writeAt(r.held[0].Writable, 0, r.hdr[:])
		binary.LittleEndian.PutUint16(pkt[hdrNumBuffers:], 1)
		g.check(t, &placement{pkt: pkt, off: len(pkt), chains: chains})
		if !mrg && len(chains) != 1 {
			t.Fatalf("%d chains used without mergeable buffers", len(chains))
		}
	})
}

// FuzzControl throws arbitrary control requests at the control queue's
// command: any bytes, cut into readable buffers at fuzzed points, with a
// device-writable ack buffer of any size. It must not panic or write to
// the request, it must answer VIRTIO_NET_OK exactly for a VQ_PAIRS_SET of
// 1 to the device's pairs (then using that many), and the ack must land
// in the first device-writable byte alone.
func FuzzControl(f *testing.F) {
	f.Add([]byte{ctrlClassMQ, ctrlMQVQPairsSet, 2, 0}, []byte{}, uint16(1))
	f.Add([]byte{ctrlClassMQ, ctrlMQVQPairsSet, 1, 0}, []byte{0, 0, 0}, uint16(1))
	f.Add([]byte{ctrlClassMQ, ctrlMQVQPairsSet, 3, 0}, []byte{1}, uint16(1))
	f.Add([]byte{ctrlClassMQ, ctrlMQVQPairsSet, 0, 1}, []byte{}, uint16(4))
	f.Add([]byte{0, 1, 1}, []byte{}, uint16(1))
	f.Add([]byte{ctrlClassMQ}, []byte{}, uint16(0))
	f.Fuzz(func(t *testing.T, data, cuts []byte, writable uint16) {
		const pairs = 3
		d := &Device{log: slog.New(slog.DiscardHandler), attached: make([]bool, pairs), used: 1, mq: true}
		for range pairs {
			d.pairs = append(d.pairs, &pair{log: d.log})
		}
		d.ctrl = &worker{d: d.pairs[0]}
		c := txChain(data, cuts, writable)
		before := bytes.Clone(data)
		ack := d.command(c)
		if !bytes.Equal(flatten(c.Readable), before) {
			t.Fatal("command wrote to a device-readable buffer")
		}
		valid := len(data) >= 4 && data[0] == ctrlClassMQ && data[1] == ctrlMQVQPairsSet
		k := 0
		if valid {
			k = int(binary.LittleEndian.Uint16(data[2:]))
			valid = k >= 1 && k <= pairs
		}
		switch {
		case ack != ctrlOK && ack != ctrlErr:
			t.Fatalf("ack %d", ack)
		case valid != (ack == ctrlOK):
			t.Fatalf("request %x: ack %d", data, ack)
		case valid && d.used != k:
			t.Fatalf("VQ_PAIRS_SET %d: %d pairs used", k, d.used)
		case !valid && d.used != 1:
			t.Fatalf("refused request %x changed the pairs used to %d", data, d.used)
		}
		n, err := writeAck(c, ack)
		if (writable == 0) != (err != nil) || (err == nil && (n != 1 || c.Writable[0][0] != ack)) {
			t.Fatalf("writeAck into %d writable bytes: wrote %d, err %v", writable, n, err)
		}
		if writable > 1 && slices.ContainsFunc(c.Writable[0][1:], func(b byte) bool { return b != 0 }) {
			t.Fatal("writeAck wrote past the ack byte")
		}
	})
}
