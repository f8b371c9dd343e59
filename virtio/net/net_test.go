package net

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	stdnet "net"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"ember/internal/testlog"
	"ember/memory"
	"ember/virtio"
	"ember/virtio/virtiotest"
)

// wait bounds every wait for the device: long enough for a loaded machine,
// short enough to fail a stuck test.
const wait = 10 * time.Second

// quiet is how long a test watches for something that must not happen.
const quiet = 50 * time.Millisecond

// Guest RAM of the rig: one region per queue, since a virtiotest.Driver
// allocates buffers from the rest of the region holding its rings.
const (
	rxBase     = 0x1000
	txBase     = 32 << 20
	regionSize = 16 << 20
)

// base is what every driver of these tests accepts: VERSION_1 and
// INDIRECT_DESC (EVENT_IDX per rig).
const base = virtio.FeatureVersion1 | virtio.FeatureIndirectDesc

// offloads is every offload feature: what a Linux guest accepts.
const offloads = FeatureCsum | FeatureGuestCsum | FeatureGuestTSO4 | FeatureGuestTSO6 | FeatureGuestECN |
	FeatureHostTSO4 | FeatureHostTSO6 | FeatureHostECN

// rig is a device on a socketpair backend, activated with both queues, which
// two virtiotest.Drivers play; peer is the network's end of the pair.
type rig struct {
	t      *testing.T
	mem    *memory.Guest
	dev    *Device
	fake   *fakeBackend
	peer   *os.File
	rx, tx *virtiotest.Driver
	more   []*virtiotest.Driver // queues 2 and on: the other pairs' and the control queue (newMQRig)
	peers  []*os.File           // every pair's network end, peer the first's (newMQRig)
	irq    []chan struct{}      // one pending interrupt per queue, as a line would hold it
	logs   testlog.Records
}

// fakeBackend is a FileBackend that records the offloads the device sets.
type fakeBackend struct {
	*FileBackend
	offload atomic.Int64
}

func (b *fakeBackend) SetOffload(flags int) error { b.offload.Store(int64(flags)); return nil }

// socketPair returns the device's and the network's ends of a
// SOCK_SEQPACKET pair, non-blocking.
func socketPair(t testing.TB) (*FileBackend, *os.File) {
	t.Helper()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	b, err := NewFileBackend(os.NewFile(uintptr(fds[0]), "device"))
	if err != nil {
		t.Fatal(err)
	}
	peer := os.NewFile(uintptr(fds[1]), "peer")
	t.Cleanup(func() { peer.Close() })
	return b, peer
}

// newRig activates a device with features (base is added) on queues of
// QueueSize, with EVENT_IDX if eventIdx.
func newRig(t *testing.T, features uint64, eventIdx bool) *rig {
	t.Helper()
	r := newInactiveRig(t)
	r.activate(features, eventIdx)
	return r
}

// newInactiveRig builds the device on a socketpair, and guest RAM, but no
// queues.
func newInactiveRig(t *testing.T) *rig {
	t.Helper()
	b, peer := socketPair(t)
	fake := &fakeBackend{FileBackend: b}
	fake.offload.Store(-1)
	var backend Backend = fake // served on the device's thread
	if onGoroutines {
		backend = struct{ Backend }{fake} // an interface only: a goroutine per queue
	}
	r := newRigWith(t, Config{Backend: backend})
	r.fake, r.peer = fake, peer
	return r
}

// onGoroutines makes newInactiveRig hide the FileBackend behind the Backend
// interface, which the device serves on a goroutine per queue instead of
// its thread. TestOnGoroutines sets it.
var onGoroutines bool

// newRigWith builds a device of cfg, with testMAC and a logger the test
// reads, and guest RAM, but no queues.
func newRigWith(t *testing.T, cfg Config) *rig {
	t.Helper()
	mem, err := memory.New([]memory.Range{{GPA: 0, Size: regionSize}, {GPA: txBase, Size: regionSize}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { mem.Close() })
	r := &rig{t: t, mem: mem, logs: make(testlog.Records, 256)}
	cfg.MAC, cfg.Logger = testMAC, slog.New(r.logs)
	if r.dev, err = New(cfg); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.dev.Close() })
	return r
}

var testMAC = stdnet.HardwareAddr{0x52, 0x54, 0x00, 0x12, 0x34, 0x56}

// activate lays out both queues afresh and activates the device.
func (r *rig) activate(features uint64, eventIdx bool) {
	r.t.Helper()
	var err error
	cfg := virtiotest.Config{Size: QueueSize, EventIdx: eventIdx, IndirectDesc: true}
	cfg.Base = rxBase
	if r.rx, err = virtiotest.New(r.mem, cfg); err != nil {
		r.t.Fatal(err)
	}
	cfg.Base = txBase
	if r.tx, err = virtiotest.New(r.mem, cfg); err != nil {
		r.t.Fatal(err)
	}
	if eventIdx {
		features |= virtio.FeatureEventIdx
	}
	if err := r.dev.Activate(r.mem, base|features, []*virtio.Queue{r.rx.Queue, r.tx.Queue}, r.interrupts(2)); err != nil {
		r.t.Fatal(err)
	}
}

// interrupts makes a pending-interrupt channel for each of n queues and
// returns the interrupt callback that fills them.
func (r *rig) interrupts(n int) func(int) {
	r.irq = make([]chan struct{}, n)
	for i := range r.irq {
		r.irq[i] = make(chan struct{}, 1)
	}
	irq := r.irq
	return func(q int) {
		select {
		case irq[q] <- struct{}{}:
		default:
		}
	}
}

// driver returns queue q's driver.
func (r *rig) driver(q int) *virtiotest.Driver {
	switch q {
	case RXQueue:
		return r.rx
	case TXQueue:
		return r.tx
	}
	return r.more[q-2]
}

// add offers a chain on queue q and notifies the device if the driver must,
// as a driver decides (§2.7.10).
func (r *rig) add(q int, bufs ...virtiotest.Buffer) (uint16, []uint64) {
	r.t.Helper()
	d := r.driver(q)
	old := d.AvailIdx()
	head, gpas, err := d.Add(bufs...)
	if err != nil {
		r.t.Fatal(err)
	}
	r.notifyIfNeeded(q, old)
	return head, gpas
}

// addIndirect is add with the chain in an indirect table.
func (r *rig) addIndirect(q int, bufs ...virtiotest.Buffer) uint16 {
	r.t.Helper()
	d := r.driver(q)
	old := d.AvailIdx()
	head, _, err := d.AddIndirect(bufs...)
	if err != nil {
		r.t.Fatal(err)
	}
	r.notifyIfNeeded(q, old)
	return head
}

