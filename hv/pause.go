package hv

import (
	"sync"
	"sync/atomic"
)

// pauseState parks a running VM's vCPU goroutines outside KVM_RUN. Pause sets
// paused and kicks every vCPU; a vCPU's loop sees the flag before it enters
// KVM_RUN again and waits in park until Resume closes resume or the run stops.
type pauseState struct {
	mu     sync.Mutex
	cond   *sync.Cond // signalled when parked or active changes
	paused bool
	// flag mirrors paused for the vCPU loop, which looks at it on every exit
	// without taking mu; it is written with paused, under mu.
	flag   atomic.Bool
	resume chan struct{} // closed by Resume; a new one per Pause
	active int           // vCPU goroutines of the current run still in their loop
	parked int           // of those, how many are waiting in park
}

func (p *pauseState) init() {
	if p.cond == nil {
		p.cond = sync.NewCond(&p.mu)
	}
}

// beginRun counts n vCPU goroutines about to start, so that a Pause that
// comes while Run starts them waits for them too.
func (p *pauseState) beginRun(n int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.init()
	p.active += n
}

// leave is called by a vCPU goroutine when its loop returns.
func (p *pauseState) leave() {
	p.mu.Lock()
	p.active--
	p.cond.Broadcast()
	p.mu.Unlock()
}

// park blocks while the VM is paused. It reports false if the run stopped
// meanwhile, in which case the vCPU's loop returns.
func (p *pauseState) park(stopped <-chan struct{}) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	for p.paused {
		resume := p.resume
		p.parked++
		p.cond.Broadcast()
		p.mu.Unlock()
		var ok bool
		select {
		case <-resume:
			ok = true
		case <-stopped:
		}
		p.mu.Lock()
		p.parked--
		p.cond.Broadcast()
		if !ok {
			return false
		}
	}
	return true
}

func (p *pauseState) isPaused() bool { return p.flag.Load() }

// Pause stops the VM's vCPUs without ending its run: each is kicked out of
// KVM_RUN and waits, outside the guest, until Resume. Pause returns once every
// vCPU of a running VM has stopped (or the run has ended), so guest memory and
// vCPU registers are quiet when it returns. A VM paused when Run starts keeps
// its vCPUs waiting before their first entry. In-kernel devices (the LAPIC
// timer, irqfds) keep raising interrupts; the guest takes them when it
// resumes. Pausing a paused VM does nothing.
func (vm *VM) Pause() {
	p := &vm.pause
	p.mu.Lock()
	p.init()
	if !p.paused {
		p.paused = true
		p.flag.Store(true)
		p.resume = make(chan struct{})
	}
	p.mu.Unlock()
	// A vCPU that checked the flag just before it was set is about to enter
	// KVM_RUN: the kick's immediate_exit makes that entry return at once.
	for _, c := range vm.vcpus {
		c.kvm.Kick()
	}
	p.mu.Lock()
	for p.paused && p.parked < p.active {
		p.cond.Wait()
	}
	p.mu.Unlock()
}

// Resume lets the vCPUs of a paused VM run again. It does nothing if the VM
// is not paused.
func (vm *VM) Resume() {
	p := &vm.pause
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.paused {
		p.paused = false
		p.flag.Store(false)
		close(p.resume)
	}
}

// Paused reports whether the VM is paused.
func (vm *VM) Paused() bool { return vm.pause.isPaused() }
