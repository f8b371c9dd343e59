package net

import (
	"os"
	"testing"

	"golang.org/x/sys/unix"

	"ember/memory"
	"ember/virtio"
	"ember/virtio/internal/queuefd"
	"ember/virtio/virtiotest"
)

// benchPacket is the packet the receive benchmark moves: the header and a
// frame of about 64 KiB, what a TAP gives a guest that takes TSO.
var benchPacket = packet(header{}, frame(65000, 3))

// benchBufSize is each receive buffer of the benchmark's driver: a page,
// as Linux posts mergeable buffers.
const benchBufSize = 4096

// benchSocket returns a socketpair's two ends: the network's, blocking,
// which a goroutine writes b.N benchmark packets to, and the host's, as a
// file, non-blocking if nonblock.
func benchSocket(b *testing.B, nonblock bool) (network int, host *os.File) {
	b.Helper()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		b.Fatal(err)
	}
	if err := unix.SetNonblock(fds[1], nonblock); err != nil {
		b.Fatal(err)
	}
	host = os.NewFile(uintptr(fds[1]), "host")
	b.Cleanup(func() { unix.Close(fds[0]); host.Close() })
	return fds[0], host
}

// sendPackets writes n benchmark packets to fd, on a goroutine of its own.
func sendPackets(b *testing.B, fd, n int) {
	go func() {
		for range n {
			if _, err := unix.Write(fd, benchPacket); err != nil {
				b.Error(err)
				return
			}
		}
	}()
}

// benchRAM is guest RAM for the benchmark's queue and buffers.
func benchRAM(b *testing.B) *memory.Guest {
	b.Helper()
	mem, err := memory.New([]memory.Range{{GPA: 0, Size: 16 << 20}})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { mem.Close() })
	return mem
}

// runReads is the limit: the packets read from the socket in this
// process, each into the next of a queue's worth of buffers in guest RAM,
// as the device's buffers in turn are.
func runReads(b *testing.B) {
	network, host := benchSocket(b, false)
	mem := benchRAM(b)
	bufs := make([][]byte, QueueSize*benchBufSize/len(benchPacket))
	for i := range bufs {
		var err error
		if bufs[i], err = mem.Slice(uint64(i*len(benchPacket)), uint64(len(benchPacket))); err != nil {
			b.Fatal(err)
		}
	}
	fd := int(host.Fd())
	b.SetBytes(int64(len(benchPacket)))
	b.ResetTimer()
	sendPackets(b, network, b.N)
	for i := range b.N {
		if n, err := unix.Read(fd, bufs[i%len(bufs)]); err != nil || n != len(benchPacket) {
			b.Fatalf("read %d bytes: %v", n, err)
		}
	}
}

// benchRig is a device on a non-blocking socketpair's host end, with
// guest RAM and drivers for both queues (each with EVENT_IDX), for the
// queue benchmarks; network is the socketpair's other end.
type benchRig struct {
	network int
	mem     *memory.Guest
	dev     *Device
	rx, tx  *virtiotest.Driver
}

// newBenchRig makes a benchRig whose receive queue's rings start at rxBase
// and transmit queue's at txBase; the device is not active yet.
func newBenchRig(b *testing.B, rxBase, txBase uint64) *benchRig {
	network, host := benchSocket(b, true)
	r := &benchRig{network: network, mem: benchRAM(b)}
	backend, err := NewFileBackend(host)
	if err != nil {
		b.Fatal(err)
	}
	if r.dev, err = New(Config{Backend: backend, MAC: testMAC}); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { r.dev.Close() })
	if r.rx, err = virtiotest.New(r.mem, virtiotest.Config{Base: rxBase, Size: QueueSize, EventIdx: true}); err != nil {
		b.Fatal(err)
	}
	if r.tx, err = virtiotest.New(r.mem, virtiotest.Config{Base: txBase, Size: QueueSize, EventIdx: true}); err != nil {
		b.Fatal(err)
	}
	return r
}

// activate starts the device with EVENT_IDX and mergeable buffers, and
// returns the channel that holds one pending interrupt of either queue.
func (r *benchRig) activate(b *testing.B) chan struct{} {
	irq := make(chan struct{}, 1)
	r.activateWith(b, func(int) {
		select {
		case irq <- struct{}{}:
		default:
		}
	})
	return irq
}