func (r *rig) notifyIfNeeded(q int, old uint16) {
	r.t.Helper()
	if notify, err := r.driver(q).NeedsNotify(old); err != nil {
		r.t.Fatal(err)
	} else if notify {
		r.dev.Notify(q)
	}
}

// used returns queue q's next used element, waiting for an interrupt when
// there is none yet.
func (r *rig) used(q int) virtiotest.Used {
	r.t.Helper()
	d := r.driver(q)
	deadline := time.After(wait)
	for {
		if u, ok := r.tryUsed(d); ok {
			return u
		}
		if err := d.ArmInterrupt(); err != nil {
			r.t.Fatal(err)
		}
		if u, ok := r.tryUsed(d); ok {
			return u
		}
		select {
		case <-r.irq[q]:
		case <-deadline:
			r.t.Fatalf("queue %d: no used buffer after %v", q, wait)
		}
	}
}

func (r *rig) tryUsed(d *virtiotest.Driver) (virtiotest.Used, bool) {
	r.t.Helper()
	u, ok, err := d.Used()
	if err != nil {
		r.t.Fatal(err)
	}
	return u, ok
}

// noUsed checks that queue q has no used element for a while.
func (r *rig) noUsed(q int) {
	r.t.Helper()
	time.Sleep(quiet)
	if u, ok := r.tryUsed(r.driver(q)); ok {
		r.t.Fatalf("queue %d: unexpected used element %+v", q, u)
	}
}

// peerRead returns the next packet the device sent to the network.
func (r *rig) peerRead() []byte {
	r.t.Helper()
	return readPacket(r.t, r.peer)
}

func readPacket(t testing.TB, f *os.File) []byte {
	t.Helper()
	buf := make([]byte, rxBufferSize)
	if err := f.SetReadDeadline(time.Now().Add(wait)); err != nil {
		t.Fatal(err)
	}
	n, err := f.Read(buf)
	if err != nil {
		t.Fatalf("reading the network's end: %v", err)
	}
	return buf[:n]
}

// peerWrite sends a packet from the network to the device.
func (r *rig) peerWrite(pkt []byte) {
	r.t.Helper()
	if _, err := r.peer.Write(pkt); err != nil {
		r.t.Fatal(err)
	}
}

// hdr encodes a virtio-net header.
func hdr(h header) []byte {
	b := make([]byte, HeaderSize)
	h.encode(b)
	return b
}

// frame returns an Ethernet frame of n bytes (n >= 14): broadcast, from
// testMAC, of a local experimental EtherType, then a pattern seeded by
// seed.
func frame(n int, seed byte) []byte {
	f := make([]byte, n)
	copy(f, []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff})
	copy(f[6:], testMAC)
	binary.BigEndian.PutUint16(f[12:], 0x88b5)
	for i := 14; i < n; i++ {
		f[i] = byte(i) ^ seed
	}
	return f
}

// packet is a header followed by a frame.
func packet(h header, f []byte) []byte { return append(hdr(h), f...) }

// logged waits for a record at level or above.
func (r *rig) logged(level slog.Level) slog.Record {
	r.t.Helper()
	rec, ok := r.logs.Next(level, wait)
	if !ok {
		r.t.Fatalf("nothing logged at %v after %v", level, wait)
	}
	return rec
}

// TestFeaturesAndQueues: the device type, the feature bits offered and the
// two queues.
func TestFeaturesAndQueues(t *testing.T) {
	r := newInactiveRig(t)
	if r.dev.Type() != virtio.IDNet {
		t.Errorf("type %d", r.dev.Type())
	}
	want := uint64(1<<0 | 1<<1 | 1<<5 | 1<<7 | 1<<8 | 1<<9 | 1<<11 | 1<<12 | 1<<13 | 1<<15 | 1<<16)
	if got := r.dev.Features(); got != want {
		t.Errorf("features %#x, want %#x", got, want)
	}
	if got := r.dev.Features(); got&(virtio.FeatureVersion1|virtio.FeatureEventIdx|virtio.FeatureIndirectDesc|1<<17|1<<22) != 0 {
		t.Errorf("features %#x include transport bits, the control queue or MQ", got)
	}
	if got := r.dev.QueueSizes(); len(got) != 2 || got[0] != 256 || got[1] != 256 {
		t.Errorf("queue sizes %v", got)
	}
}

// TestConfigSpace: the MAC address, the link status and one queue pair, as
// a driver reads them whole or field by field; writes change nothing.
func TestConfigSpace(t *testing.T) {
	r := newInactiveRig(t)
	want := append(append([]byte(nil), testMAC...), 1, 0, 1, 0, 0, 0)
	for _, tt := range []struct {
		name      string
		off, size uint64
		want      []byte
	}{
		{"whole", 0, 12, want},
		{"mac", 0, 6, testMAC},
		{"status", 6, 2, []byte{1, 0}},
		{"max_virtqueue_pairs", 8, 2, []byte{1, 0}},
		{"mtu (not offered)", 10, 2, []byte{0, 0}},
		{"one mac byte", 3, 1, testMAC[3:4]},
		{"past the end", 12, 4, []byte{0, 0, 0, 0}},
		{"across the end", 10, 4, []byte{0, 0, 0, 0}},
		{"far away", 1 << 40, 4, []byte{0, 0, 0, 0}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got := bytes.Repeat([]byte{0xee}, int(tt.size))
			r.dev.ReadConfig(tt.off, got)
			if !bytes.Equal(got, tt.want) {
				t.Errorf("read %d at %d: % x, want % x", tt.size, tt.off, got, tt.want)
			}
		})
	}
	r.dev.WriteConfig(0, []byte{1, 2, 3, 4, 5, 6, 0, 0})
	got := make([]byte, 12)
	r.dev.ReadConfig(0, got)
	if !bytes.Equal(got, want) {
		t.Errorf("after a write: % x", got)
	}
}

