package vcputhread

import (
	"runtime"
	_ "unsafe" // go:linkname

	"ember/kvm"
)

// How a vCPU thread keeps Go's sysmon from taking its P again and again.
//
// A goroutine in a system call keeps its P (processor), and sysmon, the
// runtime's monitor thread, looks at every P on each of its wake-ups. A P
// whose goroutine has not been through the scheduler for 10 ms is due for
// preemption; if that goroutine is in a system call at the look, sysmon
// takes the P from it. A vCPU loop never goes through the scheduler — it
// never blocks, it enters KVM_RUN and comes back — so once it has run for
// 10 ms every look finds it due: sysmon takes its P in nearly every
// KVM_RUN, the vCPU gets an idle P back at each exit through the runtime's
// slow path, and sysmon, having found work, looks again 20 µs later rather
// than backing off to 10 ms. In the lab a bare KVM_RUN loop in Go spent
// more samples in sysmon's clock reads and sleeps (read_hpet, task
// switches) than in its own system-call path.
//
// So the loop goes through the scheduler (runtime.Gosched) at the first
// exit after yieldEveryMs since it last did, which, for a vCPU that exits
// more often than sysmon's 10 ms, sysmon sees as a goroutine that is never
// due. The interval is measured in TSC ticks (Cputicks: a register read,
// where a clock read can be a system call); a vCPU that stays in the guest
// makes no exits to check at, and sysmon takes its P once, not again and
// again.

// yieldEveryMs is how often, at most, a running vCPU thread goes through the
// scheduler. sysmon starts a goroutine's 10 ms when it first sees the P's
// new scheduling tick, never before the yield that made it, so any interval
// under 10 ms keeps the goroutine from falling due; 8 ms leaves 2 ms for the
// yield's own hand-off and for an exit that comes late. No more often than
// that: a Gosched on a thread-locked goroutine hands the thread to another
// M and back, two wake-ups, which cost 20–50 µs on this host and 200 µs in
// the lab, where at 5 ms the yields took 4–5 % of a busy vCPU's time and at
// 8 ms 3 % (ticks counted around the yield, 32,000-exit runs of
// bench_pio.rom).
const yieldEveryMs = 8

// Cputicks reads the CPU's timestamp counter (RDTSC on x86).
//
//go:linkname Cputicks runtime.cputicks
func Cputicks() int64

// Yield is one vCPU thread's yield schedule.
type Yield struct {
	every int64 // yieldEveryMs in TSC ticks; 0: never yield
	last  int64 // Cputicks at the last yield
}

// NewYield sizes the interval from the TSC frequency KVM reports for
// the vCPU (the host's: ember sets no other). If KVM cannot say, the vCPU
// never yields, as before.
func NewYield(c *kvm.VCPU) Yield {
	y := Yield{last: Cputicks()}
	if khz, err := c.TSCKHz(); err == nil && khz > 0 {
		y.every = int64(khz) * yieldEveryMs
	}
	return y
}

// Maybe goes through the scheduler if the interval has passed since the
// last time; now is the TSC (Cputicks) read after the vCPU's latest exit. A
// TSC that went backwards (another CPU's) counts as passed. Small enough to
// be inlined into the exit loop; the yield itself is not.
//
// It returns the TSC the loop times its next run from — now, or the TSC
// read after the yield, since the yield is not guest time — and whether it
// yielded. A
// yield takes about 200 µs in the lab and now and then more than the entry
// policy's 500 µs, and counted into the next run it made that run long
// and sent the vCPU back to the ordinary entry for a streak of 16 runs
// (entry.go): a fifth to a third of the exit benchmarks' KVM_RUN samples
// were on that path before (perf in the lab, bench_pio.rom and
// bench_mmio.rom).
func (y *Yield) Maybe(now int64) (int64, bool) {
	if y.every != 0 && uint64(now-y.last) >= uint64(y.every) {
		return y.yield(), true
	}
	return now, false
}

// yield goes through the scheduler, restarts the interval and returns the
// TSC read after it.
func (y *Yield) yield() int64 {
	runtime.Gosched()
	y.last = Cputicks()
	return y.last
}