// activateWith starts the device with EVENT_IDX and mergeable buffers,
// its interrupts going to interrupt.
func (r *benchRig) activateWith(b *testing.B, interrupt func(int)) {
	if err := r.dev.Activate(r.mem, base|virtio.FeatureEventIdx|FeatureMrgRxbuf, []*virtio.Queue{r.rx.Queue, r.tx.Queue}, interrupt); err != nil {
		b.Fatal(err)
	}
}

// offered is the driver's step after it made chains available on queue q
// from avail index old on: it notifies the device if the device asked to
// be (EVENT_IDX), and asks for an interrupt at the next used buffer.
func (r *benchRig) offered(b *testing.B, q int, old uint16) {
	d := r.rx
	if q == TXQueue {
		d = r.tx
	}
	if notify, err := d.NeedsNotify(old); err != nil {
		b.Fatal(err)
	} else if notify {
		r.dev.Notify(q)
	}
	if err := d.ArmInterrupt(); err != nil {
		b.Fatal(err)
	}
}

// done stops the benchmark's timer and fails it if the device dropped a
// packet either way.
func (r *benchRig) done(b *testing.B) {
	b.StopTimer()
	if st := r.dev.Stats(); st.RXDropped != 0 || st.TXDropped != 0 {
		b.Fatalf("packets dropped: %d received, %d sent", st.RXDropped, st.TXDropped)
	}
}

// runQueue moves the packets through the device's receive queue: the
// driver posts QueueSize one-page buffers, laid out once (descriptor i is
// buffer i), with mergeable buffers and EVENT_IDX, and offers each again
// once the device has used it and the driver has taken every used one
// there is, as a guest's driver refills after its receive handler, then
// asks for an interrupt at the next and sleeps until it comes.
func runQueue(b *testing.B) {
	r := newBenchRig(b, 0, 8<<20)
	rx := r.rx
	for i := range uint16(QueueSize) {
		gpa, err := rx.Alloc(benchBufSize)
		if err != nil {
			b.Fatal(err)
		}
		if err := rx.SetDesc(i, virtiotest.Desc{Addr: gpa, Len: benchBufSize, Flags: virtio.DescWrite}); err != nil {
			b.Fatal(err)
		}
		if err := rx.Offer(i); err != nil {
			b.Fatal(err)
		}
	}
	irq := r.activate(b)
	b.SetBytes(int64(len(benchPacket)))
	b.ResetTimer()
	sendPackets(b, r.network, b.N)
	var again []uint16
	got, total := 0, b.N*len(benchPacket)
	// take takes every used element there is, and says whether there was one.
	take := func() bool {
		n := 0
		for ; ; n++ {
			u, ok, err := rx.Used()
			if err != nil {
				b.Fatal(err)
			}
			if !ok {
				return n > 0
			}
			got += int(u.Len)
			again = append(again, u.Head)
		}
	}
	for got < total {
		if take() {
			continue
		}
		old := rx.AvailIdx()
		for _, head := range again {
			if err := rx.Offer(head); err != nil {
				b.Fatal(err)
			}
		}
		again = again[:0]
		r.offered(b, RXQueue, old)
		if !take() {
			<-irq
		}
	}
	r.done(b)
}

// BenchmarkReceive compares packets of about 64 KiB moved from the
// network (a socketpair) into the driver's page-sized mergeable buffers
// through the receive queue with reads of the same packets from the same
// socket into guest RAM in this process: the limit, one copy by the
// kernel. The ratio is the queue's MB/s over the reads'.
//
//	go test ./virtio/net -run '^$' -bench Receive -benchtime 2s
func BenchmarkReceive(b *testing.B) {
	b.Run("read", runReads)
	b.Run("virtqueue", runQueue)
}

// txFrags is how a transmit benchmark packet lies in guest memory: the
// header in a buffer of its own, then the frame in page-sized fragments,
// as Linux hands a 64 KiB TSO packet to its driver.
const txFrags = 16

// txSlots is how many such packets fit the transmit queue at once.
const txSlots = QueueSize / (txFrags + 1)

// txPacketBuffers lays out slot's packet in guest RAM at gpa: the header
// and the frame of benchPacket, in txFrags page-sized pieces (the last
// shorter), and returns them as slices of guest memory.
func txPacketBuffers(b *testing.B, mem *memory.Guest, gpa uint64) [][]byte {
	b.Helper()
	bufs := [][]byte{benchPacket[:HeaderSize]}
	for frame := benchPacket[HeaderSize:]; len(frame) > 0; {
		n := min(len(frame), benchBufSize)
		bufs, frame = append(bufs, frame[:n]), frame[n:]
	}
	if len(bufs) != txFrags+1 {
		b.Fatalf("benchmark packet in %d buffers, want %d", len(bufs), txFrags+1)
	}
	out := make([][]byte, len(bufs))
	for i, data := range bufs {
		s, err := mem.Slice(gpa, uint64(len(data)))
		if err != nil {
			b.Fatal(err)
		}
		copy(s, data)
		out[i], gpa = s, gpa+benchBufSize
	}
	return out
}