// TestNew: configurations New refuses, and the MAC address it makes up.
func TestNew(t *testing.T) {
	b, _ := socketPair(t)
	t.Cleanup(func() { b.Close() })
	for _, tt := range []struct {
		name string
		cfg  Config
	}{
		{"no backend", Config{}},
		{"both a TAP and a backend", Config{TAP: "ember%d", Backend: b}},
		{"MAC too short", Config{Backend: b, MAC: stdnet.HardwareAddr{0x52, 0x54}}},
		{"multicast MAC", Config{Backend: b, MAC: stdnet.HardwareAddr{0x01, 0, 0x5e, 0, 0, 1}}},
		{"zero MAC", Config{Backend: b, MAC: make(stdnet.HardwareAddr, 6)}},
		{"backend without deadlines", Config{Backend: noDeadlines{b}}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if d, err := New(tt.cfg); err == nil {
				d.Close()
				t.Fatal("New succeeded")
			} else {
				t.Log(err)
			}
		})
	}
	d, err := New(Config{Backend: b})
	if err != nil {
		t.Fatal(err)
	}
	mac := d.MAC()
	if len(mac) != 6 || mac[0] != 0x52 || mac[1] != 0x54 || mac[2] != 0 || mac[0]&1 != 0 || mac[0]&2 == 0 {
		t.Errorf("made-up MAC %v is not 52:54:00:xx:xx:xx, unicast, locally administered", mac)
	}
	if err := d.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	if err := d.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

// noDeadlines is a backend that cannot be interrupted.
type noDeadlines struct{ Backend }

func (noDeadlines) SetDeadline(time.Time) error { return os.ErrNoDeadline }

// TestNewFileBackendNeedsPollable: a regular file cannot be waited on, so
// it cannot be a backend.
func TestNewFileBackendNeedsPollable(t *testing.T) {
	f, err := os.CreateTemp(t.TempDir(), "not-a-socket")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := NewFileBackend(f); err == nil {
		t.Fatal("a regular file was accepted")
	}
}

// TestActivate: what Activate refuses, and the receive offloads it passes
// to the backend for what the driver accepted.
func TestActivate(t *testing.T) {
	r := newInactiveRig(t)
	mem := r.mem
	noop := func(int) {}
	q := func() *virtio.Queue { return &virtio.Queue{} }
	if err := r.dev.Activate(mem, base, []*virtio.Queue{q()}, noop); err == nil {
		t.Error("activated with one queue")
	}
	if err := r.dev.Activate(mem, offloads, []*virtio.Queue{nil, nil}, noop); err == nil {
		t.Error("activated without VERSION_1")
	}
	if err := r.dev.Activate(mem, base, []*virtio.Queue{nil, nil}, noop); err != nil {
		t.Fatalf("activating with both queues disabled: %v", err)
	}
	if err := r.dev.Activate(mem, base, []*virtio.Queue{nil, nil}, noop); err == nil {
		t.Error("activated twice without a reset")
	}
	r.dev.Notify(0) // disabled queues: nothing to wake
	r.dev.Notify(7)
	r.dev.Reset()
	r.dev.Reset()

	for _, tt := range []struct {
		name     string
		features uint64
		want     int
	}{
		{"none", 0, 0},
		{"host offloads only", FeatureCsum | FeatureHostTSO4 | FeatureHostTSO6 | FeatureHostECN, 0},
		{"guest checksum", FeatureGuestCsum, TunCsum},
		{"all of Linux's", offloads | FeatureMrgRxbuf, TunCsum | TunTSO4 | TunTSO6 | TunTSOECN},
		{"TSO4 only", FeatureGuestCsum | FeatureGuestTSO4, TunCsum | TunTSO4},
		{"TSO without checksum (a driver breaking the rules)", FeatureGuestTSO4 | FeatureGuestTSO6, 0},
		{"ECN without TSO (ditto)", FeatureGuestCsum | FeatureGuestECN, TunCsum},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r.fake.offload.Store(-1)
			if err := r.dev.Activate(mem, base|tt.features, []*virtio.Queue{nil, nil}, noop); err != nil {
				t.Fatal(err)
			}
			defer r.dev.Reset()
			if got := int(r.fake.offload.Load()); got != tt.want {
				t.Errorf("TUNSETOFFLOAD %#x, want %#x", got, tt.want)
			}
		})
	}
	r.dev.Close()
	if err := r.dev.Activate(mem, base, []*virtio.Queue{nil, nil}, noop); err == nil {
		t.Error("activated after Close")
	}
}

// TestTransmit: a frame the driver sends reaches the network with its
// header, whatever the shape of its chain, and the chain comes back with
// nothing written and an interrupt.
func TestTransmit(t *testing.T) {
	rd := virtiotest.Readable
	csum := header{flags: hdrNeedsCsum, csumStart: 34, csumOffset: 16}
	tso := header{flags: hdrNeedsCsum, gsoType: gsoTCPv4, hdrLen: 54, gsoSize: 1448, csumStart: 34, csumOffset: 16}
	for _, tt := range []struct {
		name     string
		eventIdx bool
		h        header
		frameLen int
		chain    func(h, f []byte) []virtiotest.Buffer
		indirect bool
		wantHdr  header // the header the network sees
	}{
		{name: "one buffer", h: header{}, frameLen: 60,
			chain: func(h, f []byte) []virtiotest.Buffer { return []virtiotest.Buffer{rd(append(h, f...))} }},
		{name: "header and frame apart, EVENT_IDX", eventIdx: true, frameLen: 1514},
		{name: "header split across buffers", frameLen: 100,
			chain: func(h, f []byte) []virtiotest.Buffer {
				return []virtiotest.Buffer{rd(h[:5]), rd(append(h[5:], f[:3]...)), rd(f[3:50]), rd(f[50:])}
			}},
		{name: "indirect", frameLen: 1514, indirect: true},
		{name: "many small buffers", frameLen: 2000,
			chain: func(h, f []byte) []virtiotest.Buffer {
				bufs := []virtiotest.Buffer{rd(h)}
				for i := 0; i < len(f); i += 16 {
					bufs = append(bufs, rd(f[i:min(i+16, len(f))]))
				}
				return bufs
			}, indirect: true},
		{name: "checksum offload", h: csum, frameLen: 100, wantHdr: csum},
		{name: "TSO4", h: tso, frameLen: 30000, wantHdr: tso},
		{name: "TSO6 with ECN", h: header{flags: hdrNeedsCsum, gsoType: gsoTCPv6 | gsoECN, hdrLen: 74, gsoSize: 1428, csumStart: 54, csumOffset: 16}, frameLen: 64000,
			wantHdr: header{flags: hdrNeedsCsum, gsoType: gsoTCPv6 | gsoECN, hdrLen: 74, gsoSize: 1428, csumStart: 54, csumOffset: 16}},
		{name: "largest frame", frameLen: MaxFrameSize},
		{name: "unknown flags and num_buffers cleared", h: header{flags: 0xff, numBuffers: 7, csumStart: 14}, frameLen: 64,
			wantHdr: header{flags: hdrNeedsCsum, csumStart: 14}},
		{name: "gso_size without GSO cleared", h: header{gsoSize: 1000}, frameLen: 64},
		{name: "hdr_len past the frame cleared", h: header{hdrLen: 200}, frameLen: 64},
		{name: "hdr_len inside the Ethernet header cleared", h: header{hdrLen: 5}, frameLen: 64},
		{name: "hdr_len kept", h: header{hdrLen: 42}, frameLen: 64, wantHdr: header{hdrLen: 42}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := newRig(t, offloads, tt.eventIdx)
			h, f := hdr(tt.h), frame(tt.frameLen, 1)
			bufs := []virtiotest.Buffer{rd(h), rd(f)}
			if tt.chain != nil {
				bufs = tt.chain(h, f)
			}
			var head uint16
			if tt.indirect {
				head = r.addIndirect(TXQueue, bufs...)
			} else {
				head, _ = r.add(TXQueue, bufs...)
			}
			got := r.peerRead()
			if want := packet(tt.wantHdr, f); !bytes.Equal(got, want) {
				t.Errorf("the network got %d bytes, header % x; want %d, header % x", len(got), got[:min(len(got), HeaderSize)], len(want), want[:HeaderSize])
			}
			if u := r.used(TXQueue); u.Head != head || u.Len != 0 {
				t.Errorf("used %+v, want head %d length 0", u, head)
			}
			if s := r.dev.Stats(); s.TXPackets != 1 || s.TXBytes != uint64(tt.frameLen) || s.TXDropped != 0 {
				t.Errorf("stats %+v", s)
			}
		})
	}
}

