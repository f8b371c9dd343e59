package net

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io/fs"
	stdnet "net"
	"os"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"ember/internal/kvmtest"
	"ember/virtio/virtiotest"
)

// openTestTAP opens a fresh TAP interface for a test, which the kernel
// removes when it is closed; it skips the test where the host has no TUN
// driver or does not let this process create interfaces.
func openTestTAP(t *testing.T) *TAP {
	t.Helper()
	tap := skipWithoutTAP(t)
	t.Cleanup(func() { tap.Close() })
	return tap
}

// skipWithoutTAP skips the test where the host has no TUN driver or does
// not let this process create interfaces, and returns the TAP it opened
// to find out.
func skipWithoutTAP(t *testing.T) *TAP {
	t.Helper()
	if _, err := os.Stat(tunPath); errors.Is(err, fs.ErrNotExist) {
		t.Skipf("this host has no %s (no TUN/TAP driver): the TAP backend cannot be tested", tunPath)
	}
	tap, err := OpenTAP("embertest%d")
	if errors.Is(err, unix.ENODEV) || errors.Is(err, unix.ENXIO) {
		t.Skipf("this host's kernel has no TUN/TAP driver behind %s: %v", tunPath, err)
	}
	if errors.Is(err, unix.EPERM) || errors.Is(err, unix.EACCES) {
		t.Skipf("this host does not let the test create a TAP interface (CAP_NET_ADMIN): %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	return tap
}

// isUp says whether interface name is up.
func isUp(t *testing.T, name string) bool {
	t.Helper()
	ifi, err := stdnet.InterfaceByName(name)
	if err != nil {
		t.Fatal(err)
	}
	return ifi.Flags&stdnet.FlagUp != 0
}

// TestOpenTAP: the TAP comes up with the name the kernel chose, and New
// opens and brings up one by name.
func TestOpenTAP(t *testing.T) {
	tap := openTestTAP(t)
	if !strings.HasPrefix(tap.Name(), "embertest") {
		t.Errorf("name %q", tap.Name())
	}
	if isUp(t, tap.Name()) {
		t.Error("up before Up")
	}
	for range 2 { // the second finds it up already
		if err := tap.Up(); err != nil {
			t.Fatal(err)
		}
	}
	if !isUp(t, tap.Name()) {
		t.Error("down after Up")
	}
	if err := tap.SetOffload(TunCsum | TunTSO4 | TunTSO6 | TunTSOECN); err != nil {
		t.Errorf("every offload the device sets: %v", err)
	}
	if err := tap.SetOffload(TunTSO4); err == nil {
		t.Error("the kernel took TSO without checksum offload; tunOffload's rule is stale")
	}

	d, err := New(Config{TAP: "embertestnew%d"})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	named, ok := d.Backend().(*TAP)
	if !ok || !strings.HasPrefix(named.Name(), "embertestnew") || !isUp(t, named.Name()) {
		t.Errorf("New's backend %T %v is not a TAP that is up", d.Backend(), d.Backend())
	}
	if _, err := New(Config{TAP: strings.Repeat("x", 40)}); err == nil {
		t.Error("New took a name longer than IFNAMSIZ")
	}
}

// TestTAP: frames go between the guest and the host's network stack
// through a real TAP, watched from the host by a packet socket on the
// interface: plain frames both ways, TCP segmentation offload both ways,
// and the kernel segmenting for a guest that did not accept TSO — with
// ember's goroutines moving the packets, and with the kernel's vhost-net.
func TestTAP(t *testing.T) {
	t.Run("ember", func(t *testing.T) { testTAP(t, false) })
	t.Run("vhost", func(t *testing.T) { kvmtest.RequireVhostNet(t); testTAP(t, true) })
}

func testTAP(t *testing.T, vhost bool) {
	tap := openTestTAP(t)
	if err := tap.Up(); err != nil {
		t.Fatal(err)
	}
	ps := openPacketSocket(t, tap.Name())
	r := newRigWith(t, Config{Backend: tap, Vhost: vhost})
	r.activate(offloads|FeatureMrgRxbuf, true)
	pool := r.postRX(64, 4096)

	t.Run("transmit", func(t *testing.T) {
		f := frame(1000, 30)
		r.add(TXQueue, virtiotest.Readable(hdr(header{})), virtiotest.Readable(f))
		h, _ := ps.find(t, func(_ header, fr []byte) bool { return bytes.Equal(fr, f) })
		if h.gsoType != gsoNone {
			t.Errorf("header %+v", h)
		}
		r.used(TXQueue)
	})
	t.Run("transmit TSO", func(t *testing.T) {
		h := header{flags: hdrNeedsCsum, gsoType: gsoTCPv4, hdrLen: 54, gsoSize: 1000, csumStart: 34, csumOffset: 16}
		f := tcpFrame(stdnet.HardwareAddr{0x02, 0, 0, 0, 0, 1}, 30000, 1111)
		r.add(TXQueue, virtiotest.Readable(hdr(h)), virtiotest.Readable(f))
		got, _ := ps.find(t, func(_ header, fr []byte) bool { return bytes.Equal(fr, f) })
		if got.gsoType != gsoTCPv4 || got.gsoSize != 1000 {
			t.Errorf("the host got header %+v, want the guest's GSO request", got)
		}
		r.used(TXQueue)
		if s := r.dev.Stats(); s.TXDropped != 0 {
			t.Errorf("stats %+v", s)
		}
	})
	t.Run("receive", func(t *testing.T) {
		f := frame(1400, 31)
		copy(f, testMAC)
		ps.send(t, header{}, f)
		pool.find(t, func(_ header, fr []byte) bool { return bytes.Equal(fr, f) })
	})
	t.Run("receive TSO", func(t *testing.T) {
		f := tcpFrame(testMAC, 20000, 2222)
		ps.send(t, header{flags: hdrNeedsCsum, gsoType: gsoTCPv4, hdrLen: 54, gsoSize: 1000, csumStart: 34, csumOffset: 16}, f)
		h, _ := pool.find(t, func(_ header, fr []byte) bool { return bytes.Equal(fr, f) })
		if h.gsoType != gsoTCPv4 || h.gsoSize != 1000 || h.flags&hdrNeedsCsum == 0 {
			t.Errorf("the guest got header %+v, want the 20000-byte packet unsegmented", h)
		}
	})

	r.dev.Reset()
	r.activate(FeatureMrgRxbuf, true) // no offloads: the kernel segments and checksums
	pool = r.postRX(64, 4096)
	t.Run("receive segmented without TSO", func(t *testing.T) {
		f := tcpFrame(testMAC, 5000, 3333)
		ps.send(t, header{flags: hdrNeedsCsum, gsoType: gsoTCPv4, hdrLen: 54, gsoSize: 1000, csumStart: 34, csumOffset: 16}, f)
		var payload []byte
		for len(payload) < 5000 {
			h, fr := pool.find(t, func(_ header, fr []byte) bool { return isTCPPort(fr, 3333) })
			if h.flags != 0 || h.gsoType != gsoNone || len(fr) > 54+1000 {
				t.Fatalf("segment of %d bytes, header %+v", len(fr), h)
			}
			payload = append(payload, fr[54:]...)
		}
		if !bytes.Equal(payload, f[54:]) {
			t.Error("the segments' payload differs from the packet's")
		}
	})
}

// packetSocket is an AF_PACKET socket bound to an interface, with
// PACKET_VNET_HDR: it sees every frame that crosses the interface, led by
// a 10-byte virtio_net_hdr, and sends frames out of it the same way.
type packetSocket struct{ f *os.File }

// openPacketSocket opens a packetSocket on interface name.
func openPacketSocket(t *testing.T, name string) *packetSocket {
	t.Helper()
	ifi, err := stdnet.InterfaceByName(name)
	if err != nil {
		t.Fatal(err)
	}
	all := int(htons(unix.ETH_P_ALL))
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, all)
	if err != nil {
		t.Fatal(err)
	}
	f := os.NewFile(uintptr(fd), "packet")
	t.Cleanup(func() { f.Close() })
	if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_VNET_HDR, 1); err != nil {
		t.Fatal(err)
	}
	if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: ifi.Index}); err != nil {
		t.Fatal(err)
	}
	return &packetSocket{f}
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

