package net

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"testing"
	"time"

	"ember/internal/testlog"
	"ember/internal/threadname"
	"ember/memory"
	"ember/virtio"
	"ember/virtio/virtiotest"
)

// mqRegion is the guest RAM each queue's driver of an MQ rig has: its
// rings and its buffers.
const mqRegion = 4 << 20

// newMQRig is a rig whose device has n queue pairs, each on a socketpair
// of its own (no TAP queues to attach: usePairs only counts), served by
// threads threads (0: one a pair), inactive.
func newMQRig(t *testing.T, n, threads int) *rig {
	t.Helper()
	r := newMQRigMem(t, n)
	backends := make([]Backend, n)
	for i := range n {
		var peer *os.File
		backends[i], peer = socketPair(t)
		r.peers = append(r.peers, peer)
	}
	r.peer = r.peers[0]
	var err error
	if r.dev, err = newDevice(testMAC, slog.New(r.logs), backends, nil, true, false, threads); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.dev.Close() })
	return r
}

// newMQRigMem is a rig with guest RAM for n pairs' queues and a control
// queue, and no device yet.
func newMQRigMem(t *testing.T, n int) *rig {
	t.Helper()
	var ranges []memory.Range
	for i := range 2*n + 1 {
		ranges = append(ranges, memory.Range{GPA: uint64(i) * 2 * mqRegion, Size: mqRegion})
	}
	mem, err := memory.New(ranges)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { mem.Close() })
	return &rig{t: t, mem: mem, logs: make(testlog.Records, 256)}
}

// activateMQ lays out every queue of the device (2n+1, the control
// queue's smaller) with EVENT_IDX and activates it with features (base
// added).
func (r *rig) activateMQ(features uint64) {
	r.t.Helper()
	sizes := r.dev.QueueSizes()
	drivers := make([]*virtiotest.Driver, len(sizes))
	queues := make([]*virtio.Queue, len(sizes))
	for i, size := range sizes {
		cfg := virtiotest.Config{Size: size, EventIdx: true, IndirectDesc: true, Base: uint64(i) * 2 * mqRegion}
		var err error
		if drivers[i], err = virtiotest.New(r.mem, cfg); err != nil {
			r.t.Fatal(err)
		}
		queues[i] = drivers[i].Queue
	}
	r.rx, r.tx, r.more = drivers[0], drivers[1], drivers[2:]
	if err := r.dev.Activate(r.mem, base|virtio.FeatureEventIdx|features, queues, r.interrupts(len(sizes))); err != nil {
		r.t.Fatal(err)
	}
}

// control sends one control request on queue q — its readable bytes,
// then a one-byte ack buffer — and returns the ack the device wrote.
func (r *rig) control(q int, req []byte) byte {
	r.t.Helper()
	head, gpas := r.add(q, virtiotest.Readable(req), virtiotest.Writable(1))
	u := r.used(q)
	if u.Head != head || u.Len != 1 {
		r.t.Fatalf("control request %x: used %+v, want head %d with its one ack byte", req, u, head)
	}
	ack, err := r.driver(q).Read(gpas[1], 1)
	if err != nil {
		r.t.Fatal(err)
	}
	return ack[0]
}

// pairsSet is a VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET request for k pairs.
func pairsSet(k uint16) []byte {
	return binary.LittleEndian.AppendUint16([]byte{ctrlClassMQ, ctrlMQVQPairsSet}, k)
}

// TestOnePairOffersNoControlQueue: a device of one pair shows the driver
// what it always did — two queues, no control queue, no MQ, one pair in
// its configuration — and one of several pairs the control queue after
// them.
func TestOnePairOffersNoControlQueue(t *testing.T) {
	for _, tc := range []struct {
		dev   *Device
		sizes []uint16
		mq    bool
	}{
		{newInactiveRig(t).dev, []uint16{QueueSize, QueueSize}, false},
		{newMQRig(t, 3, 0).dev, []uint16{QueueSize, QueueSize, QueueSize, QueueSize, QueueSize, QueueSize, ControlQueueSize}, true},
	} {
		n := len(tc.sizes) / 2
		if got := tc.dev.QueueSizes(); !slices.Equal(got, tc.sizes) {
			t.Errorf("%d pairs: queue sizes %v, want %v", n, got, tc.sizes)
		}
		if got := tc.dev.Features()&(FeatureMQ|FeatureCtrlVQ) != 0; got != tc.mq {
			t.Errorf("%d pairs: offers MQ and CTRL_VQ %v, want %v", n, got, tc.mq)
		}
		cfg := make([]byte, 2)
		tc.dev.ReadConfig(cfgMaxVQPairs, cfg)
		if got := binary.LittleEndian.Uint16(cfg); int(got) != n {
			t.Errorf("%d pairs: max_virtqueue_pairs reads %d", n, got)
		}
	}
}