// TestTransmitDropsMalformed: a chain a driver must not send is returned
// with nothing written, logged and counted, nothing reaches the network,
// and the next frame goes out.
func TestTransmitDropsMalformed(t *testing.T) {
	rd, wr := virtiotest.Readable, virtiotest.Writable
	f := frame(100, 2)
	one := func(h header, f []byte) []virtiotest.Buffer { return []virtiotest.Buffer{rd(hdr(h)), rd(f)} }
	for _, tt := range []struct {
		name     string
		features uint64
		bufs     []virtiotest.Buffer
	}{
		{"device-writable buffer", offloads, []virtiotest.Buffer{rd(hdr(header{})), rd(f), wr(16)}},
		{"only a device-writable buffer", offloads, []virtiotest.Buffer{wr(128)}},
		{"shorter than the header", offloads, []virtiotest.Buffer{rd(make([]byte, 8))}},
		{"header only", offloads, []virtiotest.Buffer{rd(hdr(header{}))}},
		{"frame shorter than an Ethernet header", offloads, one(header{}, f[:13])},
		{"frame too long", offloads, one(header{}, frame(MaxFrameSize+1, 0))},
		{"checksum offload not negotiated", 0, one(header{flags: hdrNeedsCsum, csumStart: 34, csumOffset: 16}, f)},
		{"checksum past the frame", offloads, one(header{flags: hdrNeedsCsum, csumStart: 90, csumOffset: 16}, f)},
		{"checksum in the Ethernet header", offloads, one(header{flags: hdrNeedsCsum, csumStart: 2, csumOffset: 2}, f)},
		{"TSO4 not negotiated", FeatureCsum, one(header{flags: hdrNeedsCsum, gsoType: gsoTCPv4, gsoSize: 1000, csumStart: 34, csumOffset: 16}, f)},
		{"TSO6 not negotiated", FeatureCsum | FeatureHostTSO4, one(header{flags: hdrNeedsCsum, gsoType: gsoTCPv6, gsoSize: 1000, csumStart: 54, csumOffset: 16}, f)},
		{"ECN not negotiated", FeatureCsum | FeatureHostTSO4, one(header{flags: hdrNeedsCsum, gsoType: gsoTCPv4 | gsoECN, gsoSize: 1000, csumStart: 34, csumOffset: 16}, f)},
		{"ECN without a GSO type", offloads, one(header{gsoType: gsoECN}, f)},
		{"UDP fragmentation (not offered)", offloads, one(header{flags: hdrNeedsCsum, gsoType: gsoUDP, gsoSize: 1000, csumStart: 34, csumOffset: 6}, f)},
		{"unknown GSO type", offloads, one(header{flags: hdrNeedsCsum, gsoType: 0x42, gsoSize: 1000, csumStart: 34, csumOffset: 16}, f)},
		{"GSO without NEEDS_CSUM", offloads, one(header{gsoType: gsoTCPv4, gsoSize: 1000}, f)},
		{"GSO with a segment size of 0", offloads, one(header{flags: hdrNeedsCsum, gsoType: gsoTCPv4, csumStart: 34, csumOffset: 16}, f)},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := newRig(t, tt.features, true)
			head, _ := r.add(TXQueue, tt.bufs...)
			if u := r.used(TXQueue); u.Head != head || u.Len != 0 {
				t.Errorf("used %+v, want head %d length 0", u, head)
			}
			r.logged(slog.LevelWarn)
			good := frame(60, 3)
			head, _ = r.add(TXQueue, rd(hdr(header{})), rd(good))
			if got := r.peerRead(); !bytes.Equal(got, packet(header{}, good)) {
				t.Errorf("the network got %d bytes, want the next good frame", len(got))
			}
			if u := r.used(TXQueue); u.Head != head {
				t.Errorf("used %+v, want head %d", u, head)
			}
			if s := r.dev.Stats(); s.TXDropped != 1 || s.TXPackets != 1 {
				t.Errorf("stats %+v", s)
			}
		})
	}
}

// TestTransmitBadDescriptorChain: a chain the queue itself refuses (a
// buffer outside RAM) is dropped and the queue goes on.
func TestTransmitBadDescriptorChain(t *testing.T) {
	r := newRig(t, 0, false)
	r.offerOutsideRAM()
	if u := r.used(TXQueue); u.Head != 0 || u.Len != 0 {
		t.Errorf("used %+v", u)
	}
	r.logged(slog.LevelWarn)
	good := frame(60, 4)
	r.add(TXQueue, virtiotest.Readable(hdr(header{})), virtiotest.Readable(good))
	if got := r.peerRead(); !bytes.Equal(got, packet(header{}, good)) {
		t.Error("the next frame did not go out")
	}
}

