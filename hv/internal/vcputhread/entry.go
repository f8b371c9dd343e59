package vcputhread

import (
	"os"
	"strings"

	"ember/kvm"
)

// How a vCPU thread enters the guest: keeping its P, the ordinary way, or
// handing its P over at once.
//
// Go brackets every system call with entersyscall and exitsyscall so that
// the P of a thread blocked in the kernel can serve other goroutines. For a
// vCPU that exits every few microseconds that bracket is pure cost, and
// under nested virtualization (the lab), where the runtime's instructions
// are emulated, it is a large one: a bare KVM_RUN loop in Go measured 1.11×
// (PIO) and 1.14× (MMIO) the C loop through the bracket and 1.02× and 1.07×
// without it (medians of 10 interleaved runs each). So a vCPU whose guest
// keeps exiting quickly enters with kvm.VCPU.RunHoldingP and keeps its P —
// the P sysmon.Budget added to the process for that vCPU, so the goroutines
// that serve devices keep theirs (sysmon.Procs.TryHold).
//
// A guest that halts or computes for long would keep that P from the
// scheduler for as long, and sysmon would interrupt it every 10 ms to get
// it back. So the first long run, or any signal (sysmon's or the garbage
// collector's preemption, a Kick), puts the vCPU back on the ordinary
// path, and only a streak of short runs brings it to the holding one again.
// Runs are timed in TSC ticks, read once an exit for this and the yield
// (yield.go).
//
// At the other end, a guest that halts for long keeps its P through the
// ordinary entry as well, until sysmon finds the call has lasted 10 ms and
// takes the P; each such take sets sysmon polling every 20 µs again, about
// fifty wake-ups a halt: with a guest halting 20 ms at a time sysmon
// switched some 2,200 times a second, and with one halting 15 ms at a time
// 3,400 (TestSysmonLeavesAHaltingVCPUAlone, and a throwaway variant of it:
// docs/performance-log.md). So after
// a run of longRunMicros or more the vCPU enters with
// kvm.VCPU.RunHandingOverP, whose P goes to the scheduler at once, and the
// first shorter run brings it back to the ordinary entry. The hand-over's
// cost, an idle P taken under the scheduler's lock at the exit, is small
// beside a run that long.
//
// The ordinary entry has a price of its own. sysmon takes a P from a thread
// in a system call that has lasted 10 ms, or whose P has not been through
// the scheduler for 10 ms, whatever the call's own length, and each take
// sets it polling every 20 µs again, some fifty wake-ups. A vCPU on the
// ordinary path goes through the scheduler only at its yield (yield.go),
// which comes at an exit, so a run that starts late in the yield's 8 ms,
// or lasts 10 ms, is taken. The ordinary entry is there to keep a P in
// use: with every P idle sysmon sleeps deeply, and each exit that takes an
// idle P would wake it. But while a device thread runs
// (sysmon.Procs.DeviceAwake) its P is in use through its waits, so there a
// vCPU that does not hold its P hands it over at every entry instead.
// TestSysmonLeavesAVCPUBesideADeviceAlone (package hv) has a guest halt
// 1 ms and 12 ms in turn beside a device thread: in the lab sysmon
// switched 1,630 times a second with the ordinary entry after the short
// halts, 98 with the hand-over. The yield stays: the P a thread takes at
// the exit has not been through the scheduler since it went idle, so
// sysmon would find it due at once (a trial without the yield was taken
// from more often and streamed 0.88 of the build before;
// docs/performance-log.md).

// Tunables of the entry policy.
const (
	shortRunMicros = 500  // a run shorter than this is short
	holdAfterShort = 16   // consecutive short runs before the vCPU holds its P
	longRunMicros  = 3000 // a run this long or longer is long: the next entry hands its P over
)

// asyncPreemption reports whether Go may interrupt a goroutine with a
// signal: without that (GODEBUG=asyncpreemptoff=1) nothing would take a P
// back from a halted guest, and the garbage collector would wait for it.
func asyncPreemption() bool {
	on := true
	for _, kv := range strings.Split(os.Getenv("GODEBUG"), ",") {
		if v, ok := strings.CutPrefix(kv, "asyncpreemptoff="); ok {
			on = v == "0" // the last setting wins, as in the runtime
		}
	}
	return on
}

