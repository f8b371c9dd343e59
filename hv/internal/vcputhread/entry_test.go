package vcputhread

import (
	"testing"

	"ember/kvm"
)

// fakeHolds is a budget with spare Ps to hold, counting its holders;
// awake stands for a device thread that runs.
type fakeHolds struct {
	spare, held int
	awake       bool
}

func (f *fakeHolds) TryHold() bool {
	if f.held >= f.spare {
		return false
	}
	f.held++
	return true
}

func (f *fakeHolds) Release() { f.held-- }

func (f *fakeHolds) DeviceAwake() bool { return f.awake }

// TestEntryPolicy: a vCPU holds its P only after a streak of short runs,
// gives it back at the first long run or signal, and never holds one the
// budget cannot spare; after a long run, and only then, it hands its P over
// as it enters.
func TestEntryPolicy(t *testing.T) {
	const short, medium, long = 10, 300, 1000 // TSC ticks; the policy's bounds are 100 and 500
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
		handOver bool // handing over after the runs
	}{
		{"first runs", shorts(holdAfterShort - 1), false, false, false},
		{"a streak of short runs", shorts(holdAfterShort), false, true, false},
		{"a long run breaks the streak", append(append(shorts(holdAfterShort-1), run{kvm.ExitIO, long}), shorts(holdAfterShort-1)...), false, false, false},
		{"a signal breaks the streak", append(append(shorts(holdAfterShort-1), run{kvm.ExitIntr, short}), shorts(holdAfterShort-1)...), false, false, false},
		{"holding, a long run gives the P back and hands the next over", append(shorts(holdAfterShort), run{kvm.ExitMMIO, long}), false, false, true},
		{"holding, a medium run gives the P back", append(shorts(holdAfterShort), run{kvm.ExitMMIO, medium}), false, false, false},
		{"a long run hands the next entry's P over", []run{{kvm.ExitIO, long}}, false, false, true},
		{"a long run ended by a signal too", []run{{kvm.ExitIntr, long}}, false, false, true},
		{"a short run after a long one takes the ordinary entry", []run{{kvm.ExitIO, long}, {kvm.ExitIO, short}}, false, false, false},
		{"a medium run after a long one takes the ordinary entry", []run{{kvm.ExitIO, long}, {kvm.ExitIO, medium}}, false, false, false},
		{"holding, a signal gives the P back", append(shorts(holdAfterShort), run{kvm.ExitIntr, short}), false, false, false},
		{"holding stays while runs are short", shorts(5 * holdAfterShort), false, true, false},
		{"back after another streak", append(append(shorts(holdAfterShort), run{kvm.ExitIntr, short}), shorts(holdAfterShort)...), false, true, false},
		{"a TSC that went backwards is long", append(shorts(holdAfterShort), run{kvm.ExitIO, -5}), false, false, true},
		{"no P to spare", shorts(3 * holdAfterShort), true, false, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b := &fakeHolds{}
			if !tc.noBudget {
				b.spare = 1 // this vCPU's thread: one P to spare
			}
			e := Entry{budget: b, short: 100, long: 500}
			for _, r := range tc.runs {
				e.Ran(r.r, r.d)
			}
			if e.Holding() != tc.want {
				t.Errorf("holding = %v, want %v", e.Holding(), tc.want)
			}
			if e.HandingOver() != tc.handOver {
				t.Errorf("handing over = %v, want %v", e.HandingOver(), tc.handOver)
			}
			if e.Holding() && e.HandingOver() {
				t.Error("holding and handing over at once")
			}
			if want := map[bool]int{false: 0, true: 1}[tc.want]; b.held != want {
				t.Errorf("budget counts %d holders, want %d", b.held, want)
			}
			e.Drop()
			if b.held != 0 {
				t.Errorf("after drop the budget counts %d holders", b.held)
			}
		})
	}
}

// TestEntryHandsOverWhileADeviceRuns: while a device thread keeps a P in
// use, a vCPU that does not hold its P hands it over at every entry, after
// short runs and medium ones alike, and still comes to hold it after a
// streak of short runs; once the device thread ends, the ordinary entry
// is back.
func TestEntryHandsOverWhileADeviceRuns(t *testing.T) {
	b := &fakeHolds{spare: 1, awake: true}
	e := Entry{budget: b, short: 100, long: 500}
	if !e.HandingOver() {
		t.Fatal("first entry with a device thread awake: not handing over")
	}
	for i, d := range []int64{300, 10, 300, 10} {
		if e.Ran(kvm.ExitIO, d); !e.HandingOver() || e.Holding() {
			t.Fatalf("after run %d (%d ticks): handing over %v, holding %v; want handing over only", i, d, e.HandingOver(), e.Holding())
		}
	}
	for range holdAfterShort {
		e.Ran(kvm.ExitIO, 10)
	}
	if !e.Holding() || e.HandingOver() {
		t.Fatalf("after a streak of short runs: holding %v, handing over %v; want holding only", e.Holding(), e.HandingOver())
	}
	e.Ran(kvm.ExitIO, 300) // gives the P back
	b.awake = false
	if e.Holding() || e.HandingOver() {
		t.Fatalf("device thread gone, after a medium run: holding %v, handing over %v; want the ordinary entry", e.Holding(), e.HandingOver())
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

// TestNewEntrySizes: the bounds follow the TSC's rate; with no rate the
// vCPU always enters the ordinary way, and with preemption off it still
// hands its P over after a long run but never holds one.
func TestNewEntrySizes(t *testing.T) {
	for _, tc := range []struct {
		khz             int64
		holding         bool
		wantShort, long int64
	}{
		{2_000_000, true, 2_000_000 * shortRunMicros / 1000, 2_000_000 * longRunMicros / 1000},
		{2_000_000, false, 0, 2_000_000 * longRunMicros / 1000},
		{0, true, 0, 0},
	} {
		e := newEntry(tc.khz, &fakeHolds{}, tc.holding)
		if e.short != tc.wantShort || e.long != tc.long {
			t.Errorf("newEntry(%d kHz, holding %v): short %d, long %d; want %d, %d", tc.khz, tc.holding, e.short, e.long, tc.wantShort, tc.long)
		}
	}
}