// offerOutsideRAM offers the driver a transmit chain whose one buffer lies
// outside guest RAM.
func (r *rig) offerOutsideRAM() {
	r.t.Helper()
	if err := r.tx.SetDesc(0, virtiotest.Desc{Addr: 1 << 40, Len: 100}); err != nil {
		r.t.Fatal(err)
	}
	old := r.tx.AvailIdx()
	if err := r.tx.Offer(0); err != nil {
		r.t.Fatal(err)
	}
	r.notifyIfNeeded(TXQueue, old)
}

// rxCase is a receive scenario: the chains the driver posts, the packet
// the network sends, and what the driver must find.
type rxCase struct {
	name     string
	features uint64
	chains   [][]virtiotest.Buffer // posted before the packet arrives
	pkt      []byte                // from the network, header first
	wantLens []uint32              // the used lengths, one per chain, in order
}

// TestReceive: a packet from the network lands in the driver's buffers with
// its header and the used lengths the spec asks for, with and without
// mergeable buffers.
func TestReceive(t *testing.T) {
	wr := virtiotest.Writable
	small := packet(header{}, frame(100, 5))
	mtu := packet(header{}, frame(1514, 6))
	big := packet(header{flags: hdrNeedsCsum, gsoType: gsoTCPv4, hdrLen: 66, gsoSize: 1448, csumStart: 34, csumOffset: 16}, frame(MaxFrameSize, 7))
	chains := func(n int, size uint32) [][]virtiotest.Buffer {
		c := make([][]virtiotest.Buffer, n)
		for i := range c {
			c[i] = []virtiotest.Buffer{wr(size)}
		}
		return c
	}
	// Linux's "big packets" chain: the header, then pages.
	bigChain := []virtiotest.Buffer{wr(HeaderSize)}
	for range 17 {
		bigChain = append(bigChain, wr(4096))
	}
	for _, tt := range []rxCase{
		{name: "small packet, one buffer", chains: chains(1, 1526), pkt: small, wantLens: []uint32{112}},
		{name: "header and data buffers", chains: [][]virtiotest.Buffer{{wr(HeaderSize), wr(1514)}}, pkt: mtu, wantLens: []uint32{1526}},
		{name: "exactly fits", chains: chains(1, 1526), pkt: mtu, wantLens: []uint32{1526}},
		{name: "TSO packet in a big-packets chain", features: offloads, chains: [][]virtiotest.Buffer{bigChain}, pkt: big, wantLens: []uint32{uint32(len(big))}},
		{name: "mergeable, one buffer", features: FeatureMrgRxbuf, chains: chains(4, 1536), pkt: small, wantLens: []uint32{112}},
		{name: "mergeable, spans two", features: FeatureMrgRxbuf, chains: chains(4, 1000), pkt: mtu, wantLens: []uint32{1000, 526}},
		{name: "mergeable, TSO packet spans seventeen", features: FeatureMrgRxbuf | offloads, chains: chains(20, 4096), pkt: big,
			wantLens: append(repeat(16, 4096), uint32(len(big)-16*4096))},
		{name: "mergeable, chains of several buffers", features: FeatureMrgRxbuf, chains: [][]virtiotest.Buffer{{wr(HeaderSize), wr(500)}, {wr(7), wr(800)}, {wr(4000)}},
			pkt: mtu, wantLens: []uint32{512, 807, 1526 - 512 - 807}},
	} {
		t.Run(tt.name, func(t *testing.T) { runReceive(t, tt) })
	}
}

func repeat(n int, v uint32) []uint32 {
	s := make([]uint32, n)
	for i := range s {
		s[i] = v
	}
	return s
}

// runReceive posts tt's chains, sends its packet and checks what the driver
// finds: the used elements in order, and the bytes, reassembled across
// them, equal to the packet with num_buffers set.
func runReceive(t *testing.T, tt rxCase) {
	r := newRig(t, tt.features, true)
	type posted struct {
		head uint16
		bufs []virtiotest.Buffer
		gpas []uint64
	}
	var all []posted
	for _, c := range tt.chains {
		head, gpas := r.add(RXQueue, c...)
		all = append(all, posted{head, c, gpas})
	}
	r.peerWrite(tt.pkt)
	var got []byte
	for i, want := range tt.wantLens {
		u := r.used(RXQueue)
		if u.Head != all[i].head || u.Len != want {
			t.Fatalf("used element %d: %+v, want head %d length %d", i, u, all[i].head, want)
		}
		got = append(got, readChain(t, r, all[i].bufs, all[i].gpas, u.Len)...)
	}
	r.noUsed(RXQueue)
	want := append([]byte(nil), tt.pkt...)
	binary.LittleEndian.PutUint16(want[hdrNumBuffers:], uint16(len(tt.wantLens)))
	if !bytes.Equal(got, want) {
		t.Errorf("the driver got %d bytes, header % x; want %d, header % x", len(got), got[:min(len(got), HeaderSize)], len(want), want[:HeaderSize])
	}
	if s := r.dev.Stats(); s.RXPackets != 1 || s.RXBytes != uint64(len(tt.pkt)-HeaderSize) || s.RXDropped != 0 {
		t.Errorf("stats %+v", s)
	}
}

// readChain returns the first n bytes of a chain's buffers.
func readChain(t *testing.T, r *rig, bufs []virtiotest.Buffer, gpas []uint64, n uint32) []byte {
	t.Helper()
	var out []byte
	for i, b := range bufs {
		k := min(b.Len, n-uint32(len(out)))
		data, err := r.rx.Read(gpas[i], int(k))
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, data...)
	}
	return out
}

