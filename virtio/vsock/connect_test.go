package vsock

import (
	"bytes"
	"errors"
	"io"
	"net"
	"syscall"
	"testing"
	"time"

	"ember/virtio/virtiotest"
)

// TestGuestToHost: a guest connects to host port 1234, reaches the echo
// server on <Path>_1234, and reads back what it sent; a clean disconnect
// (SHUTDOWN both ways) ends with the device's RST.
func TestGuestToHost(t *testing.T) {
	for _, tt := range []struct {
		name  string
		opt   rigOptions
		bytes int
	}{
		{"short", rigOptions{}, 11},
		{"several packets", rigOptions{}, 3*rxData + 17},
		{"split rx buffers", rigOptions{split: true}, 2*rxData + 1},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := newRig(t, tt.opt)
			r.listen(1234, echo)
			g := r.connectGuest(5000, 1234)
			data := pattern(tt.bytes)
			g.write(data)
			if got := g.read(len(data)); !bytes.Equal(got, data) {
				t.Fatalf("echo: got %d bytes, want %d (first difference at %d)", len(got), len(data), virtiotest.FirstDiff(got, data))
			}
			g.sendOp(opShutdown, shutBoth)
			g.expect(opRST)
		})
	}
}

// TestGuestConnectRefused: a REQUEST to a port with nothing listening on
// its host socket is answered with RST.
func TestGuestConnectRefused(t *testing.T) {
	r := newRig(t, rigOptions{})
	g := &gconn{r: r, gport: 5000, hport: 99, bufAlloc: 4096}
	g.sendOp(opRequest, 0)
	g.expect(opRST)
	// The tuple is free again: a listener now accepts.
	r.listen(99, echo)
	g.sendOp(opRequest, 0)
	g.expect(opResponse)
}

// TestHostToGuest: a host program connects with CONNECT 1234, the guest
// accepts, and bytes go both ways, including bytes the host program sent
// right behind its CONNECT line; the host program's half-close reaches the
// guest as SHUTDOWN SEND, and the guest's close ends with RST and EOF.
func TestHostToGuest(t *testing.T) {
	r := newRig(t, rigOptions{})
	hc := r.dialHost()
	if _, err := hc.Write([]byte("CONNECT 1234\nearly")); err != nil {
		t.Fatal(err)
	}
	g := r.acceptGuest(1234)
	r.expectOK(hc, g.hport)
	if got := g.read(5); string(got) != "early" {
		t.Fatalf("guest read %q, want early", got)
	}
	hc.Write([]byte("ping"))
	if got := g.read(4); string(got) != "ping" {
		t.Fatalf("guest read %q, want ping", got)
	}
	g.write([]byte("pong"))
	if got := readFull(t, hc, 4); string(got) != "pong" {
		t.Fatalf("host read %q, want pong", got)
	}
	hc.CloseWrite()
	if h, _ := g.expect(opShutdown); h.flags != shutSend {
		t.Fatalf("SHUTDOWN flags %d, want SEND", h.flags)
	}
	g.write([]byte("after")) // the guest may still send
	if got := readFull(t, hc, 5); string(got) != "after" {
		t.Fatalf("host read %q, want after", got)
	}
	g.sendOp(opShutdown, shutBoth)
	g.expect(opRST)
	if rest := readAll(t, hc); len(rest) != 0 {
		t.Fatalf("host read %q after the close", rest)
	}
}

// TestHostToGuestRefused: a host program whose CONNECT the guest refuses,
// or that sends no proper CONNECT line, sees its connection closed with no
// OK.
func TestHostToGuestRefused(t *testing.T) {
	for _, tt := range []struct {
		name    string
		line    string
		request bool // the guest gets a REQUEST (and answers RST)
	}{
		{"guest refuses", "CONNECT 1234\n", true},
		{"CRLF, guest refuses", "CONNECT 7\r\n", true},
		{"not CONNECT", "HELLO 1234\n", false},
		{"bad port", "CONNECT 12x\n", false},
		{"port too big", "CONNECT 4294967296\n", false},
		{"port any", "CONNECT 4294967295\n", false},
		{"line too long", "CONNECT 00000000000000000000000000000001\n", false},
		{"EOF before the line ends", "CONNECT 1", false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := newRig(t, rigOptions{})
			hc := r.dialHost()
			hc.Write([]byte(tt.line))
			if tt.line[len(tt.line)-1] != '\n' {
				hc.CloseWrite()
			}
			if tt.request {
				h, _ := r.recv()
				if h.op != opRequest {
					t.Fatalf("got %s, want REQUEST", opName(h.op))
				}
				g := &gconn{r: r, gport: h.dstPort, hport: h.srcPort}
				g.sendOp(opRST, 0)
			} else {
				r.recvNone(50 * time.Millisecond)
			}
			if got := readClosed(t, hc); len(got) != 0 {
				t.Fatalf("host program read %q, want EOF", got)
			}
		})
	}
}

