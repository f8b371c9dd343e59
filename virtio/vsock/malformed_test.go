package vsock

import (
	"testing"
	"time"

	"ember/virtio/virtiotest"
)

// TestMalformedPackets: what a hostile guest can send that belongs to no
// connection, and the device's answer: an RST where the packet says where
// to send one and the spec asks for it, nothing otherwise, a log line for
// what is wrong rather than late; and the device goes on serving.
func TestMalformedPackets(t *testing.T) {
	base := header{srcCID: guestCID, dstCID: HostCID, srcPort: 5000, dstPort: 1, typ: typeStream, op: opRequest, bufAlloc: 4096}
	with := func(f func(*header)) header { h := base; f(&h); return h }
	rd := virtiotest.Readable
	for _, tt := range []struct {
		name string
		bufs []virtiotest.Buffer
		rst  bool   // the guest gets an RST
		log  string // what the log says, if anything
	}{
		{"short header", []virtiotest.Buffer{rd(make([]byte, 10))}, false, "shorter than its header"},
		{"only writable buffers", []virtiotest.Buffer{virtiotest.Writable(64)}, false, "shorter than its header"},
		{"header split over buffers", []virtiotest.Buffer{rd(rawHeader(with(func(h *header) { h.op = opRW }))[:7]), rd(rawHeader(with(func(h *header) { h.op = opRW }))[7:])}, true, ""},
		{"source CID not the guest's", []virtiotest.Buffer{rd(rawHeader(with(func(h *header) { h.srcCID = 7 })))}, false, "source CID"},
		{"source CID with upper bits", []virtiotest.Buffer{rd(rawHeader(with(func(h *header) { h.srcCID = 1<<32 | guestCID })))}, false, "source CID"},
		{"destination not the host", []virtiotest.Buffer{rd(rawHeader(with(func(h *header) { h.dstCID = 7 })))}, true, "other than the host"},
		{"destination CID with reserved bits", []virtiotest.Buffer{rd(rawHeader(with(func(h *header) { h.dstCID = 1<<32 | HostCID })))}, false, "reserved bits"},
		{"seqpacket", []virtiotest.Buffer{rd(rawHeader(with(func(h *header) { h.typ = 2 })))}, true, "socket type"},
		{"unknown type", []virtiotest.Buffer{rd(rawHeader(with(func(h *header) { h.typ = 0xbeef })))}, true, "socket type"},
		{"op 0", []virtiotest.Buffer{rd(rawHeader(with(func(h *header) { h.op = opInvalid })))}, true, "unknown op"},
		{"op 99", []virtiotest.Buffer{rd(rawHeader(with(func(h *header) { h.op = 99 })))}, true, "unknown op"},
		{"len beyond the chain", []virtiotest.Buffer{rd(rawHeader(with(func(h *header) { h.op = opRW; h.len = 100 }))), rd(make([]byte, 99))}, true, "malformed"},
		{"len beyond MaxPayload", []virtiotest.Buffer{rd(rawHeader(with(func(h *header) { h.op = opRW; h.len = MaxPayload + 1 })))}, true, "malformed"},
		{"len huge", []virtiotest.Buffer{rd(rawHeader(with(func(h *header) { h.op = opRW; h.len = 0xffffffff })))}, true, "malformed"},
		{"RW for no connection", []virtiotest.Buffer{rd(rawHeader(with(func(h *header) { h.op = opRW; h.len = 3 }))), rd([]byte("abc"))}, true, ""},
		{"SHUTDOWN for no connection", []virtiotest.Buffer{rd(rawHeader(with(func(h *header) { h.op = opShutdown; h.flags = 3 })))}, true, ""},
		{"RST for no connection", []virtiotest.Buffer{rd(rawHeader(with(func(h *header) { h.op = opRST })))}, false, ""},
		{"RST to another CID", []virtiotest.Buffer{rd(rawHeader(with(func(h *header) { h.op = opRST; h.dstCID = 9 })))}, false, "other than the host"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := newRig(t, rigOptions{})
			r.listen(2, echo)
			r.sendRaw(tt.bufs...)
			if tt.rst {
				// The RST answers the packet: its source is the packet's
				// destination, its type the packet's, as a peer's would be.
				sent := decodeHeader(concat(tt.bufs))
				h, _ := r.recv()
				if h.op != opRST || h.srcCID != sent.dstCID || h.srcPort != sent.dstPort || h.dstPort != sent.srcPort || h.typ != sent.typ {
					t.Fatalf("got %s from %d:%d to port %d type %d, want RST answering %+v", opName(h.op), h.srcCID, h.srcPort, h.dstPort, h.typ, sent)
				}
			} else {
				r.recvNone(50 * time.Millisecond)
			}
			if tt.log != "" && !r.logs.contains(tt.log) {
				t.Fatalf("log has no %q", tt.log)
			}
			checkAlive(r)
		})
	}
}

