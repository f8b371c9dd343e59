package net

import (
	"bytes"
	"encoding/binary"
	"log/slog"
	"testing"

	"ember/virtio/virtiotest"
)

// pages posts n one-page receive chains and returns their heads and
// addresses, in order.
func (r *rig) pages(n int) ([]uint16, []uint64) {
	r.t.Helper()
	heads, gpas := make([]uint16, n), make([]uint64, n)
	for i := range n {
		h, g := r.add(RXQueue, virtiotest.Writable(4096))
		heads[i], gpas[i] = h, g[0]
	}
	return heads, gpas
}

// receivedIn reads the packet the next used elements hold, which must be
// the chains heads in order, one page each at gpas; it checks num_buffers
// against the chains used.
func (r *rig) receivedIn(heads []uint16, gpas []uint64) []byte {
	r.t.Helper()
	var got []byte
	for i := 0; ; i++ {
		u := r.used(RXQueue)
		if u.Head != heads[i] {
			r.t.Fatalf("used element %+v, want head %d", u, heads[i])
		}
		b, err := r.rx.Read(gpas[i], int(u.Len))
		if err != nil {
			r.t.Fatal(err)
		}
		got = append(got, b...)
		if n := int(binary.LittleEndian.Uint16(got[hdrNumBuffers:])); i+1 == n {
			return got
		} else if i+1 > n {
			r.t.Fatalf("num_buffers %d, but %d chains used", n, i+1)
		}
	}
}

// TestReceiveIntoHeldBuffers: with room for the longest packet posted,
// the device reads packets straight into the driver's buffers; a packet
// uses the chains it needs, in the order they were posted, and leaves the
// rest for the packets after it, small or as long as a frame gets.
func TestReceiveIntoHeldBuffers(t *testing.T) {
	r := newRig(t, FeatureMrgRxbuf|offloads, true)
	heads, gpas := r.pages(48)
	pkts := [][]byte{
		packet(header{}, frame(100, 1)),
		packet(header{flags: hdrNeedsCsum, gsoType: gsoTCPv4, hdrLen: 66, gsoSize: 1448, csumStart: 34, csumOffset: 16}, frame(MaxFrameSize, 2)),
		packet(header{}, frame(1514, 3)),
		packet(header{}, frame(60, 4)),
	}
	for _, p := range pkts {
		r.peerWrite(p)
	}
	next := 0
	for i, p := range pkts {
		got := r.receivedIn(heads[next:], gpas[next:])
		n := (len(p) + 4095) / 4096
		want := append([]byte(nil), p...)
		binary.LittleEndian.PutUint16(want[hdrNumBuffers:], uint16(n))
		if !bytes.Equal(got, want) {
			t.Fatalf("packet %d: got %d bytes, header % x; want %d, header % x", i, len(got), got[:HeaderSize], len(want), want[:HeaderSize])
		}
		next += n
	}
	r.noUsed(RXQueue)
	if s := r.dev.Stats(); s.RXPackets != uint64(len(pkts)) || s.RXDropped != 0 {
		t.Errorf("stats %+v", s)
	}
}

// TestReceiveDropsIntoHeldBuffers: what the device drops on the way in
// (a frame longer than MaxFrameSize, which a TAP cuts short and a socket
// too; an offload the driver did not accept) uses none of the driver's
// buffers: the next packet goes in the first of them.
func TestReceiveDropsIntoHeldBuffers(t *testing.T) {
	for _, tt := range []struct {
		name string
		pkt  []byte
	}{
		{"frame too long", packet(header{}, frame(MaxFrameSize+1, 5))},
		{"far too long", packet(header{}, frame(2*MaxFrameSize, 6))},
		{"TSO the driver did not accept", packet(header{flags: hdrNeedsCsum, gsoType: gsoTCPv4, gsoSize: 1448, csumStart: 34, csumOffset: 16}, frame(3000, 7))},
		{"runt", make([]byte, HeaderSize+ethHeaderLen-1)},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := newRig(t, FeatureMrgRxbuf|FeatureGuestCsum, true)
			heads, gpas := r.pages(20)
			r.peerWrite(tt.pkt)
			good := packet(header{}, frame(200, 8))
			r.peerWrite(good)
			r.droppedThen(r.receivedIn(heads, gpas), good)
		})
	}
}

// TestReceiveRefusesShortChainsWhenHolding: gathering room for a packet,
// the device returns empty any chain shorter than the header, wherever it
// comes ("each buffer MUST be at least the size of the struct
// virtio_net_hdr"), and puts the packet in the chains around it.
func TestReceiveRefusesShortChainsWhenHolding(t *testing.T) {
	r := newRig(t, FeatureMrgRxbuf, true)
	firstHeads, firstGPAs := r.pages(10)
	short, _ := r.add(RXQueue, virtiotest.Writable(HeaderSize-1))
	r.pages(10)
	pkt := packet(header{}, frame(300, 9))
	r.peerWrite(pkt)
	if u := r.used(RXQueue); u.Head != short || u.Len != 0 {
		t.Fatalf("used %+v, want the short chain %d returned empty first", u, short)
	}
	got := r.receivedIn(firstHeads, firstGPAs)
	pkt[hdrNumBuffers] = 1
	if !bytes.Equal(got, pkt) {
		t.Errorf("got %d bytes, want the %d-byte packet", len(got), len(pkt))
	}
}

// TestReceiveNotCutShort: a backend that says a packet was longer than
// the device's buffer (as a TAP does when it cuts one short) has that
// packet dropped, not delivered cut or read past the buffer's end; the
// next one is delivered.
func TestReceiveNotCutShort(t *testing.T) {
	onGoroutines = true
	defer func() { onGoroutines = false }()
	r := newInactiveRig(t)
	r.dev.pairs[0].backend = &overlong{Backend: r.dev.pairs[0].backend, left: 1}
	r.activate(0, true)
	_, gpas := r.add(RXQueue, virtiotest.Writable(2048))
	r.peerWrite(packet(header{}, frame(100, 10)))
	good := packet(header{}, frame(120, 11))
	r.peerWrite(good)
	u := r.used(RXQueue)
	got, err := r.rx.Read(gpas[0], int(u.Len))
	if err != nil {
		t.Fatal(err)
	}
	r.droppedThen(got, good)
}

// droppedThen checks that the driver got the packet good, in one chain,
// after one packet dropped with a warning.
func (r *rig) droppedThen(got, good []byte) {
	r.t.Helper()
	good[hdrNumBuffers] = 1
	if !bytes.Equal(got, good) {
		r.t.Errorf("got %d bytes, want the %d-byte packet after the dropped one", len(got), len(good))
	}
	r.logged(slog.LevelWarn)
	if s := r.dev.Stats(); s.RXPackets != 1 || s.RXDropped != 1 {
		r.t.Errorf("stats %+v", s)
	}
}

// overlong is a Backend whose first left reads report a packet one byte
// longer than the buffer it was read into.
type overlong struct {
	Backend
	left int
}

func (b *overlong) ReadPacket(p []byte) (int, error) {
	n, err := b.Backend.ReadPacket(p)
	if err == nil && b.left > 0 {
		b.left--
		return len(p) + 1, nil
	}
	return n, err
}
