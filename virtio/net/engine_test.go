package net

import (
	"bytes"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"ember/virtio/internal/queuefd"
	"ember/virtio/virtiotest"
)

// TestOnGoroutines runs the device's behaviour tests again with a backend
// the device cannot wait on itself (only the Backend interface, as a
// program that embeds ember may give), which it serves on a goroutine per
// queue: a user sees the same device either way.
func TestOnGoroutines(t *testing.T) {
	onGoroutines = true
	defer func() { onGoroutines = false }()
	for _, tt := range []struct {
		name string
		test func(*testing.T)
	}{
		{"Transmit", TestTransmit},
		{"TransmitDropsMalformed", TestTransmitDropsMalformed},
		{"TransmitBadDescriptorChain", TestTransmitBadDescriptorChain},
		{"Receive", TestReceive},
		{"ReceiveHeaders", TestReceiveHeaders},
		{"ReceiveDropsWhatCannotFit", TestReceiveDropsWhatCannotFit},
		{"ReceiveQueueOfTinyBuffers", TestReceiveQueueOfTinyBuffers},
		{"ReceiveWaitsForBuffers", TestReceiveWaitsForBuffers},
		{"ReceiveDropsRunts", TestReceiveDropsRunts},
		{"BrokenQueue", TestBrokenQueue},
		{"BackendEOF", TestBackendEOF},
		{"ResetAndReactivate", TestResetAndReactivate},
		{"BlockedTransmitReset", TestBlockedTransmitReset},
		{"BlockedTransmitResumes", TestBlockedTransmitResumes},
		{"Interrupts", TestInterrupts},
		{"NoGoroutineLeak", TestNoGoroutineLeak},
	} {
		t.Run(tt.name, tt.test)
	}
}

// TestBlockedTransmitResumes: packets the backend cannot take at once (the
// peer reads nothing until the socket buffers are full) are all sent, in
// order, once the peer reads; none is dropped.
func TestBlockedTransmitResumes(t *testing.T) {
	r := newRig(t, 0, false)
	const n = 40 // about 2.4 MB: more than the socket buffers hold
	for i := range n {
		r.add(TXQueue, virtiotest.Readable(hdr(header{})), virtiotest.Readable(frame(60000, byte(i))))
	}
	time.Sleep(quiet)
	if idx, _ := r.tx.UsedIdx(); idx >= n {
		t.Fatalf("all %d packets used before the peer read any: the test did not fill the backend", idx)
	}
	for i := range n {
		if got := r.peerRead(); !bytes.Equal(got, packet(header{}, frame(60000, byte(i)))) {
			t.Fatalf("packet %d: %d bytes, not the %d-th packet sent", i, len(got), i)
		}
	}
	r.waitUsedIdx(TXQueue, n)
	if st := r.dev.Stats(); st.TXPackets != n || st.TXDropped != 0 {
		t.Errorf("stats %+v, want %d packets sent and none dropped", st, n)
	}
}

// TestKicksOnEventFDs: while the device's thread serves it, each queue has
// a kick eventfd (virtio.QueueEventFDs) that a transport has KVM signal on
// the guest's notification; a signal there is a notification, with no
// call of Notify. The device has no call eventfds (it interrupts through
// the transport), and after Reset no kick eventfd.
func TestKicksOnEventFDs(t *testing.T) {
	r := newRig(t, 0, false)
	for q := range 2 {
		if _, ok := r.dev.CallFD(q); ok {
			t.Errorf("queue %d: a call eventfd", q)
		}
	}
	rxKick, ok := r.dev.KickFD(RXQueue)
	txKick, ok2 := r.dev.KickFD(TXQueue)
	if !ok || !ok2 {
		t.Fatal("no kick eventfd while active")
	}
	// A packet in hand, no buffer: the kick of the receive queue delivers it.
	r.peerWrite(packet(header{}, frame(64, 1)))
	r.waitTaken()
	if _, _, err := r.rx.Add(virtiotest.Writable(2048)); err != nil {
		t.Fatal(err)
	}
	if err := queuefd.Signal(rxKick); err != nil {
		t.Fatal(err)
	}
	r.used(RXQueue)
	f := frame(70, 2)
	if _, _, err := r.tx.Add(virtiotest.Readable(hdr(header{})), virtiotest.Readable(f)); err != nil {
		t.Fatal(err)
	}
	if err := queuefd.Signal(txKick); err != nil {
		t.Fatal(err)
	}
	if got := r.peerRead(); !bytes.Equal(got, packet(header{}, f)) {
		t.Error("the kick eventfd did not send the packet")
	}
	// The thread is named unless it happens to be the process's main
	// thread (threadname.Set): a fresh activation gets another.
	named := func() bool {
		for deadline := time.Now().Add(time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
			if threadsNamed(t, ThreadName) == 1 {
				return true
			}
		}
		return false
	}
	for try := 0; !named(); try++ {
		if try == 20 {
			t.Fatalf("%d threads named %s while active, want 1", threadsNamed(t, ThreadName), ThreadName)
		}
		r.dev.Reset()
		r.activate(0, false)
	}
	r.dev.Reset()
	if _, ok := r.dev.KickFD(TXQueue); ok {
		t.Error("a kick eventfd after Reset")
	}
	// Go ends the thread once its goroutine returns, which Reset waits for.
	waitFor(t, "no thread named "+ThreadName+" after Reset", func() bool { return threadsNamed(t, ThreadName) == 0 })
}

