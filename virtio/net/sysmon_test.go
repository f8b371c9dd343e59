package net

import (
	"fmt"
	"runtime"
	"testing"
	"time"

	"ember/internal/threadstat"
	"ember/virtio/internal/queuefd"
)

// kickForASecond kicks the transmit queue of a fresh device every gap for
// a second and returns how often Go's sysmon switched meanwhile, and the
// kicks. busy goroutines compute meanwhile, each keeping a P.
func kickForASecond(t *testing.T, gap time.Duration, busy int) (switches uint64, kicks int) {
	t.Helper()
	r := newRig(t, 0, false)
	done := make(chan struct{})
	defer close(done)
	for range busy {
		go spin(done)
	}
	kick, ok := r.dev.KickFD(TXQueue)
	if !ok {
		t.Fatal("no kick eventfd while active")
	}
	stop := make(chan struct{})
	kicked := make(chan int)
	go func() {
		n := 0
		defer func() { kicked <- n }()
		for {
			select {
			case <-stop:
				return
			case <-time.After(gap):
			}
			if queuefd.Signal(kick) == nil {
				n++
			}
			// Woken by its timer, this goroutine runs in the time slice
			// of whoever woke it, and sysmon would take its P in the
			// eventfd's write as well: a yield keeps the count the
			// device's.
			runtime.Gosched()
		}
	}()
	time.Sleep(100 * time.Millisecond) // past sysmon's first looks
	before, err := threadstat.Sysmon()
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	time.Sleep(time.Second)
	after, err := threadstat.Sysmon()
	if err != nil {
		t.Fatal(err)
	}
	n, d := after.Switches-before.Switches, time.Since(start)
	close(stop)
	kicks = <-kicked
	t.Logf("sysmon switched %d times in %v; %d kicks %v apart", n, d.Round(time.Millisecond), kicks, gap)
	if least := int(time.Second / gap / 4); kicks < least {
		t.Fatalf("only %d kicks in %v, want %d or more: the kicking goroutine waited for a P", kicks, d, least)
	}
	return n, kicks
}

// TestThreadLeavesSysmonAlone: a device whose thread wakes a thousand
// times a second does not keep Go's sysmon polling. The thread holds its P
// in epoll_wait; if its goroutine never went through the scheduler, sysmon
// would find it due at every look, take its P, and look again 20 µs
// later, for as long as the device is busy: over two thousand wake-ups a
// second for a thousand kicks, each a context switch of sysmon's (and, in
// the lab, a lab CPU taken from the vCPUs).
func TestThreadLeavesSysmonAlone(t *testing.T) {
	n, kicks := kickForASecond(t, time.Millisecond, 0)
	// About a hundred a second (sysmon's 10 ms back-off) on the build
	// machine and 100-350 in the lab with the yield; 2,300 and 4,000
	// without it.
	if n > uint64(kicks) {
		t.Errorf("sysmon switched %d times for %d kicks of the device: it keeps taking the device thread's P", n, kicks)
	}
}

// TestThreadLeavesSysmonAloneBetweenSparseKicks: a device kicked every 15
// ms, longer than sysmon lets a system call keep its P, does not have its
// P taken at each wait either (devthread's busyWaitMs): every take would set sysmon
// looking every 20 µs again, some fifty wake-ups each.
func TestThreadLeavesSysmonAloneBetweenSparseKicks(t *testing.T) {
	n, kicks := kickForASecond(t, 15*time.Millisecond, 0)
	// Sysmon's 10 ms back-off is a hundred a second; a take at every
	// wait would be thousands.
	if limit := uint64(300); n > limit {
		t.Errorf("sysmon switched %d times in a second for %d kicks 15 ms apart, want %d or fewer: it takes the device thread's P in its waits", n, kicks, limit)
	}
}

// spin computes until done is closed, as a goroutine of the process's
// that keeps a P busy would.
func spin(done <-chan struct{}) {
	for n := 0; ; n++ {
		if n%(1<<16) == 0 {
			select {
			case <-done:
				return
			default:
			}
		}
	}
}

// TestThreadLeavesTheProcessItsPs: the device's thread keeps a P in
// epoll_wait, so it adds one to the process while it runs (sysmon.Budget).
// A process whose goroutines keep busy every P it had then still runs
// another goroutine at once (here the one that kicks the device a thousand
// times a second; without the added P it kicked 29 times in the second),
// and sysmon, finding a P idle, leaves the device's alone: it takes a
// system call's P at its next look when none is idle, and each take sets
// it looking every 20 µs again. In the lab, where the vCPUs hold theirs,
// the device's P was taken tens of times a second in a stream
// (docs/performance-log.md).
func TestThreadLeavesTheProcessItsPs(t *testing.T) {
	// All the Ps the process had but the one the device's thread would
	// keep in epoll_wait are kept busy.
	busy := runtime.GOMAXPROCS(0) - 1
	n, kicks := kickForASecond(t, time.Millisecond, busy)
	if n > uint64(kicks) {
		t.Errorf("sysmon switched %d times for %d kicks of the device beside %d busy goroutines: it keeps taking the device thread's P", n, kicks, busy)
	}
}

// TestThreadGivesItsPBack: the device's thread adds a P to the process
// while the device is active, and a Reset that has returned has given it
// back: a VM that is destroyed leaves GOMAXPROCS as it found it.
func TestThreadGivesItsPBack(t *testing.T) {
	before := runtime.GOMAXPROCS(0)
	r := newRig(t, 0, false)
	waitFor(t, fmt.Sprintf("GOMAXPROCS %d with the device active", before+1), func() bool { return runtime.GOMAXPROCS(0) == before+1 })
	r.dev.Reset()
	if got := runtime.GOMAXPROCS(0); got != before {
		t.Errorf("after Reset: GOMAXPROCS %d, want %d", got, before)
	}
}