// drainPackets reads n packets from fd, on a goroutine of its own: the
// network's end of a transmit benchmark. The channel closes when it has.
func drainPackets(b *testing.B, fd, n int) <-chan struct{} {
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, len(benchPacket)+1)
		for range n {
			if k, err := unix.Read(fd, buf); err != nil || k != len(benchPacket) {
				b.Errorf("read %d bytes of %d: %v", k, len(benchPacket), err)
				return
			}
		}
	}()
	return done
}

// runWrites is the transmit limit: the packets written to the socket from
// guest RAM in this process, one writev of the same buffers a packet, as
// the device's are.
func runWrites(b *testing.B) {
	network, host := benchSocket(b, false)
	mem := benchRAM(b)
	bufs := txPacketBuffers(b, mem, 0)
	fd := int(host.Fd())
	b.SetBytes(int64(len(benchPacket) - HeaderSize))
	b.ResetTimer()
	done := drainPackets(b, network, b.N)
	for range b.N {
		if n, err := unix.Writev(fd, bufs); err != nil || n != len(benchPacket) {
			b.Fatalf("writev %d bytes: %v", n, err)
		}
	}
	<-done
}

// runTransmitQueue moves the packets through the device's transmit queue:
// the driver keeps txSlots packets laid out once (slot s's descriptors
// from s*(txFrags+1), header then fragments), offers each again once the
// device has used it, with EVENT_IDX, notifying when the device asks to
// be, and waits for an interrupt when every slot is in flight.
func runTransmitQueue(b *testing.B) {
	r := newBenchRig(b, 8<<20, 12<<20)
	mem, tx := r.mem, r.tx
	for s := range txSlots {
		first := uint16(s * (txFrags + 1))
		at := uint64(s * (txFrags + 1) * benchBufSize)
		for i, buf := range txPacketBuffers(b, mem, at) {
			d := virtiotest.Desc{Addr: at + uint64(i)*benchBufSize, Len: uint32(len(buf))}
			if i < txFrags {
				d.Flags, d.Next = virtio.DescNext, first+uint16(i)+1
			}
			if err := tx.SetDesc(first+uint16(i), d); err != nil {
				b.Fatal(err)
			}
		}
	}
	irq := r.activate(b)
	b.SetBytes(int64(len(benchPacket) - HeaderSize))
	b.ResetTimer()
	done := drainPackets(b, r.network, b.N)
	offered, used := 0, 0
	free := make([]uint16, 0, txSlots)
	for s := range txSlots {
		free = append(free, uint16(s*(txFrags+1)))
	}
	for used < b.N {
		old := tx.AvailIdx()
		for ; len(free) > 0 && offered < b.N; offered++ {
			if err := tx.Offer(free[len(free)-1]); err != nil {
				b.Fatal(err)
			}
			free = free[:len(free)-1]
		}
		r.offered(b, TXQueue, old)
		n := 0
		for {
			u, ok, err := tx.Used()
			if err != nil {
				b.Fatal(err)
			}
			if !ok {
				break
			}
			free, n = append(free, u.Head), n+1
		}
		if used += n; n == 0 {
			<-irq
		}
	}
	<-done
	r.done(b)
}

// BenchmarkTransmit compares packets of about 64 KiB, laid out as Linux
// lays out a TSO packet (the header, then page-sized fragments), sent to
// the network (a socketpair) through the transmit queue with writev of
// the same buffers to the same socket in this process: the limit, one
// copy by the kernel. The ratio is the queue's MB/s over the writes'.
//
//	go test ./virtio/net -run '^$' -bench Transmit -benchtime 2s
func BenchmarkTransmit(b *testing.B) {
	b.Run("writev", runWrites)
	b.Run("virtqueue", runTransmitQueue)
}

// rrFrame is the round-trip benchmark's packet: the header and a
// minimum-sized Ethernet frame, what a one-byte TCP_RR exchange puts on
// the wire.
var rrFrame = packet(header{}, frame(60, 7))

