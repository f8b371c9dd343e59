package hv

import (
	"runtime"
	"strconv"
	"testing"
	"time"

	"ember/guest"
	"ember/kvm"
	"ember/x86"
)

// TestEntryPolicy: a vCPU holds its P only after a streak of short runs,
// gives it back at the first long run or signal, and never holds one the
// budget cannot spare.
func TestEntryPolicy(t *testing.T) {
	const short, long = 10, 1000 // TSC ticks; the policy's bound is 100
	type run struct {
		r kvm.ExitReason
		d int64
	}
	shorts := func(n int) []run {
		rs := make([]run, n)
		for i := range rs {
			rs[i] = run{kvm.ExitIO, short}
		}
		return rs
	}
	tests := []struct {
		name     string
		runs     []run
		noBudget bool // the budget has no P to spare
		want     bool // holding after the runs
	}{
		{"first runs", shorts(holdAfterShort - 1), false, false},
		{"a streak of short runs", shorts(holdAfterShort), false, true},
		{"a long run breaks the streak", append(append(shorts(holdAfterShort-1), run{kvm.ExitIO, long}), shorts(holdAfterShort-1)...), false, false},
		{"a signal breaks the streak", append(append(shorts(holdAfterShort-1), run{kvm.ExitIntr, short}), shorts(holdAfterShort-1)...), false, false},
		{"holding, a long run gives the P back", append(shorts(holdAfterShort), run{kvm.ExitMMIO, long}), false, false},
		{"holding, a signal gives the P back", append(shorts(holdAfterShort), run{kvm.ExitIntr, short}), false, false},
		{"holding stays while runs are short", shorts(5 * holdAfterShort), false, true},
		{"back after another streak", append(append(shorts(holdAfterShort), run{kvm.ExitIntr, short}), shorts(holdAfterShort)...), false, true},
		{"a TSC that went backwards is long", append(shorts(holdAfterShort), run{kvm.ExitIO, -5}), false, false},
		{"no P to spare", shorts(3 * holdAfterShort), true, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := &fakeProcs{n: 2}
			b := &procBudget{set: f.set, cap: func() int { return 4 }}
			if !tc.noBudget {
				b.start() // this vCPU's thread: one P to spare
			}
			e := vcpuEntry{budget: b, short: 100}
			for _, r := range tc.runs {
				e.ran(r.r, r.d)
			}
			if e.held != tc.want {
				t.Errorf("holding = %v, want %v", e.held, tc.want)
			}
			if want := map[bool]int{false: 0, true: 1}[tc.want]; b.held != want {
				t.Errorf("budget counts %d holders, want %d", b.held, want)
			}
			e.drop()
			if b.held != 0 {
				t.Errorf("after drop the budget counts %d holders", b.held)
			}
		})
	}
}

// TestOnlyAddedPsAreHeld: as many vCPU threads may hold a P as the budget
// added Ps for, so the Ps the process had stay free for its goroutines.
func TestOnlyAddedPsAreHeld(t *testing.T) {
	f := &fakeProcs{n: 2}
	b := procBudget{set: f.set, cap: func() int { return 2 }}
	if b.tryHold() {
		t.Fatal("a P was held with no vCPU thread running")
	}
	for range 3 {
		b.start()
	}
	got := 0
	for range 3 {
		if b.tryHold() {
			got++
		}
	}
	if got != 2 {
		t.Errorf("%d of 3 threads hold a P, want 2 (the cap of added Ps)", got)
	}
	b.release()
	if !b.tryHold() {
		t.Error("a released P could not be held again")
	}
}

func TestAsyncPreemptionReadsGODEBUG(t *testing.T) {
	tests := []struct {
		godebug string
		want    bool
	}{
		{"", true},
		{"asyncpreemptoff=1", false},
		{"gctrace=1,asyncpreemptoff=1", false},
		{"asyncpreemptoff=1,asyncpreemptoff=0", true},
		{"asyncpreemptoff=0", true},
	}
	for _, tc := range tests {
		t.Setenv("GODEBUG", tc.godebug)
		if got := asyncPreemption(); got != tc.want {
			t.Errorf("GODEBUG=%q: asyncPreemption() = %v, want %v", tc.godebug, got, tc.want)
		}
	}
}

// TestAHaltedGuestGivesItsPBack: a vCPU that exits all the time comes to
// hold its P; once its guest halts, the P goes back to Go's scheduler, and
// the halted vCPU's thread then sleeps in KVM, not woken by the runtime.
func TestAHaltedGuestGivesItsPBack(t *testing.T) {
	if !holdingAllowed {
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
	waitUntil(t, "the exiting vCPU holds its P", func() bool { return vcpuProcs.holders() == 1 })
	if _, err := vm.Memory().WriteAt([]byte{1}, flag); err != nil {
		t.Fatal(err)
	}
	halted := time.Now()
	waitUntil(t, "the halted vCPU gives its P back", func() bool { return vcpuProcs.holders() == 0 })
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

// holders reads how many vCPU threads of the budget keep their P now.
func (b *procBudget) holders() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.held
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
