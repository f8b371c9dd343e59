package vsock

import (
	"bytes"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"ember/memory"
	"ember/virtio"
	"ember/virtio/virtiotest"
)

// guestCID is the CID of the test guest.
const guestCID = 3

// rxData is the payload room of a test rx buffer, as Linux posts them
// (VIRTIO_VSOCK_DEFAULT_RX_BUF_SIZE).
const rxData = 4096

// timeout bounds every wait of the tests.
const timeout = 5 * time.Second

// rig is a vsock device activated with an rx and a tx queue that the test
// fills as a Linux guest's driver would, over guest memory of its own.
type rig struct {
	t     *testing.T
	dev   *Device
	dir   string
	mem   *memory.Guest
	rx    *virtiotest.Driver
	tx    *virtiotest.Driver
	split bool                // rx chains are a header buffer and a data buffer (Linux 6.1)
	rxBuf map[uint16][]uint64 // posted rx chain head -> its buffers
	logs  *logSink
}

// rigOptions vary the rig.
type rigOptions struct {
	split  bool // post rx chains as two buffers, header and data
	noRX   bool // post no rx buffers at activation
	noAuto bool // do not activate
}

// newRig returns an active device with 64 rx buffers posted.
func newRig(t *testing.T, opt rigOptions) *rig {
	t.Helper()
	r := &rig{t: t, split: opt.split, rxBuf: map[uint16][]uint64{}, logs: &logSink{t: t}}
	var err error
	r.mem, err = memory.New([]memory.Range{{GPA: 0, Size: 64 << 20}, {GPA: 128 << 20, Size: 64 << 20}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.mem.Close() })
	r.dir = shortTempDir(t)
	r.dev, err = New(Config{CID: guestCID, Path: filepath.Join(r.dir, "v.sock"), Logger: slog.New(slog.NewTextHandler(r.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.dev.Close() })
	if opt.noAuto {
		return r
	}
	r.activate()
	if !opt.noRX {
		r.postRX(64)
	}
	return r
}

// shortTempDir returns a temporary directory with a short path: a unix
// socket path holds 107 bytes, and t.TempDir's name holds the test's.
func shortTempDir(t *testing.T) string {
	dir, err := os.MkdirTemp("", "vsock")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// activate lays out fresh rx and tx queues and activates the device.
func (r *rig) activate() {
	r.t.Helper()
	var err error
	if r.rx, err = virtiotest.New(r.mem, virtiotest.Config{Base: 0, Size: QueueSize, EventIdx: true}); err != nil {
		r.t.Fatal(err)
	}
	if r.tx, err = virtiotest.New(r.mem, virtiotest.Config{Base: 128 << 20, Size: QueueSize, EventIdx: true, IndirectDesc: true}); err != nil {
		r.t.Fatal(err)
	}
	r.rxBuf = map[uint16][]uint64{}
	queues := []*virtio.Queue{r.rx.Queue, r.tx.Queue, nil}
	if err := r.dev.Activate(r.mem, virtio.FeatureVersion1|virtio.FeatureEventIdx, queues, func(int) {}); err != nil {
		r.t.Fatal(err)
	}
}

// path returns the host socket a guest connection to port reaches.
func (r *rig) path(port uint32) string { return r.dev.Path() + "_" + uitoa(port) }

// uitoa formats a port in decimal.
func uitoa(v uint32) string { return strconv.FormatUint(uint64(v), 10) }

// postRX makes n rx chains available and notifies the device.
func (r *rig) postRX(n int) {
	r.t.Helper()
	for range n {
		bufs := []virtiotest.Buffer{virtiotest.Writable(HeaderSize + rxData)}
		if r.split {
			bufs = []virtiotest.Buffer{virtiotest.Writable(HeaderSize), virtiotest.Writable(rxData)}
		}
		head, gpas, err := r.rx.Add(bufs...)
		if err != nil {
			r.t.Fatal(err)
		}
		r.rxBuf[head] = gpas
	}
	r.dev.Notify(RXQueue)
}

// sendRaw makes a tx chain of bufs available, notifies the device and
// waits until it returned the chain.
func (r *rig) sendRaw(bufs ...virtiotest.Buffer) {
	r.t.Helper()
	head, _, err := r.tx.Add(bufs...)
	if err != nil {
		r.t.Fatal(err)
	}
	r.dev.Notify(TXQueue)
	r.waitUsed(r.tx, head)
}

// send sends a packet: its header in one buffer and its payload, if any,
// in another, as Linux does.
func (r *rig) send(h header, payload []byte) {
	r.t.Helper()
	b := h.encode()
	bufs := []virtiotest.Buffer{virtiotest.Readable(b[:])}
	if len(payload) > 0 {
		bufs = append(bufs, virtiotest.Readable(payload))
	}
	r.sendRaw(bufs...)
}

// waitUsed waits for the device to return the chain head.
func (r *rig) waitUsed(d *virtiotest.Driver, head uint16) virtiotest.Used {
	r.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		u, ok, err := d.Used()
		if err != nil {
			r.t.Fatal(err)
		}
		if ok {
			if u.Head != head {
				r.t.Fatalf("used head %d, want %d", u.Head, head)
			}
			return u
		}
		if time.Now().After(deadline) {
			r.t.Fatalf("chain %d never returned", head)
		}
		time.Sleep(100 * time.Microsecond)
	}
}

// tryRecv returns the next packet the device delivered within wait, and
// posts a fresh rx buffer for the one it took.
func (r *rig) tryRecv(wait time.Duration) (header, []byte, bool) {
	r.t.Helper()
	deadline := time.Now().Add(wait)
	for {
		u, ok, err := r.rx.Used()
		if err != nil {
			r.t.Fatal(err)
		}
		if ok {
			h, p := r.readRX(u)
			return h, p, true
		}
		if time.Now().After(deadline) {
			return header{}, nil, false
		}
		time.Sleep(100 * time.Microsecond)
	}
}

// readRX decodes the packet in a used rx chain, checking its framing as
// Linux does, and reposts a buffer.
func (r *rig) readRX(u virtiotest.Used) (header, []byte) {
	r.t.Helper()
	gpas, ok := r.rxBuf[u.Head]
	if !ok {
		r.t.Fatalf("used rx head %d was not posted", u.Head)
	}
	delete(r.rxBuf, u.Head)
	var data []byte
	sizes := []int{HeaderSize + rxData}
	if r.split {
		sizes = []int{HeaderSize, rxData}
	}
	for i, gpa := range gpas {
		b, err := r.rx.Read(gpa, sizes[i])
		if err != nil {
			r.t.Fatal(err)
		}
		data = append(data, b...)
	}
	if u.Len < HeaderSize || int(u.Len) > len(data) {
		r.t.Fatalf("rx used length %d", u.Len)
	}
	h := decodeHeader(data)
	if int(u.Len) != HeaderSize+int(h.len) {
		r.t.Fatalf("rx used length %d for a packet of %d payload bytes", u.Len, h.len)
	}
	if h.dstCID != guestCID {
		r.t.Fatalf("rx packet addressed to CID %d", h.dstCID)
	}
	r.postRX(1)
	return h, data[HeaderSize:u.Len]
}

// recv returns the next packet the device delivers.
func (r *rig) recv() (header, []byte) {
	r.t.Helper()
	h, p, ok := r.tryRecv(timeout)
	if !ok {
		r.t.Fatal("no packet from the device")
	}
	return h, p
}

// recvNone checks that the device delivers nothing for a while.
func (r *rig) recvNone(wait time.Duration) {
	r.t.Helper()
	if h, _, ok := r.tryRecv(wait); ok {
		r.t.Fatalf("unexpected packet: op %s %d->%d len %d flags %d", opName(h.op), h.srcPort, h.dstPort, h.len, h.flags)
	}
}

// gconn is the guest's side of one connection, as Linux keeps it.
type gconn struct {
	r            *rig
	gport, hport uint32
	bufAlloc     uint32 // the guest's receive buffer
	fwd          uint32 // bytes the guest consumed
	txCnt        uint32 // bytes the guest sent
	peerAlloc    uint32 // the device's buf_alloc
	peerFwd      uint32 // the device's fwd_cnt
}

// hdr returns a header of the guest's for the connection.
func (g *gconn) hdr(op uint16) header {
	return header{
		srcCID: guestCID, dstCID: HostCID, srcPort: g.gport, dstPort: g.hport,
		typ: typeStream, op: op, bufAlloc: g.bufAlloc, fwdCnt: g.fwd,
	}
}

// sendOp sends a control packet.
func (g *gconn) sendOp(op uint16, flags uint32) {
	g.r.t.Helper()
	h := g.hdr(op)
	h.flags = flags
	g.r.send(h, nil)
}

// write sends data in RW packets, as much as the device's credit allows
// each time; it waits for credit updates when there is none.
func (g *gconn) write(data []byte) {
	g.r.t.Helper()
	for len(data) > 0 {
		credit := g.peerAlloc - (g.txCnt - g.peerFwd)
		if credit == 0 {
			g.expect(opCreditUpdate)
			continue
		}
		n := min(len(data), int(credit), MaxPayload)
		h := g.hdr(opRW)
		h.len = uint32(n)
		g.r.send(h, data[:n])
		g.txCnt += uint32(n)
		data = data[n:]
	}
}

// recv returns the connection's next packet, checking its ports and
// keeping the device's credit; RW payload is consumed (fwd).
func (g *gconn) recv() (header, []byte) {
	g.r.t.Helper()
	h, p := g.r.recv()
	if h.srcCID != HostCID || h.typ != typeStream || h.srcPort != g.hport || h.dstPort != g.gport {
		g.r.t.Fatalf("packet %s from %d:%d to port %d type %d, want from %d:%d to %d, stream",
			opName(h.op), h.srcCID, h.srcPort, h.dstPort, h.typ, HostCID, g.hport, g.gport)
	}
	g.peerAlloc, g.peerFwd = h.bufAlloc, h.fwdCnt
	if h.op == opRW {
		g.fwd += h.len
	}
	return h, p
}

// expect returns the next packet of the connection, which must be op;
// CREDIT_UPDATEs on the way are taken in when op is another.
func (g *gconn) expect(op uint16) (header, []byte) {
	g.r.t.Helper()
	for {
		h, p := g.recv()
		if h.op == op {
			return h, p
		}
		if h.op != opCreditUpdate {
			g.r.t.Fatalf("got %s (flags %d, len %d), want %s", opName(h.op), h.flags, h.len, opName(op))
		}
	}
}

// read collects n bytes of RW payload, granting the device credit as a
// Linux guest does when it has consumed a quarter of its buffer.
func (g *gconn) read(n int) []byte {
	g.r.t.Helper()
	var got []byte
	told := g.fwd
	for len(got) < n {
		_, p := g.expect(opRW)
		got = append(got, p...)
		if g.fwd-told >= g.bufAlloc/4 {
			g.sendOp(opCreditUpdate, 0)
			told = g.fwd
		}
	}
	return got
}

// connectGuest has the guest connect from guest port gport to host port
// hport, and returns the connection once the device answered RESPONSE.
func (r *rig) connectGuest(gport, hport uint32) *gconn {
	r.t.Helper()
	g := &gconn{r: r, gport: gport, hport: hport, bufAlloc: 256 << 10}
	g.sendOp(opRequest, 0)
	g.expect(opResponse)
	return g
}

// connectHost has a host program connect to guest port gport; the guest
// accepts, and the host program reads OK. It returns both ends.
func (r *rig) connectHost(gport uint32) (*gconn, *net.UnixConn) {
	r.t.Helper()
	hc := r.dialHost()
	if _, err := hc.Write([]byte("CONNECT " + uitoa(gport) + "\n")); err != nil {
		r.t.Fatal(err)
	}
	g := r.acceptGuest(gport)
	r.expectOK(hc, g.hport)
	return g, hc
}

// dialHost connects to the device's socket as a host program.
func (r *rig) dialHost() *net.UnixConn {
	r.t.Helper()
	c, err := net.DialUnix("unix", nil, &net.UnixAddr{Name: r.dev.Path(), Net: "unix"})
	if err != nil {
		r.t.Fatal(err)
	}
	r.t.Cleanup(func() { c.Close() })
	return c
}

// acceptGuest takes the device's REQUEST to gport and answers RESPONSE.
func (r *rig) acceptGuest(gport uint32) *gconn {
	r.t.Helper()
	h, _ := r.recv()
	if h.op != opRequest || h.dstPort != gport || h.srcPort < firstHostPort {
		r.t.Fatalf("got %s %d->%d, want REQUEST from a port >= %d to %d", opName(h.op), h.srcPort, h.dstPort, firstHostPort, gport)
	}
	g := &gconn{r: r, gport: gport, hport: h.srcPort, bufAlloc: 256 << 10, peerAlloc: h.bufAlloc, peerFwd: h.fwdCnt}
	g.sendOp(opResponse, 0)
	return g
}

// expectOK reads the device's "OK <port>\n" from a host program's
// connection.
func (r *rig) expectOK(hc *net.UnixConn, port uint32) {
	r.t.Helper()
	want := "OK " + uitoa(port) + "\n"
	got := make([]byte, len(want))
	hc.SetReadDeadline(time.Now().Add(timeout))
	if _, err := io.ReadFull(hc, got); err != nil || string(got) != want {
		r.t.Fatalf("host program read %q, %v; want %q", got, err, want)
	}
	hc.SetReadDeadline(time.Time{})
}

// listen listens on the host socket of port and hands each connection to
// serve on a goroutine; the listener and connections close at cleanup.
func (r *rig) listen(port uint32, serve func(*net.UnixConn)) {
	r.t.Helper()
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: r.path(port), Net: "unix"})
	if err != nil {
		r.t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []*net.UnixConn
	closed := false
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.AcceptUnix()
			if err != nil {
				return
			}
			mu.Lock()
			if closed { // accepted as the cleanup ran: nobody else closes it
				mu.Unlock()
				c.Close()
				return
			}
			conns = append(conns, c)
			wg.Add(1)
			mu.Unlock()
			go func() { defer wg.Done(); serve(c) }()
		}
	}()
	r.t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		closed = true
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
}