// TestMultiQueue: with VIRTIO_NET_F_MQ every pair moves its own packets,
// each queue's interrupt is its own, and the control queue takes
// VQ_PAIRS_SET for 1 to n pairs and refuses every other request with
// VIRTIO_NET_ERR — with a thread for each pair and with one for both.
func TestMultiQueue(t *testing.T) {
	for _, threads := range []int{0, 1} {
		t.Run(fmt.Sprintf("threads=%d", threads), func(t *testing.T) { testMultiQueue(t, threads) })
	}
}

func testMultiQueue(t *testing.T, threads int) {
	r := newMQRig(t, 2, threads)
	r.activateMQ(FeatureMQ | FeatureCtrlVQ | FeatureMrgRxbuf)
	if pairs, used := r.dev.QueuePairs(); pairs != 2 || used != 1 {
		t.Errorf("before VQ_PAIRS_SET: %d pairs, %d used; want 2, 1", pairs, used)
	}
	const ctrl = 4
	if ack := r.control(ctrl, pairsSet(2)); ack != ctrlOK {
		t.Fatalf("VQ_PAIRS_SET 2: ack %d", ack)
	}
	if _, used := r.dev.QueuePairs(); used != 2 {
		t.Errorf("after VQ_PAIRS_SET 2: %d pairs used", used)
	}
	for i, peer := range r.peers {
		f := frame(200, byte(i))
		r.add(2*i+TXQueue, virtiotest.Readable(hdr(header{})), virtiotest.Readable(f))
		if got := readPacket(t, peer); !bytes.Equal(got[HeaderSize:], f) {
			t.Errorf("pair %d's network end got %d bytes, not the frame its transmit queue sent", i, len(got))
		}
		r.used(2*i + TXQueue)
		pool := r.postRXOn(2*i+RXQueue, 4, 4096)
		in := frame(300, byte(10+i))
		if _, err := peer.Write(packet(header{}, in)); err != nil {
			t.Fatal(err)
		}
		if _, got := pool.next(t); !bytes.Equal(got, in) {
			t.Errorf("pair %d's receive queue got %d bytes, not the frame its network end sent", i, len(got))
		}
	}
	for _, tc := range []struct {
		name string
		req  []byte
	}{
		{"no pairs", pairsSet(0)},
		{"more pairs than the device has", pairsSet(3)},
		{"the pair count cut short", []byte{ctrlClassMQ, ctrlMQVQPairsSet, 1}},
		{"a class alone", []byte{ctrlClassMQ}},
		{"nothing", []byte{}},
		{"receive filtering, not offered", []byte{0, 0, 1}},
		{"an MQ command not offered (RSS)", []byte{ctrlClassMQ, 1, 0, 0}},
	} {
		req := tc.req
		if len(req) == 0 {
			req = []byte{0} // a chain needs a readable buffer; a zero class with no command
		}
		if ack := r.control(ctrl, req); ack != ctrlErr {
			t.Errorf("%s (%x): ack %d, want VIRTIO_NET_ERR", tc.name, req, ack)
		}
	}
	if _, used := r.dev.QueuePairs(); used != 2 {
		t.Errorf("refused requests changed the pairs used to %d", used)
	}
	if ack := r.control(ctrl, pairsSet(1)); ack != ctrlOK {
		t.Errorf("VQ_PAIRS_SET 1: ack %d", ack)
	}
	if _, used := r.dev.QueuePairs(); used != 1 {
		t.Errorf("after VQ_PAIRS_SET 1: %d pairs used", used)
	}
}

