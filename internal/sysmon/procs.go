package sysmon

import (
	"runtime"
	"sync"
	"sync/atomic"
)

// A thread that loops in system calls and never blocks in Go keeps its P
// (processor) through each call: a vCPU's in KVM_RUN, a device's in
// epoll_wait. To the scheduler such a P is in use, and sysmon takes it from
// a thread in a system call after 10 ms (Pacer), or at the look after the
// one that first saw the call when no other P is idle — when every P the
// process has is in use. With as many running vCPUs as Ps (two vCPUs on a
// two-CPU host) every P is held by guest code, and the goroutines that
// serve the guest's devices wait for sysmon to run at all; with the net
// device's thread holding a third, sysmon takes that thread's P tens of
// times a second in a stream, each take resetting it to looking every 20 µs
// (docs/performance-log.md, "Sysmon after all"). The guest's code and a
// device's sleep are not Go code: counting them against GOMAXPROCS is the
// mistake. So each such thread adds a P of its own to the process while it
// runs, and the other goroutines keep the Ps the process had. QEMU likewise
// runs each vCPU, and its main loop, on threads of their own beside its
// worker threads. (What the added P gives the other goroutines shows on any
// host: TestThreadLeavesTheProcessItsPs in virtio/net. In the lab it did
// not move the net device's stream either way, seven pairs against the
// build before: docs/performance-log.md, "A P of its own for the device's
// thread".)
//
// The extra Ps are capped at the host's CPU count for each kind of thread:
// a thousand tiny VMs would otherwise mean a thousand Ps (and a garbage
// collector sized for them), while no more than NumCPU vCPU threads can be
// in the guest at once, and no more than NumCPU device threads awake.
// GOMAXPROCS goes back to what it was when the last such thread ends. A
// program that embeds ember and changes GOMAXPROCS itself while VMs run
// will see ember's count replace its value until then; a GOMAXPROCS in the
// environment is the base the extra Ps are added to.

// Kind is what a thread that keeps its P is.
type Kind int

// The kinds of thread the budget counts, each capped on its own.
const (
	VCPU   Kind = iota // a vCPU's thread, in KVM_RUN; it may hold its P (TryHold)
	Device             // a device's own thread, sleeping in a system call between events
	kinds
)

// Budget is the process's one budget: every VM's vCPU and device threads
// share it.
var Budget = Procs{set: runtime.GOMAXPROCS, cap: runtime.NumCPU}

// Procs adds one P to GOMAXPROCS for each running thread of each kind, up
// to cap() per kind. set is runtime.GOMAXPROCS, a parameter for tests.
type Procs struct {
	set func(int) int
	cap func() int

	mu      sync.Mutex
	base    int          // GOMAXPROCS before the first thread started
	running [kinds]int   // threads of each kind running now
	held    int          // of the vCPU threads, those that keep their P in KVM_RUN
	devices atomic.Int32 // running[Device], for DeviceAwake to read without mu
}

// Start counts a thread of kind k that is about to start its loop.
func (b *Procs) Start(k Kind) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.total() == 0 {
		b.base = b.set(0)
	}
	b.running[k]++
	b.devices.Store(int32(b.running[Device]))
	b.apply()
}

// End counts a thread of kind k whose loop has ended.
func (b *Procs) End(k Kind) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.running[k]--
	b.devices.Store(int32(b.running[Device]))
	b.apply()
}

// total is how many threads of every kind run now.
func (b *Procs) total() int {
	n := 0
	for _, r := range b.running {
		n += r
	}
	return n
}

// added is how many Ps the budget adds to the base now.
func (b *Procs) added() int {
	n, c := 0, b.cap()
	for _, r := range b.running {
		n += min(r, c)
	}
	return n
}

// apply sets GOMAXPROCS to the base plus the added Ps, and only when that
// changes it: each change stops the world.
func (b *Procs) apply() {
	want := b.base + b.added()
	if b.set(0) != want {
		b.set(want)
	}
}

// TryHold counts one more vCPU thread that keeps its P while in the guest,
// if that leaves the process the Ps it had before any vCPU ran and the Ps
// added for device threads: a vCPU may hold only a P the budget added for
// a vCPU. It reports whether it may.
func (b *Procs) TryHold() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.held >= min(b.running[VCPU], b.cap()) {
		return false
	}
	b.held++
	return true
}

// Release counts a vCPU thread that no longer keeps its P in the guest.
func (b *Procs) Release() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.held--
}

// DeviceAwake reports whether a device thread runs now. Its P stays in use
// through its waits (sysmon takes it only by its 10 ms rules: a wait of
// over 10 ms between bursts, or a thread kept off a CPU that long, so that
// its yield comes late), so while it is busy sysmon never finds every P
// idle and never falls into its deep sleep, from which each thread that
// comes back from a system call and takes an idle P would wake it: a vCPU
// may then hand its P over at every entry (package vcputhread). It is read
// on a vCPU's exit path, without the lock; stale as soon as it is read,
// which costs at most one entry the other way.
func (b *Procs) DeviceAwake() bool { return b.devices.Load() > 0 }

// Holders reads how many vCPU threads of the budget keep their P now: a
// figure for tests and reports, stale as soon as it is read.
func (b *Procs) Holders() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.held
}
