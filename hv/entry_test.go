package hv

import (
	"runtime"
	"strconv"
	"testing"
	"time"

	"ember/guest"
	"ember/hv/internal/vcputhread"
	"ember/internal/sysmon"
	"ember/x86"
)

// TestAHaltedGuestGivesItsPBack: a vCPU that exits all the time comes to
// hold its P; once its guest halts, the P goes back to Go's scheduler, and
// the halted vCPU's thread then sleeps in KVM, not woken by the runtime.
func TestAHaltedGuestGivesItsPBack(t *testing.T) {
	if !vcputhread.HoldingAllowed {
		t.Skip("GODEBUG=asyncpreemptoff=1: vCPUs never hold their P")
	}
	h := openHV(t)
	vm, err := h.NewVM(Config{MemorySize: 1 << 20, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer vm.Close()
	const flag = 0x600
	code := []byte{
		0xba, 0xf0, 0x04, // mov $0x4f0, %dx
		0xee,                         // again: out %al, (%dx)
		0x80, 0x3e, 0x00, 0x06, 0x00, // cmpb $0, 0x600
		0x74, 0xf8, // je again
		0xfa,       // cli
		0xf4,       // halt: hlt
		0xeb, 0xfd, // jmp halt
	}
	if err := vm.LoadImage(code, guest.LoadAddr); err != nil {
		t.Fatal(err)
	}
	if err := vm.SetEntry(0, x86.Entry{Mode: x86.RealMode, RIP: guest.LoadAddr}); err != nil {
		t.Fatal(err)
	}
	run := vm.Start()
	defer func() {
		run.Stop()
		if res, err := run.Wait(); err != nil || res.Reason != StopHost {
			t.Errorf("run ended %v %v, want StopHost", res, err)
		}
	}()
	waitUntil(t, "the exiting vCPU holds its P", func() bool { return sysmon.Budget.Holders() == 1 })
	if _, err := vm.Memory().WriteAt([]byte{1}, flag); err != nil {
		t.Fatal(err)
	}
	halted := time.Now()
	waitUntil(t, "the halted vCPU gives its P back", func() bool { return sysmon.Budget.Holders() == 0 })
	t.Logf("P given back %v after the guest was told to halt", time.Since(halted).Round(time.Millisecond))

	// Holding, sysmon would signal the thread every 10 ms (30 times here);
	// given back, it sleeps in KVM. Some slack for the moments after the
	// drop, when the thread is still on its way into the halt.
	time.Sleep(50 * time.Millisecond)
	tid := int(vm.VCPU(0).tid.Load())
	before := threadSwitches(t, tid)
	time.Sleep(300 * time.Millisecond)
	if n := threadSwitches(t, tid) - before; n > 5 {
		t.Errorf("the halted vCPU's thread was switched %d times in 300 ms: something keeps waking it", n)
	}
	// And nothing the process does waits on it.
	gcDone := make(chan struct{})
	go func() { runtime.GC(); close(gcDone) }()
	select {
	case <-gcDone:
	case <-time.After(5 * time.Second):
		t.Fatal("a garbage collection did not finish in 5 s beside a halted vCPU")
	}
}

// waitUntil polls cond every millisecond for up to 10 s.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("waited 10 s for %s", what)
		}
	}
}

// threadSwitches reads a thread's voluntary and involuntary context
// switches from /proc.
func threadSwitches(t *testing.T, tid int) uint64 {
	t.Helper()
	n, err := switchesIn("/proc/self/task/"+strconv.Itoa(tid)+"/status", "voluntary_ctxt_switches", "nonvoluntary_ctxt_switches")
	if err != nil {
		t.Fatal(err)
	}
	return n
}