// TestPairsShareThreads: Config.Threads threads serve the pairs — one
// all three, or one each — and on a thread it shares, a pair whose packet
// waits for receive buffers holds up neither the others' packets nor its
// own once the driver posts them.
func TestPairsShareThreads(t *testing.T) {
	for _, tc := range []struct{ threads, want int }{{1, 1}, {2, 2}, {3, 3}, {0, 3}} {
		t.Run(fmt.Sprintf("threads=%d", tc.threads), func(t *testing.T) {
			r := newMQRig(t, 3, tc.threads)
			// Each thread names itself before it serves (none runs on the
			// main thread, which cannot bear a name: main_test.go).
			r.activateMQ(FeatureMQ | FeatureCtrlVQ | FeatureMrgRxbuf)
			r.eachPairReceivesOnItsTurn()
			if n := threadname.Holders(ThreadName); n != tc.want {
				t.Errorf("%d threads serve the pairs, want %d", n, tc.want)
			}
			// A thread's name follows its goroutine after each yield
			// (threadname.Follow), a moment after the goroutine has moved;
			// a thread Go clones meanwhile from a named one inherits the
			// name until a holder starts or ends. So while the device runs
			// there may be more names than threads, never fewer for long.
			n := threadsNamed(t, ThreadName)
			for deadline := time.Now().Add(time.Second); n != tc.want && time.Now().Before(deadline); n = threadsNamed(t, ThreadName) {
				time.Sleep(time.Millisecond)
			}
			if n < tc.want {
				t.Errorf("%d threads named %s while active, want %d", n, ThreadName, tc.want)
			}
			r.dev.Reset()
			waitFor(t, "no thread named "+ThreadName+" after Reset", func() bool { return threadsNamed(t, ThreadName) == 0 })
		})
	}
}

// eachPairReceivesOnItsTurn uses every pair, has each pair's network
// end send a packet before any receive buffer is posted, then posts the
// buffers pair by pair, last first, and checks each pair gets its own
// packet.
func (r *rig) eachPairReceivesOnItsTurn() {
	t := r.t
	t.Helper()
	if ack := r.control(2*len(r.peers), pairsSet(uint16(len(r.peers)))); ack != ctrlOK {
		t.Fatalf("VQ_PAIRS_SET %d: ack %d", len(r.peers), ack)
	}
	var in [][]byte
	for i, peer := range r.peers {
		in = append(in, frame(100+i, byte(i)))
		if _, err := peer.Write(packet(header{}, in[i])); err != nil {
			t.Fatal(err)
		}
	}
	for i := len(r.peers) - 1; i >= 0; i-- {
		pool := r.postRXOn(2*i+RXQueue, 2, 4096)
		if _, got := pool.next(t); !bytes.Equal(got, in[i]) {
			t.Errorf("pair %d's receive queue got %d bytes, not the frame its network end sent", i, len(got))
		}
	}
}

// TestControlQueueWithoutMQ: a driver that takes the control queue but
// not VIRTIO_NET_F_MQ finds it at index 2, uses the first pair only, and
// has VQ_PAIRS_SET refused; a driver that takes MQ without the control
// queue is refused at activation.
func TestControlQueueWithoutMQ(t *testing.T) {
	r := newMQRig(t, 2, 0)
	r.activateMQ(FeatureCtrlVQ)
	if ack := r.control(2, pairsSet(2)); ack != ctrlErr {
		t.Errorf("VQ_PAIRS_SET without MQ: ack %d, want VIRTIO_NET_ERR", ack)
	}
	if _, used := r.dev.QueuePairs(); used != 1 {
		t.Errorf("%d pairs used, want the first only", used)
	}
	if fd, ok := r.dev.KickFD(3); ok {
		t.Errorf("queue 3 (a second pair the driver cannot use) has a kick eventfd %d", fd)
	}
	r.dev.Reset()

	r2 := newMQRig(t, 2, 0)
	queues := make([]*virtio.Queue, 5)
	if err := r2.dev.Activate(r2.mem, base|FeatureMQ, queues, func(int) {}); err == nil {
		t.Error("activated with MQ and no control queue")
	}
}

