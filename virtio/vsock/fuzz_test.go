package vsock

import (
	"bytes"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"ember/virtio"
)

// FuzzTxPacket throws sequences of arbitrary tx packets at the parser and
// at the connection state machine behind it, as a hostile guest would:
// each record of the input is one packet, split over two buffers at a
// fuzzed point. Host port 1 has a listener, so REQUESTs to it establish
// connections and later packets reach them; every other port has none.
// Whatever comes, nothing panics, the parser's framing is exact, every
// packet for the guest is well formed and fits its buffer, and the tables
// stay bounded.
func FuzzTxPacket(f *testing.F) {
	for _, seed := range fuzzSeeds() {
		f.Add(seed)
	}
	f.Fuzz(fuzzHarness(f))
}

// fuzzHarness returns FuzzTxPacket's body: a device with a listener on
// host port 1, and a fresh session for each input.
func fuzzHarness(tb testing.TB) func(*testing.T, []byte) {
	dir, err := os.MkdirTemp("", "vsockfuzz")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { os.RemoveAll(dir) })
	dev, err := New(Config{CID: guestCID, Path: filepath.Join(dir, "v"), Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { dev.Close() })
	ln, err := net.Listen("unix", dev.Path()+"_1")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { io.Copy(io.Discard, c); c.Close() }()
		}
	}()
	return func(t *testing.T, in []byte) {
		s := newSession(dev, nil, nil, nil, nil)
		dev.mu.Lock()
		dev.run = s
		dev.mu.Unlock()
		defer dev.Reset()
		for len(in) >= 2 {
			n := min(int(in[0]), len(in)-2)
			pkt, split := in[2:2+n], int(in[1])
			in = in[2+n:]
			fuzzOne(t, s, pkt, split)
		}
	}
}

// fuzzOne sends one packet through the parser and the state machine and
// checks what comes out for the guest.
func fuzzOne(t *testing.T, s *session, pkt []byte, split int) {
	c := &virtio.Chain{}
	split = min(split, len(pkt))
	for _, b := range [][]byte{pkt[:split], pkt[split:]} {
		if len(b) > 0 { // Pop never yields an empty buffer
			c.Readable = append(c.Readable, bytes.Clone(b))
		}
	}
	p, err := parsePacket(c)
	checkParse(t, pkt, p, err)
	if errors.Is(err, errShort) {
		return
	}
	s.d.mu.Lock()
	s.dispatch(p, err)
	s.d.mu.Unlock()
	waitDials(t, s)
	drainGuest(t, s)
}

// checkParse checks parsePacket's answer against the bytes it parsed.
func checkParse(t *testing.T, pkt []byte, p packet, err error) {
	if len(pkt) < HeaderSize {
		if !errors.Is(err, errShort) {
			t.Fatalf("%d bytes: %v, want errShort", len(pkt), err)
		}
		return
	}
	if p.hdr != decodeHeader(pkt) || p.hdr.encode() != [HeaderSize]byte(pkt[:HeaderSize]) {
		t.Fatalf("header %+v does not round-trip", p.hdr)
	}
	n := int(p.hdr.len)
	ok := n <= MaxPayload && n <= len(pkt)-HeaderSize
	if ok != (err == nil) || (err != nil && !errors.Is(err, errMalformed)) {
		t.Fatalf("len %d in %d bytes: %v", n, len(pkt), err)
	}
	if err == nil {
		var got []byte
		for _, b := range p.payload {
			got = append(got, b...)
		}
		if !bytes.Equal(got, pkt[HeaderSize:HeaderSize+n]) {
			t.Fatalf("payload %q, want %q", got, pkt[HeaderSize:HeaderSize+n])
		}
	}
}

// waitDials waits until no connection is still dialling its host socket,
// so that what follows sees the connect's outcome.
func waitDials(t *testing.T, s *session) {
	deadline := time.Now().Add(timeout)
	for {
		s.d.mu.Lock()
		dialling := 0
		for _, c := range s.conns {
			if c.state == stateConnecting {
				dialling++
			}
		}
		s.d.mu.Unlock()
		if dialling == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("a dial never ended")
		}
		time.Sleep(100 * time.Microsecond)
	}
}

