package vcputhread

import (
	"runtime"
	"sync"
)

// A vCPU thread in KVM_RUN is, to the Go scheduler, a goroutine in a system
// call that holds its P (processor) until sysmon takes it back, which sysmon
// does only after at least 20 µs, and then the vCPU, when its exit comes,
// finds no P free and waits for one. With as many running vCPUs as Ps (two
// vCPUs on a two-CPU host) every P is held by guest code, and the goroutines
// that serve the guest's devices — virtqueue workers, ioeventfd readers, the
// network — wait for sysmon to run at all. The guest's own code is not Go
// code: counting it against GOMAXPROCS is the mistake. So each running vCPU
// thread adds a P of its own to the process, and the device goroutines keep
// the Ps the process had. QEMU likewise runs each vCPU on a thread of its own
// beside its I/O threads.
//
// The extra Ps are capped at the host's CPU count: a thousand tiny VMs would
// otherwise mean a thousand Ps (and a garbage collector sized for them),
// while no more than NumCPU vCPU threads can be in the guest at once.
// GOMAXPROCS goes back to what it was when the last vCPU thread ends. A
// program that embeds ember and changes GOMAXPROCS itself while VMs run
// will see ember's count replace its value until then.

// Budget is the process's one budget: every VM's vCPU threads share it.
var Budget = Procs{set: runtime.GOMAXPROCS, cap: runtime.NumCPU}

// Procs adds one P to GOMAXPROCS for each running vCPU thread, up to
// cap(). set is runtime.GOMAXPROCS, a parameter for tests.
type Procs struct {
	set func(int) int
	cap func() int

	mu      sync.Mutex
	base    int // GOMAXPROCS before the first vCPU thread started
	running int // vCPU threads running now
	held    int // of them, threads that keep their P in KVM_RUN (entry.go)
}

// Start counts a vCPU thread that is about to enter the guest.
func (b *Procs) Start() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.running == 0 {
		b.base = b.set(0)
	}
	b.running++
	b.apply()
}

// End counts a vCPU thread that has left the guest for good.
func (b *Procs) End() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.running--
	b.apply()
}

// apply sets GOMAXPROCS to the base plus one per running vCPU thread, up to
// the cap, and only when that changes it: each change stops the world.
func (b *Procs) apply() {
	want := b.base + min(b.running, b.cap())
	if b.set(0) != want {
		b.set(want)
	}
}

// tryHold counts one more vCPU thread that keeps its P while in the guest,
// if that leaves the process the Ps it had before any vCPU ran: a thread may
// hold only a P the budget added for a vCPU. It reports whether it may.
func (b *Procs) tryHold() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.held >= min(b.running, b.cap()) {
		return false
	}
	b.held++
	return true
}

// release counts a thread that no longer keeps its P in the guest.
func (b *Procs) release() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.held--
}

// Holders reads how many vCPU threads of the budget keep their P now: a
// figure for tests and reports, stale as soon as it is read.
func (b *Procs) Holders() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.held
}
