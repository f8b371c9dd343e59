package hv

import (
	"os"
	"runtime"
	"sync"
)

// A vCPU's thread spends its life inside KVM_RUN, a system call, and Go's
// scheduler counts a thread in a system call as holding its P (GOMAXPROCS
// of them). With as many running vCPUs as host CPUs, every P is held by a
// vCPU thread: the devices' goroutines (a virtio queue's worker woken by an
// ioeventfd or a TAP) then wait for sysmon to take a P back, and sysmon,
// finding Ps to take at every tick, wakes every 20 µs instead of backing
// off, taking CPU from the vCPUs. So ember adds a P for each running vCPU
// thread, up to as many again as the host's CPUs, and removes it when the
// thread ends: device goroutines keep the host's CPUs' worth of Ps, and an
// idle P keeps a thread waiting in the network poller, so a kick wakes its
// worker at once. GOMAXPROCS set in the environment is left as it is.
var procs = newProcBudget(runtime.GOMAXPROCS(0), os.Getenv("GOMAXPROCS") != "", runtime.GOMAXPROCS)

// procBudget keeps GOMAXPROCS at base plus the running vCPU threads, at
// most 2×base.
type procBudget struct {
	mu    sync.Mutex
	base  int  // GOMAXPROCS before any vCPU ran
	fixed bool // the user set GOMAXPROCS: leave it
	vcpus int  // vCPU threads running
	set   func(int) int
}

func newProcBudget(base int, fixed bool, set func(int) int) *procBudget {
	return &procBudget{base: base, fixed: fixed, set: set}
}

// want is GOMAXPROCS for n running vCPU threads.
func (p *procBudget) want(n int) int { return p.base + min(n, p.base) }

// add counts delta vCPU threads starting (or, negative, ending) and sets
// GOMAXPROCS when its value changes.
func (p *procBudget) add(delta int) {
	if p.fixed {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	old := p.want(p.vcpus)
	p.vcpus += delta
	if now := p.want(p.vcpus); now != old {
		p.set(now)
	}
}