// send sends frame f out of the interface, with header h.
func (p *packetSocket) send(t *testing.T, h header, f []byte) {
	t.Helper()
	if _, err := p.f.Write(append(hdr(h)[:10], f...)); err != nil {
		t.Fatal(err)
	}
}

// find returns the first frame crossing the interface that match accepts,
// with its header: the host's own traffic on a fresh interface (IPv6
// neighbour discovery, say) is skipped.
func (p *packetSocket) find(t *testing.T, match func(header, []byte) bool) (header, []byte) {
	t.Helper()
	buf := make([]byte, rxBufferSize)
	p.f.SetReadDeadline(time.Now().Add(wait))
	for {
		n, err := p.f.Read(buf)
		if err != nil {
			t.Fatalf("the frame never crossed the interface: %v", err)
		}
		if n < 10 {
			continue
		}
		h := decodeHeader(append(buf[:10:10], 0, 0))
		if f := buf[10:n]; match(h, f) {
			return h, append([]byte(nil), f...)
		}
	}
}

// rxPool is a set of mergeable receive buffers the test driver keeps
// posted, and reads packets from.
type rxPool struct {
	r    *rig
	q    int // the receive queue
	size uint32
	gpas map[uint16]uint64
}

// postRX posts n buffers of size bytes.
func (r *rig) postRX(n int, size uint32) *rxPool { return r.postRXOn(RXQueue, n, size) }