// TestMultiQueueConfigRefused: several pairs need a TAP the device opens,
// and no more than MaxQueuePairs of them; threads are 1 to the pairs, and
// not for vhost-net's pairs.
func TestMultiQueueConfigRefused(t *testing.T) {
	b, _ := socketPair(t)
	for _, cfg := range []Config{
		{Backend: b, Queues: 2},
		{TAP: "embertest%d", Backend: b, Queues: 2},
		{TAP: "embertest%d", Queues: MaxQueuePairs + 1},
		{TAP: "embertest%d", Queues: 2, Threads: 3},
		{TAP: "embertest%d", Queues: 2, Threads: -1},
		{TAP: "embertest%d", Queues: 2, Threads: 1, Vhost: true},
	} {
		if d, err := New(cfg); err == nil {
			d.Close()
			t.Errorf("New(%+v) made a device", cfg)
		}
	}
}

// TestMultiQueueTAP: on a multi-queue TAP the kernel gives the guest's
// packets to the first pair alone until the driver sets two pairs, then
// spreads flows over both, and over the first alone again after it sets
// one (the TAP queues attached and detached: §5.1.6.5.5).
func TestMultiQueueTAP(t *testing.T) {
	skipWithoutTAP(t).Close()
	r := newMQRigMem(t, 2)
	d, err := New(Config{TAP: "embertestmq%d", Queues: 2, MAC: testMAC, Logger: slog.New(r.logs)})
	if err != nil {
		t.Fatal(err)
	}
	r.dev = d
	t.Cleanup(func() { d.Close() })
	ps := openPacketSocket(t, d.Backend().(*TAP).Name())
	r.activateMQ(FeatureMQ | FeatureCtrlVQ | FeatureMrgRxbuf)
	pools := []*rxPool{r.postRXOn(0, 64, 4096), r.postRXOn(2, 64, 4096)}
	// Each batch's flows go to ports of their own: the kernel sends the
	// TAP packets of its own (IPv6 neighbour discovery) now and then.
	flows := func(ports uint16, n int) []int {
		t.Helper()
		for i := range n {
			ps.send(t, header{}, tcpFrame(testMAC, 10, ports+uint16(i)))
		}
		return r.countFlows(pools, ports, n)
	}
	if got := flows(1000, 32); got[1] != 0 {
		t.Errorf("before VQ_PAIRS_SET: 32 flows went %v to the two pairs, want all to the first", got)
	}
	if ack := r.control(4, pairsSet(2)); ack != ctrlOK {
		t.Fatalf("VQ_PAIRS_SET 2: ack %d", ack)
	}
	if got := flows(2000, 64); got[0] == 0 || got[1] == 0 {
		t.Errorf("with two pairs used: 64 flows went %v to the two pairs, want some to each", got)
	}
	if ack := r.control(4, pairsSet(1)); ack != ctrlOK {
		t.Fatalf("VQ_PAIRS_SET 1: ack %d", ack)
	}
	if got := flows(3000, 32); got[1] != 0 {
		t.Errorf("back to one pair: 32 flows went %v to the two pairs, want all to the first", got)
	}
}

// countFlows takes packets from the pools' receive queues, whichever they
// come on, until n TCP packets to ports from ports on have come, and
// returns how many of those each got; other packets are passed over.
func (r *rig) countFlows(pools []*rxPool, ports uint16, n int) []int {
	r.t.Helper()
	got := make([]int, len(pools))
	deadline := time.Now().Add(wait)
	for total := 0; total < n; {
		if time.Now().After(deadline) {
			r.t.Fatalf("%d of %d packets received (%v)", total, n, got)
		}
		for i, p := range pools {
			u, ok := r.tryUsed(r.driver(p.q))
			if !ok {
				continue
			}
			b, err := r.driver(p.q).Read(p.gpas[u.Head], int(u.Len))
			if err != nil {
				r.t.Fatal(err)
			}
			delete(p.gpas, u.Head)
			p.post()
			if f := b[HeaderSize:]; len(f) >= 54 && isTCPPort(f, binary.BigEndian.Uint16(f[36:])) {
				if port := binary.BigEndian.Uint16(f[36:]); port >= ports && port < ports+uint16(n) {
					got[i]++
					total++
				}
			}
		}
		time.Sleep(time.Millisecond)
	}
	return got
}
