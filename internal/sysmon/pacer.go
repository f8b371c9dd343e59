// Package sysmon keeps Go's sysmon from taking, again and again, the P of
// a goroutine locked to its thread that loops in system calls: a vCPU's
// (KVM_RUN), the net device's (epoll_wait) and a device model's serving
// with the futex hand-off (FUTEX_WAIT).
//
// A goroutine in a system call keeps its P (processor), and sysmon, the
// runtime's monitor thread, looks at every P on each of its wake-ups. A P
// whose goroutine has not been through the scheduler for 10 ms is due for
// preemption; if that goroutine is in a system call at the look, sysmon
// takes the P from it. A loop on a locked thread never goes through the
// scheduler — it never blocks in Go, it makes its system call and comes
// back — so once it has run for 10 ms every look finds it due: sysmon
// takes its P in nearly every call, the thread gets an idle P back
// through the runtime's slow path (a P whose count is as stale, so due
// again), and sysmon, having found work, looks again 20 µs later rather
// than backing off to 10 ms. In the lab a bare KVM_RUN loop spent more
// samples in sysmon's clock reads and sleeps than in its own system-call
// path; on a host a device thread woken a thousand times a second kept
// sysmon switching 2,500 times a second, and 100 with a Pacer
// (TestThreadLeavesSysmonAlone in virtio/net; a device model asked a
// thousand times a second, 2,200–2,400 and 100–190:
// TestFutexServeLeavesSysmonAlone in devicemodel).
//
// So such a loop goes through the scheduler (runtime.Gosched) at the first
// chance EveryMs after it last did, which sysmon sees as a goroutine that
// is never due. The interval is measured in TSC ticks (Cputicks: a register
// read, where a clock read can be a system call: in the lab the clock is
// an emulated HPET).
//
// Such a thread also keeps a P the rest of the process cannot use, and
// sysmon takes a system call's P at once when no other is idle; so each
// one adds a P to the process while it runs (Budget, procs.go).
package sysmon

import (
	"runtime"
	_ "unsafe" // go:linkname

	"golang.org/x/sys/unix"
)

// EveryMs is how often, at most, a Pacer goes through the scheduler.
// sysmon starts a goroutine's 10 ms when it first sees the P's new
// scheduling tick, never before the yield that made it, so any interval
// under 10 ms keeps the goroutine from falling due; 8 ms leaves 2 ms for the
// yield's own hand-off and for a chance that comes late. No more often
// than that: a Gosched on a thread-locked goroutine hands the thread to
// another M and back, two wake-ups, which cost 20–50 µs on a host and
// 200 µs in the lab, where a busy vCPU spent 4–5 % of its time yielding
// at 5 ms and 3 % at 8 ms (ticks counted around the yield, 32,000-exit runs
// of bench_pio.rom).
const EveryMs = 8

// Cputicks reads the CPU's timestamp counter (RDTSC on x86).
//
//go:linkname Cputicks runtime.cputicks
func Cputicks() int64

// UnlockedEveryMs is how often, at most, an unlocked Pacer goes through the
// scheduler. Its yield wakes no other thread, so it can come often; the
// shorter the interval, the longer a wait in a system call must last to
// carry the goroutine past sysmon's 10 ms (a device's thread between
// packets: every wait that did cost sysmon a P taken and a millisecond of
// polling).
const UnlockedEveryMs = 2

// Pacer is one locked loop's yield schedule.
type Pacer struct {
	every    int64 // the interval in TSC ticks; 0: never yield
	last     int64 // Cputicks at the last yield
	unlocked bool  // yield unlocked, on the thread's own P (NewUnlockedPacer)
}

// NewPacer sizes the interval from the TSC's rate in ticks a millisecond
// (TicksPerMs, or what KVM reports for a vCPU). A rate of 0 or less, one
// that could not be learned, makes a Pacer that never yields.
func NewPacer(ticksPerMs int64) Pacer {
	p := Pacer{last: Cputicks()}
	if ticksPerMs > 0 {
		p.every = ticksPerMs * EveryMs
	}
	return p
}

// NewUnlockedPacer is NewPacer for a loop whose goroutine is locked to its
// thread for the thread's name alone, not for the thread itself (a
// device's thread, whose name ps -T shows, but which nothing else
// addresses by its id). Its yield unlocks the goroutine for the moment
// and goes through the runtime's goyield, which queues the goroutine on
// its own P and runs it again at once, on the same thread: no other thread
// is woken. A locked goroutine's Gosched hands its P to another thread to
// run the scheduler and back, which wakes it and often a spinning thread
// that finds nothing to do (TestUnlockedYieldWakesNoThread: other threads
// switched about 1.25 times a Gosched, and never at an unlocked yield). On
// the build machine, the net device's thread kicked 400 times a second from
// another process made its process switch about 920 times a second with
// the locked yield and 520 with this one (one of them each kick, the
// thread's own sleep). Now and then a spinning thread could take the
// goroutine from the queue first; it then comes back locked to that
// thread, and the loop follows it (threadname.Follow). It yields every
// UnlockedEveryMs.
func NewUnlockedPacer(ticksPerMs int64) Pacer {
	p := Pacer{last: Cputicks(), unlocked: true}
	if ticksPerMs > 0 {
		p.every = ticksPerMs * UnlockedEveryMs
	}
	return p
}

// Maybe goes through the scheduler if the interval has passed since the
// last time; now is the TSC (Cputicks) the loop read last. A TSC that went
// backwards (another CPU's) counts as passed. Small enough to be inlined
// into a loop; the yield itself is not.
//
// It returns the TSC the loop times its next step from — now, or the TSC
// read after the yield, since the yield is not the loop's work — and
// whether it yielded.
func (p *Pacer) Maybe(now int64) (int64, bool) {
	if p.every != 0 && uint64(now-p.last) >= uint64(p.every) {
		return p.yield(), true
	}
	return now, false
}

// yield goes through the scheduler, restarts the interval and returns the
// TSC read after it.
func (p *Pacer) yield() int64 {
	if p.unlocked {
		runtime.UnlockOSThread()
		goyield()
		runtime.LockOSThread()
	} else {
		runtime.Gosched()
	}
	p.last = Cputicks()
	return p.last
}

// UnlockIfMain undoes the loop's lock if its goroutine, which an unlocked
// Pacer's yield unlocks for a moment, has come to run on the process's main
// thread. Go ends the thread of a goroutine that returns locked, but it
// cannot end the main thread: it parks it for good instead, and the process
// would have lost it. Defer it after runtime.LockOSThread in a loop with an
// unlocked Pacer.
func UnlockIfMain() {
	if unix.Gettid() == unix.Getpid() {
		runtime.UnlockOSThread()
	}
}

// goyield is runtime.Gosched that queues the goroutine on its own P rather
// than the global queue and wakes no other thread to run it. The runtime
// keeps it reachable by name (gVisor uses it so).
//
//go:linkname goyield runtime.goyield
func goyield()
