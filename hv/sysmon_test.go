package hv

import (
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"ember/guest"
	"ember/hv/eventfd"
	"ember/internal/sysmon"
	"ember/internal/threadstat"
	"ember/x86"
)

// TestSysmonLeavesABusyVCPUAlone: a vCPU that exits all the time does not
// keep Go's sysmon waking every 20 µs to take its P (vcputhread.NewYield, internal/sysmon). sysmon
// sleeps in usleep between its looks, a voluntary context switch each: the
// process's threads together switch some 450–720 times a second in the lab
// when sysmon backs off (most of them the vCPU's own yields, one every 8 ms
// since 2026-12-02, every 5 ms before: the higher figure) and, without
// the yields, 1,700–2,100 times in the lab (where an emulated usleep(20)
// takes half a millisecond) and tens of thousands on a host.
func TestSysmonLeavesABusyVCPUAlone(t *testing.T) {
	h := openHV(t)
	vm, err := h.NewVM(Config{MemorySize: 1 << 20, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer vm.Close()
	// mov $0x4f0, %dx; out %al, (%dx); jmp back to the out: a port no
	// device claims, answered in the vCPU loop.
	if err := vm.LoadImage([]byte{0xba, 0xf0, 0x04, 0xee, 0xeb, 0xfd}, guest.LoadAddr); err != nil {
		t.Fatal(err)
	}
	if err := vm.SetEntry(0, x86.Entry{Mode: x86.RealMode, RIP: guest.LoadAddr}); err != nil {
		t.Fatal(err)
	}
	run := vm.Start()
	time.Sleep(100 * time.Millisecond) // past sysmon's first 10 ms
	before, start := contextSwitches(t), time.Now()
	time.Sleep(500 * time.Millisecond)
	n, d := contextSwitches(t)-before, time.Since(start)
	exits := vm.Exits()
	run.Stop()
	if res, err := run.Wait(); err != nil || res.Reason != StopHost {
		t.Fatalf("run ended %v %v, want StopHost", res, err)
	}
	perSec := float64(n) / d.Seconds()
	t.Logf("%d voluntary context switches in %v (%.0f/s); %d exits", n, d.Round(time.Millisecond), perSec, exits)
	if exits == 0 {
		t.Fatal("the guest made no exits")
	}
	if perSec > 1200 {
		t.Errorf("%.0f voluntary context switches a second while a vCPU exits: sysmon is not backing off", perSec)
	}
}

// TestSysmonLeavesAHaltingVCPUAlone: a guest that halts 20 ms at a time,
// as an idle one does, does not keep Go's sysmon polling. Entered the
// ordinary way, a halt keeps the thread's P in KVM_RUN until sysmon finds
// the call has lasted 10 ms and takes it, and each take sets sysmon polling
// every 20 µs again: about fifty wake-ups a halt, some 2,500 a second here
// (3,400 with 15 ms halts, on the build machine). After a long run the
// vCPU hands its P over as it enters (vcputhread.Entry.HandingOver), and
// sysmon has nothing to take.
func TestSysmonLeavesAHaltingVCPUAlone(t *testing.T) {
	vm, v := newVirqVM(t, Config{MemorySize: 2 << 20, Logger: quiet})
	const gap = 20 * time.Millisecond
	wake := startHalting(t, vm, v, 200)
	for range 5 { // past the first long runs and sysmon's first looks
		wake(gap)
	}
	n, perSec, wakes := sysmonWhile(t, func() { wake(gap) })
	t.Logf("sysmon switched %d times (%.0f/s); %d halts of %v", n, perSec, wakes, gap)
	if perSec > 1000 {
		t.Errorf("sysmon switched %.0f times a second beside a vCPU halting %v at a time: it keeps taking the vCPU's P", perSec, gap)
	}
}

// TestSysmonLeavesAVCPUBesideADeviceAlone: while a device's own thread runs
// (the net device's loop, whose P stays in use through its waits), a vCPU
// that does not hold its P hands it over at every entry
// (vcputhread.Entry.HandingOver), so sysmon finds no vCPU's P in KVM_RUN to
// take, whatever the runs' lengths. Halts of 1 ms and 12 ms in turn are
// what the ordinary entry lost to: a long run hands the next entry's P
// over, the short run after it brings the ordinary entry back, and the next
// long run kept its P in KVM_RUN until sysmon took it at 10 ms, each take
// setting sysmon polling every 20 µs again: in the lab sysmon switched
// 1,630 times a second so, and 98 with the hand-over.
func TestSysmonLeavesAVCPUBesideADeviceAlone(t *testing.T) {
	vm, v := newVirqVM(t, Config{MemorySize: 2 << 20, Logger: quiet})
	wake := startHalting(t, vm, v, 1000)
	startDeviceThread(t)
	gaps := [2]time.Duration{time.Millisecond, 12 * time.Millisecond}
	i := 0
	halt := func() {
		wake(gaps[i%2])
		i++
	}
	for range 6 { // past sysmon's first looks
		halt()
	}
	n, perSec, wakes := sysmonWhile(t, halt)
	t.Logf("sysmon switched %d times (%.0f/s); %d halts of %v and %v in turn, beside a device thread", n, perSec, wakes, gaps[0], gaps[1])
	if perSec > 1000 {
		t.Errorf("sysmon switched %.0f times a second beside a vCPU halting %v and %v in turn while a device thread runs: it keeps taking the vCPU's P", perSec, gaps[0], gaps[1])
	}
}

// startHalting runs the virq guest on vm, taking up to n interrupts on
// v's vector, and returns wake: it raises the interrupt, waits for the
// guest to report it, and sleeps gap, so the guest halts about gap at a
// time.
func startHalting(t *testing.T, vm *VM, v *eventfd.MSIVector, n int) (wake func(gap time.Duration)) {
	t.Helper()
	reports, done := startVirq(t, vm, n)
	if got := <-reports; got != 0 {
		t.Fatalf("guest reported %d, want 0 (ready)", got)
	}
	return func(gap time.Duration) {
		if err := v.Signal(); err != nil {
			t.Fatal(err)
		}
		select {
		case <-reports:
		case res := <-done:
			t.Fatalf("guest ended with %v", res)
		case <-time.After(10 * time.Second):
			t.Fatal("the guest did not report its interrupt")
		}
		// This goroutine, woken by its timer, runs in the time slice of
		// whoever woke it, and sysmon would take its P in the eventfd's
		// write as well: a yield keeps the count the vCPU's.
		runtime.Gosched()
		time.Sleep(gap)
	}
}

// sysmonWhile calls step for a second and counts sysmon's context switches
// meanwhile: how many, how many a second, and how many steps.
func sysmonWhile(t *testing.T, step func()) (n uint64, perSec float64, steps int) {
	t.Helper()
	before, err := threadstat.Sysmon()
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	for ; time.Since(start) < time.Second; steps++ {
		step()
	}
	d := time.Since(start)
	after, err := threadstat.Sysmon()
	if err != nil {
		t.Fatal(err)
	}
	n = after.Switches - before.Switches
	return n, float64(n) / d.Seconds(), steps
}

// startDeviceThread runs a stand-in for a device's own thread, as the net
// device's loop is one until the test ends: a locked goroutine, counted in
// sysmon.Budget as a device thread, that sleeps 1 ms at a time in a system
// call holding its P and goes through the scheduler every 2 ms (an
// unlocked sysmon.Pacer, the net device's), so sysmon does not take its P
// while the thread gets a CPU.
func startDeviceThread(t *testing.T) {
	stop, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		sysmon.Budget.Start(sysmon.Device)
		defer sysmon.Budget.End(sysmon.Device)
		pace := sysmon.NewUnlockedPacer(sysmon.TicksPerMs())
		nap := unix.Timespec{Nsec: int64(time.Millisecond)}
		for {
			select {
			case <-stop:
				return
			default:
			}
			unix.Nanosleep(&nap, nil)
			pace.Maybe(sysmon.Cputicks())
		}
	}()
	t.Cleanup(func() {
		close(stop)
		<-done
	})
}

// contextSwitches sums voluntary_ctxt_switches over this process's threads.
func contextSwitches(t *testing.T) uint64 {
	t.Helper()
	paths, err := filepath.Glob("/proc/self/task/*/status")
	if err != nil {
		t.Fatal(err)
	}
	var sum uint64
	for _, p := range paths {
		n, err := switchesIn(p, "voluntary_ctxt_switches")
		if err != nil {
			continue // the thread ended
		}
		sum += n
	}
	return sum
}

// switchesIn sums the fields named keys (context-switch counts) of the
// /proc status file at path.
func switchesIn(path string, keys ...string) (uint64, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	var sum uint64
	for _, line := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if ok && slices.Contains(keys, k) {
			n, _ := strconv.ParseUint(strings.TrimSpace(v), 10, 64)
			sum += n
		}
	}
	return sum, nil
}
