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

	"ember/guest"
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
	reports, done := startVirq(t, vm, 200)
	if got := <-reports; got != 0 {
		t.Fatalf("guest reported %d, want 0 (ready)", got)
	}
	wake := func() {
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
	for range 5 { // past the first long runs and sysmon's first looks
		wake()
	}
	sysmon, err := threadstat.Sysmon()
	if err != nil {
		t.Fatal(err)
	}
	start, wakes := time.Now(), 0
	for ; time.Since(start) < time.Second; wakes++ {
		wake()
	}
	after, err := threadstat.Sysmon()
	if err != nil {
		t.Fatal(err)
	}
	n, perSec := after.Switches-sysmon.Switches, 0.0
	perSec = float64(n) / time.Since(start).Seconds()
	t.Logf("sysmon switched %d times in %v (%.0f/s); %d halts of %v", n, time.Since(start).Round(time.Millisecond), perSec, wakes, gap)
	if perSec > 1000 {
		t.Errorf("sysmon switched %.0f times a second beside a vCPU halting %v at a time: it keeps taking the vCPU's P", perSec, gap)
	}
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