// drainGuest takes every packet waiting for the guest into rx chains of
// assorted shapes and checks each.
func drainGuest(t *testing.T, s *session) {
	for i := 0; s.hasPacket(); i++ {
		if i > 10000 {
			t.Fatal("packets for the guest never run out")
		}
		room := []int{minRXChain, HeaderSize + 2, HeaderSize + 100, HeaderSize + rxData}[i%4]
		c := &virtio.Chain{Writable: [][]byte{make([]byte, room)}}
		n, ok := s.fill(c)
		if !ok {
			continue
		}
		h := decodeHeader(c.Writable[0])
		if int(n) != HeaderSize+int(h.len) || int(n) > room || h.dstCID != guestCID || h.srcCID>>32 != 0 {
			t.Fatalf("packet of %d bytes in %d: %+v", n, room, h)
		}
		if h.srcCID == HostCID && h.op != opRST && (h.typ != typeStream || h.bufAlloc != BufAlloc) {
			t.Fatalf("connection packet %+v", h)
		}
	}
	s.d.mu.Lock()
	defer s.d.mu.Unlock()
	if len(s.conns) > MaxConnections || len(s.ctrl) != 0 {
		t.Fatalf("%d connections, %d replies left", len(s.conns), len(s.ctrl))
	}
	for k, c := range s.conns {
		if c.hasWork() && !c.queued {
			t.Fatalf("connection %v has a packet for the guest but is not in the rx worker's turn", k)
		}
		if len(c.in) > BufAlloc || len(c.out) > maxPending {
			t.Fatalf("connection %v holds %d bytes in, %d out", k, len(c.in), len(c.out))
		}
	}
}

// fuzzSeeds returns inputs that walk the state machine: connections
// established, used, shut down and reset, and malformed packets among
// them.
func fuzzSeeds() [][]byte {
	h := func(op uint16, src, dst uint32, mod func(*header)) header {
		x := header{srcCID: guestCID, dstCID: HostCID, srcPort: src, dstPort: dst, typ: typeStream, op: op, bufAlloc: 4096}
		if mod != nil {
			mod(&x)
		}
		return x
	}
	rw := func(src, dst uint32, data string) []byte {
		x := h(opRW, src, dst, func(x *header) { x.len = uint32(len(data)) })
		return append(rawHeader(x), data...)
	}
	flags := func(f uint32) func(*header) { return func(x *header) { x.flags = f } }
	return [][]byte{
		fuzzInput(rawHeader(h(opRequest, 5000, 1, nil)), rw(5000, 1, "hello"),
			rawHeader(h(opCreditRequest, 5000, 1, nil)), rawHeader(h(opShutdown, 5000, 1, flags(shutSend))),
			rawHeader(h(opShutdown, 5000, 1, flags(shutBoth))), rawHeader(h(opRST, 5000, 1, nil))),
		fuzzInput(rawHeader(h(opRequest, 5000, 2, nil)), rw(5000, 2, "nobody")),
		fuzzInput(rawHeader(h(opRequest, 5000, 1, nil)), rawHeader(h(opRequest, 5000, 1, nil))),
		fuzzInput(rawHeader(h(opRequest, 5000, 1, nil)), rawHeader(h(opShutdown, 5000, 1, flags(shutRcv))), rw(5000, 1, "x")),
		fuzzInput(rawHeader(h(opRequest, 5000, 1, nil)), rawHeader(h(opResponse, 5000, 1, nil))),
		fuzzInput(rawHeader(h(opRW, 5000, 1, func(x *header) { x.len = 100 }))),
		fuzzInput(rawHeader(h(opRequest, 5000, 1, func(x *header) { x.dstCID = 9 }))),
		fuzzInput(rawHeader(h(opRequest, 5000, 1, func(x *header) { x.typ = 2 }))),
		fuzzInput(rawHeader(h(opRequest, 5000, 1, func(x *header) { x.srcCID = 4 }))),
		fuzzInput(rawHeader(h(99, 5000, 1, nil)), []byte("short")),
	}
}

// fuzzInput joins packets into FuzzTxPacket's input: each as its length,
// a split point in its middle, and its bytes.
func fuzzInput(pkts ...[]byte) []byte {
	var in []byte
	for _, p := range pkts {
		in = append(in, byte(len(p)), byte(len(p)/2))
		in = append(in, p...)
	}
	return in
}
