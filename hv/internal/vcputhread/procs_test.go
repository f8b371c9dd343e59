package vcputhread

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

func TestVCPUThreadsGetPsOfTheirOwn(t *testing.T) {
	f := &fakeProcs{n: 2}
	b := Procs{set: f.set, cap: func() int { return 3 }}
	steps := []struct {
		op   string
		want int // GOMAXPROCS after the step
	}{
		{"start", 3}, {"start", 4}, {"start", 5},
		{"start", 5}, // capped at the host's 3 CPUs: base 2 + 3
		{"end", 5}, {"end", 4}, {"end", 3}, {"end", 2},
		{"start", 3}, {"end", 2},
	}
	for i, s := range steps {
		if s.op == "start" {
			b.Start()
		} else {
			b.End()
		}
		if f.n != s.want {
			t.Fatalf("step %d (%s): GOMAXPROCS %d, want %d", i, s.op, f.n, s.want)
		}
	}
	// The fourth start and the first end changed nothing: no stop-the-world.
	if f.changes != 8 {
		t.Errorf("GOMAXPROCS set %d times, want 8 (only when it changes)", f.changes)
	}
}

func TestVCPUProcsGivesBackGOMAXPROCS(t *testing.T) {
	before := runtime.GOMAXPROCS(0)
	Budget.Start()
	if got := runtime.GOMAXPROCS(0); got != before+1 {
		t.Errorf("with a vCPU thread running: GOMAXPROCS %d, want %d", got, before+1)
	}
	Budget.End()
	if got := runtime.GOMAXPROCS(0); got != before {
		t.Errorf("after it ended: GOMAXPROCS %d, want %d", got, before)
	}
}