// echo serves a connection by sending back what it reads, until EOF.
func echo(c *net.UnixConn) {
	io.Copy(c, c)
	c.CloseWrite()
}

// drain serves a connection by reading and dropping everything.
func drain(c *net.UnixConn) { io.Copy(io.Discard, c) }

// readFullNoFail reads n bytes from c, or what came before an error, for a
// goroutine that cannot fail the test.
func readFullNoFail(c *net.UnixConn, n int) []byte {
	c.SetReadDeadline(time.Now().Add(timeout))
	b := make([]byte, n)
	k, _ := io.ReadFull(c, b)
	return b[:k]
}

// accepted returns a serve function that hands each connection over.
func accepted() (func(*net.UnixConn), chan *net.UnixConn) {
	ch := make(chan *net.UnixConn, 512)
	return func(c *net.UnixConn) { ch <- c }, ch
}

// take receives a connection from ch.
func (r *rig) take(ch chan *net.UnixConn) *net.UnixConn {
	r.t.Helper()
	select {
	case c := <-ch:
		return c
	case <-time.After(timeout):
		r.t.Fatal("no connection reached the host socket")
		return nil
	}
}

// readAll reads from a host connection until EOF, within the timeout.
func readAll(t *testing.T, c *net.UnixConn) []byte {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(timeout))
	b, err := io.ReadAll(c)
	if err != nil {
		t.Fatalf("host read: %v", err)
	}
	return b
}

// readFull reads n bytes from a host connection, within the timeout.
func readFull(t *testing.T, c *net.UnixConn, n int) []byte {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(timeout))
	b := make([]byte, n)
	if _, err := io.ReadFull(c, b); err != nil {
		t.Fatalf("host read: %v", err)
	}
	c.SetReadDeadline(time.Time{})
	return b
}

// pattern returns n bytes that show where a byte went missing.
func pattern(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7 + i>>8)
	}
	return b
}

// rawHeader encodes h for a test that sends malformed packets.
func rawHeader(h header) []byte {
	b := h.encode()
	return b[:]
}

// logSink collects the device's log for a test and passes it on to t.Log.
type logSink struct {
	t   *testing.T
	mu  sync.Mutex
	buf bytes.Buffer
}

// Write records one log line.
func (l *logSink) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf.Write(p)
	l.t.Log(strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}

// contains says whether the log has a line with s.
func (l *logSink) contains(s string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Contains(l.buf.String(), s)
}