// waitFor waits up to wait for cond, and fails the test saying what did
// not come.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(wait); !cond(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("after %v: %s", wait, what)
		}
	}
}

// threadsNamed counts the process's threads named name.
func threadsNamed(t *testing.T, name string) int {
	t.Helper()
	tasks, err := os.ReadDir("/proc/self/task")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, task := range tasks {
		comm, err := os.ReadFile("/proc/self/task/" + task.Name() + "/comm")
		if err == nil && strings.TrimSpace(string(comm)) == name {
			n++
		}
	}
	return n
}

// TestEndedBackendIdles: once the backend has ended (its peer closed),
// with or without a packet waiting for room in it, the device's thread
// does not spin on the hang-up: the packets it could not send are
// returned to the driver, and the process uses next to no CPU while the
// device waits.
func TestEndedBackendIdles(t *testing.T) {
	for _, held := range []bool{false, true} {
		t.Run(fmt.Sprintf("held=%v", held), func(t *testing.T) {
			r := newRig(t, 0, false)
			const n = 40 // more than the socket buffers hold
			if held {
				for i := range n {
					r.add(TXQueue, virtiotest.Readable(hdr(header{})), virtiotest.Readable(frame(60000, byte(i))))
				}
				time.Sleep(quiet)
			}
			r.peer.Close()
			r.logged(slog.LevelError)
			if held {
				r.waitUsedIdx(TXQueue, n)
			}
			before := cpuTime(t)
			time.Sleep(200 * time.Millisecond)
			if used := cpuTime(t) - before; used > 50*time.Millisecond {
				t.Errorf("the process used %v of CPU in 200 ms with the backend ended", used)
			}
		})
	}
}

// cpuTime is the CPU time the process has used.
func cpuTime(t *testing.T) time.Duration {
	t.Helper()
	var ru unix.Rusage
	if err := unix.Getrusage(unix.RUSAGE_SELF, &ru); err != nil {
		t.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// TestOnlyTheDeviceWaitsOnTheBackend: while the device's thread serves a
// FileBackend, its descriptor is in one epoll, the thread's, and not in Go's
// poller as well, whose thread would wake for every packet that arrives
// with nothing to do. ReadPacket, used after, puts a duplicate there.
func TestOnlyTheDeviceWaitsOnTheBackend(t *testing.T) {
	r := newRig(t, 0, false)
	var st unix.Stat_t
	if err := r.fake.control(func(fd int) error { return unix.Fstat(fd, &st) }); err != nil {
		t.Fatal(err)
	}
	// A packet delivered: the thread has run and waits again.
	r.add(RXQueue, virtiotest.Writable(2048))
	r.peerWrite(packet(header{}, frame(64, 1)))
	r.used(RXQueue)
	if n := epollsWatching(t, st.Ino); n != 1 {
		t.Errorf("the backend is in %d epolls while the device waits for packets, want 1 (the device's)", n)
	}
	r.dev.Reset()
	r.fake.SetDeadline(time.Now().Add(time.Millisecond))
	r.fake.ReadPacket(make([]byte, 64))
	if n := epollsWatching(t, st.Ino); n != 1 {
		t.Errorf("the backend is in %d epolls after ReadPacket with the device reset, want 1 (Go's)", n)
	}
}

// epollsWatching counts the epoll instances of this process that watch
// the file with inode ino, from /proc/self/fdinfo.
func epollsWatching(t *testing.T, ino uint64) int {
	t.Helper()
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf(" ino:%x ", ino)
	n := 0
	for _, fd := range fds {
		if link, _ := os.Readlink("/proc/self/fd/" + fd.Name()); link != "anon_inode:[eventpoll]" {
			continue
		}
		info, err := os.ReadFile("/proc/self/fdinfo/" + fd.Name())
		if err == nil && strings.Contains(string(info)+" ", want) {
			n++
		}
	}
	return n
}

// TestQueuesAllocateNothing: packets moved through either queue on the
// device's thread, as BenchmarkReceive and BenchmarkTransmit move them,
// cost no allocation each (the driver's side included), so a guest that
// streams gives Go's garbage collector, whose workers take the CPUs the
// vCPUs need, no work a packet. Before, a received packet cost 21 and a
// sent one 20.
func TestQueuesAllocateNothing(t *testing.T) {
	// Packets enough for the setup's allocations to spread thin, whatever
	// -benchtime the run was given.
	bt := flag.Lookup("test.benchtime")
	old := bt.Value.String()
	if err := bt.Value.Set("20000x"); err != nil {
		t.Fatal(err)
	}
	defer bt.Value.Set(old)
	for name, run := range map[string]func(*testing.B){"receive": runQueue, "transmit": runTransmitQueue} {
		r := testing.Benchmark(run)
		if r.N != 20000 {
			t.Fatalf("%s: the benchmark ran %d packets, want 20000", name, r.N)
		}
		// A few allocations at the start (the spare chains, the iovec
		// lists) spread over the packets.
		if a := float64(r.MemAllocs) / float64(r.N); a >= 0.5 {
			t.Errorf("%s: %.1f allocations a packet (%d over %d packets), want none", name, a, r.MemAllocs, r.N)
		}
	}
}