// postRXOn posts n buffers of size bytes on receive queue q.
func (r *rig) postRXOn(q, n int, size uint32) *rxPool {
	p := &rxPool{r: r, q: q, size: size, gpas: map[uint16]uint64{}}
	for range n {
		p.post()
	}
	return p
}

func (p *rxPool) post() {
	head, gpas := p.r.add(p.q, virtiotest.Writable(p.size))
	p.gpas[head] = gpas[0]
}

// take returns the bytes of the next used buffer and posts another.
func (p *rxPool) take(t *testing.T) []byte {
	t.Helper()
	u := p.r.used(p.q)
	b, err := p.r.driver(p.q).Read(p.gpas[u.Head], int(u.Len))
	if err != nil {
		t.Fatal(err)
	}
	delete(p.gpas, u.Head)
	p.post()
	return b
}

// next returns the next packet the guest received, reassembled from its
// num_buffers buffers.
func (p *rxPool) next(t *testing.T) (header, []byte) {
	t.Helper()
	b := p.take(t)
	if len(b) < HeaderSize {
		t.Fatalf("used buffer of %d bytes", len(b))
	}
	h := decodeHeader(b)
	for i := 1; i < int(h.numBuffers); i++ {
		b = append(b, p.take(t)...)
	}
	return h, b[HeaderSize:]
}

// find returns the first packet the guest received that match accepts.
func (p *rxPool) find(t *testing.T, match func(header, []byte) bool) (header, []byte) {
	t.Helper()
	deadline := time.Now().Add(wait)
	for time.Now().Before(deadline) {
		if h, f := p.next(t); match(h, f) {
			return h, f
		}
	}
	t.Fatal("the guest never received the frame")
	return header{}, nil
}

// tcpFrame returns an IPv4 TCP frame to dst with n bytes of payload from
// port 40000 to port, its TCP checksum field holding the pseudo-header's
// sum, as checksum offload wants it.
func tcpFrame(dst stdnet.HardwareAddr, n int, port uint16) []byte {
	f := make([]byte, 54+n)
	copy(f, dst)
	copy(f[6:], []byte{0x02, 0, 0, 0, 0, 9})
	binary.BigEndian.PutUint16(f[12:], 0x0800)
	ip := f[14:34]
	ip[0], ip[8], ip[9] = 0x45, 64, 6
	binary.BigEndian.PutUint16(ip[2:], uint16(40+n))
	binary.BigEndian.PutUint16(ip[6:], 0x4000) // DF
	copy(ip[12:], []byte{10, 99, 0, 1, 10, 99, 0, 2})
	binary.BigEndian.PutUint16(ip[10:], ^checksum(ip, 0))
	tcp := f[34:54]
	binary.BigEndian.PutUint16(tcp[0:], 40000)
	binary.BigEndian.PutUint16(tcp[2:], port)
	binary.BigEndian.PutUint32(tcp[4:], 1)
	tcp[12], tcp[13] = 5<<4, 0x18 // ACK|PSH
	binary.BigEndian.PutUint16(tcp[14:], 65535)
	for i := range n {
		f[54+i] = byte(i*7 + 1)
	}
	pseudo := append(append([]byte(nil), ip[12:20]...), 0, 6, byte((20+n)>>8), byte(20+n))
	binary.BigEndian.PutUint16(tcp[16:], uint16(checksum(pseudo, 0)))
	return f
}

// checksum is the ones' complement sum of b (RFC 1071), folded, not
// complemented, added to sum.
func checksum(b []byte, sum uint32) uint16 {
	for i := 0; i+1 < len(b); i += 2 {
		sum += uint32(binary.BigEndian.Uint16(b[i:]))
	}
	if len(b)%2 == 1 {
		sum += uint32(b[len(b)-1]) << 8
	}
	for sum > 0xffff {
		sum = sum&0xffff + sum>>16
	}
	return uint16(sum)
}

// isTCPPort says whether f is an IPv4 TCP frame to port.
func isTCPPort(f []byte, port uint16) bool {
	return len(f) >= 54 && binary.BigEndian.Uint16(f[12:]) == 0x0800 && f[23] == 6 && binary.BigEndian.Uint16(f[36:]) == port
}