// echo answers every packet the network end of a socketpair gets with
// itself, on a goroutine of its own, until the socket is closed.
func echo(fd int) {
	go func() {
		buf := make([]byte, 2048)
		for {
			n, err := unix.Read(fd, buf)
			if err != nil || n == 0 {
				return
			}
			if _, err := unix.Write(fd, buf[:n]); err != nil {
				return
			}
		}
	}()
}

// runSocketRoundTrips is the limit: a packet written to the host's end
// and its echo read back, in this process, with no device between.
func runSocketRoundTrips(b *testing.B) {
	network, host := benchSocket(b, false)
	echo(network)
	fd := int(host.Fd())
	buf := make([]byte, 2048)
	b.ResetTimer()
	for range b.N {
		if _, err := unix.Write(fd, rrFrame); err != nil {
			b.Fatal(err)
		}
		if n, err := unix.Read(fd, buf); err != nil || n != len(rrFrame) {
			b.Fatalf("read %d bytes: %v", n, err)
		}
	}
}

// runQueueRoundTrips sends each packet through the transmit queue (one
// descriptor, offered again once used) and waits, asleep on the interrupt
// eventfd while the used ring is empty, for its echo in the receive queue,
// whose buffer it then offers again: a round trip through the device's
// thread both ways, as a guest's TCP_RR makes.
func runQueueRoundTrips(b *testing.B) {
	r := newBenchRig(b, 0, 8<<20)
	echo(r.network)
	const rxBufs = 16
	for i := range uint16(rxBufs) {
		gpa, err := r.rx.Alloc(2048)
		if err != nil {
			b.Fatal(err)
		}
		if err := r.rx.SetDesc(i, virtiotest.Desc{Addr: gpa, Len: 2048, Flags: virtio.DescWrite}); err != nil {
			b.Fatal(err)
		}
		if err := r.rx.Offer(i); err != nil {
			b.Fatal(err)
		}
	}
	gpa, err := r.tx.Alloc(uint64(len(rrFrame)))
	if err != nil {
		b.Fatal(err)
	}
	if err := r.tx.Write(gpa, rrFrame); err != nil {
		b.Fatal(err)
	}
	if err := r.tx.SetDesc(0, virtiotest.Desc{Addr: gpa, Len: uint32(len(rrFrame))}); err != nil {
		b.Fatal(err)
	}
	// Interrupts reach the driver through an eventfd it sleeps on, as a
	// guest's do through KVM's irqfd: no goroutine of this process is
	// made ready by the device's thread.
	irq, err := unix.Eventfd(0, unix.EFD_CLOEXEC)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { unix.Close(irq) })
	r.activateWith(b, func(int) { queuefd.Signal(irq) })
	var count [8]byte
	// wait returns d's next used element, asleep until an interrupt while
	// there is none.
	wait := func(d *virtiotest.Driver) virtiotest.Used {
		for {
			u, ok, err := d.Used()
			if err != nil {
				b.Fatal(err)
			}
			if ok {
				return u
			}
			if err := d.ArmInterrupt(); err != nil {
				b.Fatal(err)
			}
			if u, ok, err = d.Used(); err == nil && ok {
				return u
			}
			if _, err := unix.Read(irq, count[:]); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.ResetTimer()
	for range b.N {
		old := r.tx.AvailIdx()
		if err := r.tx.Offer(0); err != nil {
			b.Fatal(err)
		}
		r.offered(b, TXQueue, old)
		u := wait(r.rx)
		if u.Len != uint32(len(rrFrame)) {
			b.Fatalf("echo of %d bytes, want %d", u.Len, len(rrFrame))
		}
		wait(r.tx)
		old = r.rx.AvailIdx()
		if err := r.rx.Offer(u.Head); err != nil {
			b.Fatal(err)
		}
		r.offered(b, RXQueue, old)
	}
	r.done(b)
}

// BenchmarkRoundTrip compares a minimum-sized packet's round trip through
// the device — out by the transmit queue, echoed by the network (a
// socketpair), back by the receive queue — with the same packet's round
// trip over the socket alone in this process: the limit. The ratio of the
// two ns/op is what the device's thread adds to each of a guest's
// one-byte round trips (netperf's TCP_RR), less KVM's part.
//
//	go test ./virtio/net -run '^$' -bench RoundTrip -benchtime 2s
func BenchmarkRoundTrip(b *testing.B) {
	b.Run("socket", runSocketRoundTrips)
	b.Run("virtqueue", runQueueRoundTrips)
}