// TestMalformedOnConnection: protocol errors on an established connection
// reset it: the guest gets RST, the host program EOF.
func TestMalformedOnConnection(t *testing.T) {
	for _, tt := range []struct {
		name string
		send func(g *gconn)
	}{
		{"duplicate REQUEST", func(g *gconn) { g.sendOp(opRequest, 0) }},
		{"unasked RESPONSE", func(g *gconn) { g.sendOp(opResponse, 0) }},
		{"unknown op", func(g *gconn) { g.sendOp(42, 0) }},
		{"len beyond the chain", func(g *gconn) {
			h := g.hdr(opRW)
			h.len = 10
			g.r.send(h, []byte("short"))
		}},
		{"RW after SHUTDOWN SEND", func(g *gconn) {
			g.sendOp(opShutdown, shutSend)
			g.write([]byte("more"))
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := newRig(t, rigOptions{})
			serve, conns := accepted()
			r.listen(7, serve)
			g := r.connectGuest(5000, 7)
			hc := r.take(conns)
			tt.send(g)
			g.expect(opRST)
			if got := readClosed(t, hc); len(got) != 0 {
				t.Fatalf("host read %q", got)
			}
			r.listen(2, echo)
			checkAlive(r)
		})
	}
}

// TestBadRXChains: rx chains that cannot hold a packet are returned empty,
// and the packet goes into the next good one.
func TestBadRXChains(t *testing.T) {
	r := newRig(t, rigOptions{noRX: true})
	bad := [][]virtiotest.Buffer{
		{virtiotest.Readable(make([]byte, 64))},
		{virtiotest.Writable(HeaderSize - 1)},
		{virtiotest.Writable(HeaderSize)}, // no room for a byte of data
	}
	for _, bufs := range bad {
		if _, _, err := r.rx.Add(bufs...); err != nil {
			t.Fatal(err)
		}
	}
	r.postRX(1)
	hc := r.dialHost()
	hc.Write([]byte("CONNECT 1234\n"))
	for range bad {
		u := r.waitUsedAny(r.rx)
		if u.Len != 0 {
			t.Fatalf("bad rx chain %d came back with %d bytes", u.Head, u.Len)
		}
	}
	g := r.acceptGuest(1234)
	r.expectOK(hc, g.hport)
}

// concat joins the readable buffers of a chain.
func concat(bufs []virtiotest.Buffer) []byte {
	var b []byte
	for _, x := range bufs {
		b = append(b, x.Data...)
	}
	return b
}

// waitUsedAny waits for the next used element of d.
func (r *rig) waitUsedAny(d *virtiotest.Driver) virtiotest.Used {
	r.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		u, ok, err := d.Used()
		if err != nil {
			r.t.Fatal(err)
		}
		if ok {
			return u
		}
		if time.Now().After(deadline) {
			r.t.Fatal("nothing used")
		}
		time.Sleep(100 * time.Microsecond)
	}
}

// checkAlive checks that the device still serves: a new connection to the
// echo server on host port 2 echoes.
func checkAlive(r *rig) {
	r.t.Helper()
	g := r.connectGuest(6000, 2)
	g.write([]byte("alive"))
	if got := g.read(5); string(got) != "alive" {
		r.t.Fatalf("echo %q", got)
	}
}
