package sysmon

import (
	"runtime"
	"testing"
)

// fakeProcs records GOMAXPROCS as runtime.GOMAXPROCS would, and how many
// times it was changed.
type fakeProcs struct {
	n       int
	changes int
}

func (f *fakeProcs) set(n int) int {
	old := f.n
	if n > 0 {
		f.n = n
		f.changes++
	}
	return old
}

// TestLoopingThreadsGetPsOfTheirOwn: each vCPU and device thread adds a P
// while it runs, each kind capped at the host's CPUs, and GOMAXPROCS comes
// back to where it was; DeviceAwake follows the device threads, the capped
// ones too.
func TestLoopingThreadsGetPsOfTheirOwn(t *testing.T) {
	f := &fakeProcs{n: 2}
	b := Procs{set: f.set, cap: func() int { return 3 }}
	steps := []struct {
		op   string
		k    Kind
		want int // GOMAXPROCS after the step
	}{
		{"start", VCPU, 3}, {"start", VCPU, 4}, {"start", VCPU, 5},
		{"start", VCPU, 5}, // capped at the host's 3 CPUs: base 2 + 3
		{"start", Device, 6}, {"start", Device, 7}, {"start", Device, 8},
		{"start", Device, 8}, // devices capped on their own
		{"end", VCPU, 8}, {"end", VCPU, 7}, {"end", VCPU, 6}, {"end", VCPU, 5},
		{"end", Device, 5}, {"end", Device, 4}, {"end", Device, 3},
		{"start", VCPU, 4}, // the base stays while a device thread runs
		{"end", VCPU, 3}, {"end", Device, 2},
		{"start", Device, 3}, {"end", Device, 2},
	}
	devices := 0 // device threads started and not ended
	for i, s := range steps {
		d := 1
		if s.op == "start" {
			b.Start(s.k)
		} else {
			b.End(s.k)
			d = -1
		}
		if s.k == Device {
			devices += d
		}
		if f.n != s.want {
			t.Fatalf("step %d (%s kind %d): GOMAXPROCS %d, want %d", i, s.op, s.k, f.n, s.want)
		}
		if b.DeviceAwake() != (devices > 0) {
			t.Fatalf("step %d (%s kind %d): DeviceAwake %v with %d device threads", i, s.op, s.k, b.DeviceAwake(), devices)
		}
	}
	// The capped starts and the first end of each kind changed nothing:
	// no stop-the-world.
	if f.changes != 16 {
		t.Errorf("GOMAXPROCS set %d times, want 16 (only when it changes)", f.changes)
	}
}

// TestOnlyPsAddedForVCPUsAreHeld: as many vCPU threads may hold a P as the
// budget added Ps for vCPUs, so the Ps the process had, and those added
// for device threads, stay with their goroutines.
func TestOnlyPsAddedForVCPUsAreHeld(t *testing.T) {
	f := &fakeProcs{n: 2}
	b := Procs{set: f.set, cap: func() int { return 2 }}
	b.Start(Device)
	if b.TryHold() {
		t.Fatal("a P was held with no vCPU thread running")
	}
	for range 3 {
		b.Start(VCPU)
	}
	got := 0
	for range 3 {
		if b.TryHold() {
			got++
		}
	}
	if got != 2 {
		t.Errorf("%d of 3 threads hold a P, want 2 (the cap of Ps added for vCPUs)", got)
	}
	if b.Holders() != 2 {
		t.Errorf("Holders() = %d, want 2", b.Holders())
	}
	b.Release()
	if !b.TryHold() {
		t.Error("a released P could not be held again")
	}
}

func TestProcsGivesBackGOMAXPROCS(t *testing.T) {
	before := runtime.GOMAXPROCS(0)
	for _, k := range []Kind{VCPU, Device} {
		Budget.Start(k)
		if got := runtime.GOMAXPROCS(0); got != before+1 {
			t.Errorf("with a thread of kind %d running: GOMAXPROCS %d, want %d", k, got, before+1)
		}
		Budget.End(k)
		if got := runtime.GOMAXPROCS(0); got != before {
			t.Errorf("after it ended: GOMAXPROCS %d, want %d", got, before)
		}
	}
}