// TestReceiveHeaders: the device passes on the offloads the driver
// accepted, cleans the flags it must not see, and drops the packets it
// cannot take, without using a buffer for them.
func TestReceiveHeaders(t *testing.T) {
	f := frame(200, 8)
	tso4 := header{flags: hdrNeedsCsum, gsoType: gsoTCPv4, hdrLen: 54, gsoSize: 100, csumStart: 34, csumOffset: 16}
	for _, tt := range []struct {
		name     string
		features uint64
		h        header
		drop     bool
		want     header
	}{
		{"plain", 0, header{}, false, header{}},
		{"DATA_VALID with GUEST_CSUM", FeatureGuestCsum, header{flags: hdrDataValid}, false, header{flags: hdrDataValid}},
		{"DATA_VALID without GUEST_CSUM cleared", 0, header{flags: hdrDataValid}, false, header{}},
		{"unknown flags cleared", FeatureGuestCsum, header{flags: 0xf0 | hdrDataValid}, false, header{flags: hdrDataValid}},
		{"NEEDS_CSUM with GUEST_CSUM", FeatureGuestCsum, header{flags: hdrNeedsCsum, csumStart: 34, csumOffset: 16}, false, header{flags: hdrNeedsCsum, csumStart: 34, csumOffset: 16}},
		{"NEEDS_CSUM without GUEST_CSUM", 0, header{flags: hdrNeedsCsum, csumStart: 34, csumOffset: 16}, true, header{}},
		{"TSO4 with GUEST_TSO4", offloads, tso4, false, tso4},
		{"TSO4 without GUEST_TSO4", FeatureGuestCsum | FeatureGuestTSO6, tso4, true, header{}},
		{"TSO6 without GUEST_TSO6", FeatureGuestCsum | FeatureGuestTSO4, header{flags: hdrNeedsCsum, gsoType: gsoTCPv6, gsoSize: 100}, true, header{}},
		{"ECN without GUEST_ECN", FeatureGuestCsum | FeatureGuestTSO4, header{flags: hdrNeedsCsum, gsoType: gsoTCPv4 | gsoECN, gsoSize: 100}, true, header{}},
		{"UDP (GUEST_UFO not offered)", offloads, header{flags: hdrNeedsCsum, gsoType: gsoUDP, gsoSize: 100}, true, header{}},
		{"unknown GSO type", offloads, header{gsoType: 9}, true, header{}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := newRig(t, tt.features|FeatureMrgRxbuf, false)
			head, gpas := r.add(RXQueue, virtiotest.Writable(4096))
			r.peerWrite(packet(tt.h, f))
			next := frame(60, 9)
			if tt.drop {
				r.peerWrite(packet(header{}, next))
				tt.want = header{}
			}
			u := r.used(RXQueue)
			got, err := r.rx.Read(gpas[0], int(u.Len))
			if err != nil {
				t.Fatal(err)
			}
			tt.want.numBuffers = 1
			wantFrame := f
			if tt.drop {
				wantFrame = next
			}
			if u.Head != head || !bytes.Equal(got, packet(tt.want, wantFrame)) {
				t.Errorf("used %+v, header % x; want header % x and the %d-byte frame", u, got[:HeaderSize], hdr(tt.want), len(wantFrame))
			}
			if s := r.dev.Stats(); s.RXDropped != map[bool]uint64{false: 0, true: 1}[tt.drop] {
				t.Errorf("stats %+v", s)
			}
		})
	}
}

// TestReceiveDropsWhatCannotFit: a packet longer than a buffer without
// mergeable buffers, or than a whole queue of buffers with them, is
// dropped and its buffers returned empty; malformed receive chains are
// returned empty; the next packet is delivered.
func TestReceiveDropsWhatCannotFit(t *testing.T) {
	wr, rd := virtiotest.Writable, virtiotest.Readable
	mtu := packet(header{}, frame(1514, 10))
	for _, tt := range []struct {
		name     string
		features uint64
		before   [][]virtiotest.Buffer // chains the device returns empty
		dropped  uint64
	}{
		{"buffer too small", 0, [][]virtiotest.Buffer{{wr(1000)}}, 1},
		{"device-readable buffer", 0, [][]virtiotest.Buffer{{rd([]byte{1, 2, 3}), wr(2000)}}, 0},
		{"mergeable buffer shorter than the header", FeatureMrgRxbuf, [][]virtiotest.Buffer{{wr(8)}}, 0},
		{"buffer shorter than the header", 0, [][]virtiotest.Buffer{{wr(HeaderSize - 1)}}, 0},
		{"no writable byte", FeatureMrgRxbuf, [][]virtiotest.Buffer{{wr(0)}}, 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := newRig(t, tt.features, false)
			var heads []uint16
			for _, c := range tt.before {
				h, _ := r.add(RXQueue, c...)
				heads = append(heads, h)
			}
			head, gpas := r.add(RXQueue, wr(2000))
			r.peerWrite(mtu)
			if tt.dropped > 0 {
				r.peerWrite(mtu)
			}
			for _, h := range heads {
				if u := r.used(RXQueue); u.Head != h || u.Len != 0 {
					t.Fatalf("used %+v, want head %d returned empty", u, h)
				}
			}
			r.logged(slog.LevelWarn)
			u := r.used(RXQueue)
			got, _ := r.rx.Read(gpas[0], int(u.Len))
			want := append([]byte(nil), mtu...)
			want[hdrNumBuffers] = 1
			if u.Head != head || !bytes.Equal(got, want) {
				t.Errorf("used %+v; want head %d with the packet", u, head)
			}
			if s := r.dev.Stats(); s.RXDropped != tt.dropped || s.RXPackets != 1 {
				t.Errorf("stats %+v", s)
			}
		})
	}
}

// TestReceiveQueueOfTinyBuffers: mergeable buffers so small that a whole
// queue of them cannot hold a packet: the device returns them all empty
// rather than wait for buffers the driver has no descriptors left to post.
func TestReceiveQueueOfTinyBuffers(t *testing.T) {
	r := newRig(t, FeatureMrgRxbuf, true)
	for range QueueSize {
		r.add(RXQueue, virtiotest.Writable(HeaderSize))
	}
	r.peerWrite(packet(header{}, frame(4000, 11)))
	for i := range QueueSize {
		if u := r.used(RXQueue); u.Len != 0 {
			t.Fatalf("used element %d: %+v, want empty", i, u)
		}
	}
	if s := r.dev.Stats(); s.RXDropped != 1 {
		t.Errorf("stats %+v", s)
	}
	_, gpas := r.add(RXQueue, virtiotest.Writable(2048))
	small := packet(header{}, frame(64, 12))
	r.peerWrite(small)
	u := r.used(RXQueue)
	got, _ := r.rx.Read(gpas[0], int(u.Len))
	small[hdrNumBuffers] = 1
	if !bytes.Equal(got, small) {
		t.Error("the next packet was not delivered")
	}
}