// HoldingAllowed is asyncPreemption, read once: the runtime reads GODEBUG
// once at start too.
var HoldingAllowed = asyncPreemption()

// Holds is the budget of Ps a vCPU may hold in the guest: sysmon.Budget,
// or a fake in tests.
type Holds interface {
	TryHold() bool     // counts one more holder if a P is to spare, and reports whether it was
	Release()          // counts one holder fewer
	DeviceAwake() bool // a device thread keeps a P in use, so sysmon stays out of its deep sleep
}

// Entry is one vCPU thread's choice of entry: the loop enters with
// kvm.VCPU.RunHoldingP while held is set, with kvm.VCPU.RunHandingOverP
// while HandingOver says so, else with kvm.VCPU.Run.
type Entry struct {
	budget   Holds
	short    int64 // shortRunMicros in TSC ticks; 0: never hold
	long     int64 // longRunMicros in TSC ticks; 0: never hand over
	held     bool  // entering with RunHoldingP, counted in budget
	handOver bool  // the last run was long: entering with RunHandingOverP
	streak   int   // short runs in a row on the ordinary path
}

// NewEntry sizes the short and long runs from the TSC frequency KVM
// reports for the vCPU. Where KVM cannot say, the vCPU always enters the
// ordinary way; where preemption is off, it never holds its P.
func NewEntry(c *kvm.VCPU, b Holds) Entry {
	khz, err := c.TSCKHz()
	if err != nil {
		khz = 0
	}
	return newEntry(int64(khz), b, HoldingAllowed)
}

// newEntry is NewEntry for a TSC of khz kHz (0: not known).
func newEntry(khz int64, b Holds, holding bool) Entry {
	e := Entry{budget: b, long: khz * longRunMicros / 1000}
	if holding {
		e.short = khz * shortRunMicros / 1000
	}
	return e
}

// Ran records one run that ended with reason r, d TSC ticks after the one
// before it ended (the run, and the handling of the exit before it: the
// loop reads the TSC once an exit, and again after a yield, whose time is
// not the run's: Yield.Maybe). A run is short if it ended in an exit
// of the guest's (not a signal) within e.short. The common case, holding
// and short, is decided inline.
func (e *Entry) Ran(r kvm.ExitReason, d int64) {
	short := r != kvm.ExitIntr && uint64(d) < uint64(e.short) // a TSC gone backwards is long
	if e.held && short {
		return
	}
	e.change(short, d)
}

// change is Ran's other cases: a held vCPU's long run gives the P back; on
// the ordinary path a long run ends the streak and a short one extends it.
// A run of e.long or more, whatever ended it, has the next entry hand its
// P over.
func (e *Entry) change(short bool, d int64) {
	e.handOver = e.long != 0 && uint64(d) >= uint64(e.long) // a TSC gone backwards is long
	switch {
	case e.held:
		e.Drop()
	case !short:
		e.streak = 0
	default:
		if e.streak++; e.streak >= holdAfterShort {
			e.streak = 0
			e.held = e.budget.TryHold()
		}
	}
}

// Drop returns the vCPU to the ordinary path; the loop calls it when the
// thread leaves the guest for good.
func (e *Entry) Drop() {
	if e.held {
		e.held = false
		e.budget.Release()
	}
}

// Holding reports whether the next entry should keep the thread's P
// (kvm.VCPU.RunHoldingP) rather than hand it over (kvm.VCPU.Run).
func (e *Entry) Holding() bool { return e.held }

// HandingOver reports whether the next entry should hand the thread's P
// over at once (kvm.VCPU.RunHandingOverP): the vCPU does not hold its P,
// and the last run was long or a device thread keeps sysmon awake.
func (e *Entry) HandingOver() bool {
	return !e.held && (e.handOver || e.budget.DeviceAwake())
}