// TestGuestDoesNotAnswer: a host program whose REQUEST the guest leaves
// unanswered is closed after connectTimeout, and the guest, which did get
// the REQUEST, gets an RST.
func TestGuestDoesNotAnswer(t *testing.T) {
	old := connectTimeout
	t.Cleanup(func() { connectTimeout = old }) // after the device's Close: no goroutine reads it then
	connectTimeout = 100 * time.Millisecond
	r := newRig(t, rigOptions{})
	hc := r.dialHost()
	hc.Write([]byte("CONNECT 1234\n"))
	h, _ := r.recv()
	if h.op != opRequest {
		t.Fatalf("got %s, want REQUEST", opName(h.op))
	}
	if got := readClosed(t, hc); len(got) != 0 {
		t.Fatalf("host program read %q, want EOF", got)
	}
	g := &gconn{r: r, gport: h.dstPort, hport: h.srcPort}
	g.expect(opRST)
	g.sendOp(opResponse, 0) // too late: the connection is gone
	g.expect(opRST)
}

// TestHostConnectWithoutDriver: a host program that connects while no
// driver is active is closed at once.
func TestHostConnectWithoutDriver(t *testing.T) {
	r := newRig(t, rigOptions{noAuto: true})
	hc := r.dialHost()
	hc.Write([]byte("CONNECT 1\n"))
	if got := readAll(t, hc); len(got) != 0 {
		t.Fatalf("host program read %q, want EOF", got)
	}
}

// TestRXWaitsForBuffers: a packet for the guest waits for rx buffers, and
// goes out when the driver posts some and notifies.
func TestRXWaitsForBuffers(t *testing.T) {
	r := newRig(t, rigOptions{noRX: true})
	hc := r.dialHost()
	hc.Write([]byte("CONNECT 1234\n"))
	r.recvNone(100 * time.Millisecond)
	r.postRX(4)
	g := r.acceptGuest(1234)
	r.expectOK(hc, g.hport)
}

// TestManyConnections: host ports of host-initiated connections are
// distinct, and a guest REQUEST beyond MaxConnections is refused.
func TestManyConnections(t *testing.T) {
	r := newRig(t, rigOptions{})
	serve, conns := accepted()
	r.listen(1, serve)
	for i := range MaxConnections {
		r.connectGuest(uint32(10000+i), 1)
		r.take(conns)
	}
	g := &gconn{r: r, gport: 9999, hport: 1}
	g.sendOp(opRequest, 0)
	g.expect(opRST)

	r2 := newRig(t, rigOptions{})
	seen := map[uint32]bool{}
	for range 8 {
		g, _ := r2.connectHost(80)
		if seen[g.hport] {
			t.Fatalf("host port %d used twice", g.hport)
		}
		seen[g.hport] = true
	}
}

// TestSlowHostDoesNotStall: a host program that reads nothing fills its
// connection's buffer and socket, and the guest's other connections go on;
// the guest, which keeps to its credit, never overruns the device, and the
// bytes arrive whole once the host program reads.
func TestSlowHostDoesNotStall(t *testing.T) {
	r := newRig(t, rigOptions{})
	serve, conns := accepted()
	r.listen(1, serve)
	r.listen(2, echo)
	slow := r.connectGuest(5000, 1)
	hc := r.take(conns)

	// Send until the device gives no more credit: its buffer and the host
	// socket are full.
	var sent []byte
	for {
		credit := slow.peerAlloc - (slow.txCnt - slow.peerFwd)
		if credit == 0 {
			h, _, ok := r.tryRecv(200 * time.Millisecond)
			if !ok {
				break
			}
			slow.peerAlloc, slow.peerFwd = h.bufAlloc, h.fwdCnt
			continue
		}
		chunk := pattern(int(min(credit, MaxPayload)) + len(sent))[len(sent):]
		slow.write(chunk)
		sent = append(sent, chunk...)
		if len(sent) > 16<<20 {
			t.Fatal("the device kept giving credit for a host program that reads nothing")
		}
	}
	if len(sent) < BufAlloc {
		t.Fatalf("only %d bytes sent before credit ran out", len(sent))
	}

	fast := r.connectGuest(5001, 2)
	fast.write([]byte("still here"))
	if got := fast.read(10); string(got) != "still here" {
		t.Fatalf("other connection read %q", got)
	}

	got := readFull(t, hc, len(sent))
	if !bytes.Equal(got, sent) {
		t.Fatalf("host read differs from what the guest sent at byte %d", virtiotest.FirstDiff(got, sent))
	}
}

// readClosed reads from a host connection until the device closed it: EOF,
// or ECONNRESET when the device closed it with bytes unread.
func readClosed(t *testing.T, c *net.UnixConn) []byte {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(timeout))
	b, err := io.ReadAll(c)
	if err != nil && !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("host read: %v", err)
	}
	return b
}