// TestReceiveWaitsForBuffers: a packet that arrives before the driver has
// posted (enough) buffers is kept, not dropped, and delivered when it does,
// with and without EVENT_IDX; packets queued behind it follow in order.
func TestReceiveWaitsForBuffers(t *testing.T) {
	wr := virtiotest.Writable
	for _, tt := range []struct {
		name     string
		features uint64
		eventIdx bool
		first    [][]virtiotest.Buffer // posted before the packet: not enough
		then     [][]virtiotest.Buffer // posted after
		lens     []uint32
	}{
		{"no buffer", 0, false, nil, [][]virtiotest.Buffer{{wr(2048)}}, []uint32{1526}},
		{"no buffer, EVENT_IDX", 0, true, nil, [][]virtiotest.Buffer{{wr(2048)}}, []uint32{1526}},
		{"mergeable, one of three buffers", FeatureMrgRxbuf, true, [][]virtiotest.Buffer{{wr(600)}}, [][]virtiotest.Buffer{{wr(600)}, {wr(600)}}, []uint32{600, 600, 326}},
		{"mergeable, one of three buffers, no EVENT_IDX", FeatureMrgRxbuf, false, [][]virtiotest.Buffer{{wr(600)}}, [][]virtiotest.Buffer{{wr(600)}, {wr(600)}}, []uint32{600, 600, 326}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := newRig(t, tt.features, tt.eventIdx)
			for _, c := range tt.first {
				r.add(RXQueue, c...)
			}
			pkt := packet(header{}, frame(1514, 13))
			r.peerWrite(pkt)
			r.noUsed(RXQueue)
			for _, c := range tt.then {
				r.add(RXQueue, c...)
			}
			for i, want := range tt.lens {
				if u := r.used(RXQueue); u.Len != want {
					t.Fatalf("used element %d: %+v, want length %d", i, u, want)
				}
			}
			if s := r.dev.Stats(); s.RXPackets != 1 || s.RXDropped != 0 {
				t.Errorf("stats %+v", s)
			}
		})
	}

	t.Run("a burst, one buffer at a time", func(t *testing.T) {
		r := newRig(t, 0, true)
		const n = 20
		for i := range n {
			r.peerWrite(packet(header{}, frame(100+i, byte(i))))
		}
		for i := range n {
			_, gpas := r.add(RXQueue, wr(2048))
			u := r.used(RXQueue)
			got, _ := r.rx.Read(gpas[0], int(u.Len))
			want := packet(header{numBuffers: 1}, frame(100+i, byte(i)))
			if !bytes.Equal(got, want) {
				t.Fatalf("packet %d: got %d bytes, want %d", i, len(got), len(want))
			}
		}
		if s := r.dev.Stats(); s.RXPackets != n || s.RXDropped != 0 {
			t.Errorf("stats %+v", s)
		}
	})
}

// TestReceiveDropsRunts: a packet shorter than the header and an Ethernet
// header, or longer than MaxFrameSize, is dropped.
func TestReceiveDropsRunts(t *testing.T) {
	r := newRig(t, FeatureMrgRxbuf, true)
	_, gpas := r.add(RXQueue, virtiotest.Writable(4096))
	r.peerWrite(make([]byte, HeaderSize+13))
	r.peerWrite(packet(header{}, frame(MaxFrameSize+1, 0)))
	good := packet(header{}, frame(64, 14))
	r.peerWrite(good)
	u := r.used(RXQueue)
	got, _ := r.rx.Read(gpas[0], int(u.Len))
	good[hdrNumBuffers] = 1
	if !bytes.Equal(got, good) {
		t.Error("the good packet was not the one delivered")
	}
	if s := r.dev.Stats(); s.RXDropped != 2 {
		t.Errorf("stats %+v", s)
	}
}

// TestBrokenQueue: a driver that breaks a ring (avail->idx far ahead) stops
// that queue until a reset; the other goes on, and Reset returns.
func TestBrokenQueue(t *testing.T) {
	r := newRig(t, 0, false)
	if err := r.tx.SetAvailIdx(1000); err != nil {
		t.Fatal(err)
	}
	r.dev.Notify(TXQueue)
	if rec := r.logged(slog.LevelError); rec.Message == "" {
		t.Error("no message")
	}
	_, gpas := r.add(RXQueue, virtiotest.Writable(2048))
	pkt := packet(header{}, frame(64, 15))
	r.peerWrite(pkt)
	u := r.used(RXQueue)
	got, _ := r.rx.Read(gpas[0], int(u.Len))
	pkt[hdrNumBuffers] = 1
	if !bytes.Equal(got, pkt) {
		t.Error("receive stopped with the transmit queue")
	}
	r.dev.Reset()
}

// TestBackendEOF: a backend whose peer has gone stops receiving, without
// spinning, until a reset.
func TestBackendEOF(t *testing.T) {
	r := newRig(t, 0, false)
	r.peer.Close()
	r.logged(slog.LevelError)
	r.dev.Reset()
}

// TestResetAndReactivate: a device reset while its receiver waits for
// buffers with a packet in hand, or in the backend, comes back with fresh
// queues and works.
func TestResetAndReactivate(t *testing.T) {
	r := newRig(t, FeatureMrgRxbuf, true)
	r.peerWrite(packet(header{}, frame(64, 16))) // kept, waiting for buffers
	r.waitTaken()
	r.dev.Reset()
	r.activate(FeatureMrgRxbuf, false)
	_, gpas := r.add(RXQueue, virtiotest.Writable(2048))
	pkt := packet(header{}, frame(80, 17))
	r.peerWrite(pkt)
	u := r.used(RXQueue)
	got, _ := r.rx.Read(gpas[0], int(u.Len))
	pkt[hdrNumBuffers] = 1
	if !bytes.Equal(got, pkt) {
		t.Errorf("after the reset the driver got %d bytes, want the new %d-byte packet", len(got), len(pkt))
	}
	f := frame(70, 18)
	r.add(TXQueue, virtiotest.Readable(hdr(header{})), virtiotest.Readable(f))
	if got := r.peerRead(); !bytes.Equal(got, packet(header{}, f)) {
		t.Error("transmit after the reset")
	}
}

// TestBlockedTransmitReset: Reset stops a transmitter blocked on a backend
// that cannot take its packet (the peer does not read).
func TestBlockedTransmitReset(t *testing.T) {
	r := newRig(t, 0, false)
	f := frame(60000, 19)
	for range 40 { // more than the socket buffers hold
		r.add(TXQueue, virtiotest.Readable(hdr(header{})), virtiotest.Readable(f))
	}
	time.Sleep(quiet)
	done := make(chan struct{})
	go func() { r.dev.Reset(); close(done) }()
	select {
	case <-done:
	case <-time.After(wait):
		t.Fatal("Reset did not return")
	}
}

// TestWritePacketGathers: more buffers than one writev takes still make one
// packet.
func TestWritePacketGathers(t *testing.T) {
	b, peer := socketPair(t)
	defer b.Close()
	var bufs [][]byte
	var want []byte
	for i := range 3000 {
		bufs = append(bufs, []byte{byte(i), byte(i >> 8)})
		want = append(want, byte(i), byte(i>>8))
	}
	if n, err := b.WritePacket(bufs); err != nil || n != len(want) {
		t.Fatalf("WritePacket: %d, %v", n, err)
	}
	if got := readPacket(t, peer); !bytes.Equal(got, want) {
		t.Errorf("got %d bytes, want %d", len(got), len(want))
	}
}

