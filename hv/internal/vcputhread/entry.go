package vcputhread

import (
	"os"
	"strings"

	"ember/kvm"
)

// How a vCPU thread enters the guest: keeping its P or handing it over.
//
// Go brackets every system call with entersyscall and exitsyscall so that
// the P of a thread blocked in the kernel can serve other goroutines. For a
// vCPU that exits every few microseconds that bracket is pure cost, and
// under nested virtualization (the lab), where the runtime's instructions
// are emulated, it is a large one: a bare KVM_RUN loop in Go measured 1.11×
// (PIO) and 1.14× (MMIO) the C loop through the bracket and 1.02× and 1.07×
// without it (medians of 10 interleaved runs each). So a vCPU whose guest
// keeps exiting quickly enters with kvm.VCPU.RunHoldingP and keeps its P —
// the P procs.go added to the process for that vCPU, so the goroutines that
// serve devices keep theirs (Procs.tryHold).
//
// A guest that halts or computes for long would keep that P from the
// scheduler for as long, and sysmon would interrupt it every 10 ms to get
// it back. So the first long run, or any signal (sysmon's or the garbage
// collector's preemption, a Kick), puts the vCPU back on the ordinary
// path, and only a streak of short runs brings it to the holding one again.
// Runs are timed in TSC ticks, read once an exit for this and the yield
// (yield.go).

// Tunables of the entry policy.
const (
	shortRunMicros = 500 // a run shorter than this is short
	holdAfterShort = 16  // consecutive short runs before the vCPU holds its P
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

// Entry is one vCPU thread's choice of entry: the loop enters with
// kvm.VCPU.RunHoldingP while held is set, else with kvm.VCPU.Run.
type Entry struct {
	budget *Procs
	short  int64 // shortRunMicros in TSC ticks; 0: never hold
	held   bool  // entering with RunHoldingP, counted in budget.held
	streak int   // short runs in a row on the ordinary path
}

// NewEntry sizes the short run from the TSC frequency KVM reports for
// the vCPU. Where KVM cannot say, or preemption is off, the vCPU always
// enters the ordinary way.
func NewEntry(c *kvm.VCPU, b *Procs) Entry {
	e := Entry{budget: b}
	if khz, err := c.TSCKHz(); err == nil && khz > 0 && HoldingAllowed {
		e.short = int64(khz) * shortRunMicros / 1000
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
	e.change(short)
}

// change is Ran's other cases: a held vCPU's long run gives the P back; on
// the ordinary path a long run ends the streak and a short one extends it.
func (e *Entry) change(short bool) {
	switch {
	case e.held:
		e.Drop()
	case !short:
		e.streak = 0
	default:
		if e.streak++; e.streak >= holdAfterShort {
			e.streak = 0
			e.held = e.budget.tryHold()
		}
	}
}

// Drop returns the vCPU to the ordinary path; the loop calls it when the
// thread leaves the guest for good.
func (e *Entry) Drop() {
	if e.held {
		e.held = false
		e.budget.release()
	}
}

// Holding reports whether the next entry should keep the thread's P
// (kvm.VCPU.RunHoldingP) rather than hand it over (kvm.VCPU.Run).
func (e *Entry) Holding() bool { return e.held }