// TestBackendDeadline: a past deadline stops a blocked ReadPacket with
// os.ErrDeadlineExceeded, and clearing it lets reads go on.
func TestBackendDeadline(t *testing.T) {
	b, peer := socketPair(t)
	defer b.Close()
	errc := make(chan error, 1)
	go func() {
		_, err := b.ReadPacket(make([]byte, 64))
		errc <- err
	}()
	time.Sleep(quiet)
	b.SetDeadline(time.Unix(1, 0))
	if err := <-errc; !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("ReadPacket: %v, want a deadline error", err)
	}
	b.SetDeadline(time.Time{})
	peer.Write([]byte("hello"))
	p := make([]byte, 64)
	if n, err := b.ReadPacket(p); err != nil || string(p[:n]) != "hello" {
		t.Fatalf("ReadPacket after clearing the deadline: %q, %v", p[:n], err)
	}
}

// waitTaken waits until the device has read every packet the network sent.
func (r *rig) waitTaken() {
	r.t.Helper()
	deadline := time.Now().Add(wait)
	for {
		var pending int
		err := r.fake.control(func(fd int) (err error) {
			pending, err = unix.IoctlGetInt(fd, unix.SIOCINQ)
			return err
		})
		if err != nil {
			r.t.Fatal(err)
		}
		if pending == 0 {
			return
		}
		if time.Now().After(deadline) {
			r.t.Fatalf("the device left %d bytes unread", pending)
		}
		time.Sleep(time.Millisecond)
	}
}

// TestInterrupts: the device interrupts the driver for what it put in each
// used ring, and not when the driver asked for no interrupts.
func TestInterrupts(t *testing.T) {
	for _, suppress := range []bool{false, true} {
		r := newRig(t, 0, false)
		if suppress {
			r.rx.SetAvailFlags(virtio.AvailNoInterrupt)
			r.tx.SetAvailFlags(virtio.AvailNoInterrupt)
		}
		r.add(RXQueue, virtiotest.Writable(2048))
		r.peerWrite(packet(header{}, frame(64, 20)))
		r.add(TXQueue, virtiotest.Readable(hdr(header{})), virtiotest.Readable(frame(64, 21)))
		r.peerRead()
		for q := range 2 {
			if suppress {
				r.waitUsedIdx(q, 1)
				select {
				case <-r.irq[q]:
					t.Errorf("queue %d: an interrupt the driver did not want", q)
				case <-time.After(quiet):
				}
				continue
			}
			select {
			case <-r.irq[q]:
			case <-time.After(wait):
				t.Errorf("queue %d: no interrupt", q)
			}
		}
	}
}

// waitUsedIdx waits until queue q's used->idx reaches idx, without
// consuming the element.
func (r *rig) waitUsedIdx(q int, idx uint16) {
	r.t.Helper()
	deadline := time.Now().Add(wait)
	for {
		got, err := r.driver(q).UsedIdx()
		if err != nil {
			r.t.Fatal(err)
		}
		if got == idx {
			return
		}
		if time.Now().After(deadline) {
			r.t.Fatalf("queue %d: used idx %d, want %d", q, got, idx)
		}
		time.Sleep(time.Millisecond)
	}
}

// TestNoGoroutineLeak: devices activated, caught in every wait (receiver in
// the backend, receiver with a packet waiting for buffers, transmitter
// idle), reset, activated again and closed leave no goroutine behind.
func TestNoGoroutineLeak(t *testing.T) {
	before := runtime.NumGoroutine()
	for i := range 20 {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			r := newRig(t, FeatureMrgRxbuf, i%2 == 0)
			r.add(TXQueue, virtiotest.Readable(hdr(header{})), virtiotest.Readable(frame(64, 22)))
			r.peerRead()
			r.dev.Reset()
			r.activate(0, i%2 == 1)
			r.peerWrite(packet(header{}, frame(64, 23)))
			r.waitTaken()
			r.dev.Reset()
			r.activate(offloads, false)
			if err := r.dev.Close(); err != nil {
				t.Fatal(err)
			}
		})
	}
	deadline := time.Now().Add(wait)
	for runtime.NumGoroutine() > before {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			t.Fatalf("%d goroutines, %d before:\n%s", runtime.NumGoroutine(), before, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(time.Millisecond)
	}
}

// gatedBackend is a fakeBackend whose writes after the first wait for the
// test to open the gate, as a slow network would hold them.
type gatedBackend struct {
	Backend // an interface, so the device serves it on goroutines
	writes  atomic.Int32
	gate    chan struct{}
}

func (b *gatedBackend) WritePacket(bufs [][]byte) (int, error) {
	if b.writes.Add(1) > 1 {
		<-b.gate
	}
	return b.Backend.WritePacket(bufs)
}

// TestTransmitInterruptsMidDrain: with EVENT_IDX the driver hears of the
// packets it asked about as soon as they are sent, while later packets of
// the same batch are still on their way — the driver can free and refill
// meanwhile — not once the whole batch is out.
func TestTransmitInterruptsMidDrain(t *testing.T) {
	b, peer := socketPair(t)
	fake := &fakeBackend{FileBackend: b}
	gated := &gatedBackend{Backend: fake, gate: make(chan struct{})}
	var open sync.Once
	openGate := func() { open.Do(func() { close(gated.gate) }) }
	r := newRigWith(t, Config{Backend: gated})
	t.Cleanup(openGate) // runs before the device's Close, which waits for the worker
	r.fake, r.peer = fake, peer
	r.activate(0, true)
	if err := r.tx.SetUsedEvent(0); err != nil { // interrupt once the first is used
		t.Fatal(err)
	}
	// Three packets offered before the device looks: one drain.
	for i := range 3 {
		if _, _, err := r.tx.Add(virtiotest.Readable(hdr(header{})), virtiotest.Readable(frame(64, byte(i)))); err != nil {
			t.Fatal(err)
		}
	}
	r.dev.Notify(TXQueue)
	select {
	case <-r.irq[TXQueue]:
	case <-time.After(wait):
		t.Fatal("no interrupt for the first packet while the second waited")
	}
	if idx, err := r.tx.UsedIdx(); err != nil || idx != 1 {
		t.Errorf("used idx %d (%v) at the interrupt, want 1", idx, err)
	}
	openGate()
	r.waitUsedIdx(TXQueue, 3)
	for range 3 {
		r.peerRead()
	}
}
