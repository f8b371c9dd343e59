package runstate

import (
	"ember/internal/wake"
	"sync"
	"sync/atomic"
)

// State is where one vCPU's goroutine is. The transitions, each made
// under Control.mu and broadcast on its cond:
//
//	idle    ──Run starts the vCPU──────────────▶ running
//	running ──the loop sees a pause or sleep───▶ parked
//	parked  ──Resume, Wake (neither left)──────▶ running
//	running ──its request waits for a client───▶ waiting
//	waiting ──the client answers (or fails)────▶ running
//	running, parked ──the run stops────────────▶ idle
//
// Pause waits until no vCPU is running; Run returns once every vCPU is idle.
// A waiting vCPU counts as stopped: it is outside the guest and touches
// nothing until its client answers, and that client may be the one pausing
// the VM (a Service VM in HC_PAUSE_VM). When the answer comes it parks before
// entering the guest again.
type State int

const (
	Idle    State = iota // not in a run: before Run, or after it stopped
	Running              // in its loop, entering the guest
	Parked               // in its loop, waiting outside the guest for Resume
	Waiting              // in its loop, waiting for a client to complete an I/O request
)

// Control is a VM's run-state machine: what Pause and Resume ask for and
// where each vCPU is.
type Control struct {
	mu       sync.Mutex
	cond     sync.Cond // signalled on every change below; L is &mu
	paused   bool      // Pause asked, Resume not yet
	sleeping bool      // the guest is asleep (Sleep), not yet woken (Wake)
	states   []State
	// pauseFlag is paused || sleeping for the vCPU loop, which looks at it
	// on every exit without taking mu; it is written with them, under mu.
	pauseFlag atomic.Bool
}

// Init sizes the machine for n vCPUs, all idle.
func (r *Control) Init(n int) {
	r.cond.L = &r.mu
	r.states = make([]State, n)
}

// Set moves vCPU i to s and wakes whoever waits for a change.
func (r *Control) Set(i int, s State) {
	r.mu.Lock()
	r.states[i] = s
	r.cond.Broadcast()
	r.mu.Unlock()
}

// Waiting is ioreq.Config.Waiting: vCPU i starts or stops waiting for an
// I/O request's client.
func (r *Control) Waiting(i int, on bool) {
	s := Running
	if on {
		s = Waiting
	}
	r.Set(i, s)
}

// Wake lets parked vCPUs look at the world again (the run stopped).
func (r *Control) Wake() {
	r.mu.Lock()
	r.cond.Broadcast()
	r.mu.Unlock()
}

// PauseRequested reports whether a vCPU should park before its next entry.
func (r *Control) PauseRequested() bool { return r.pauseFlag.Load() }

// Park holds vCPU i outside the guest while the VM is paused. It reports
// false if the run stopped meanwhile, in which case the loop returns.
func (r *Control) Park(i int, stopped <-chan struct{}) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	for r.paused || r.sleeping {
		if wake.Closed(stopped) {
			return false
		}
		r.states[i] = Parked
		r.cond.Broadcast()
		r.cond.Wait()
	}
	r.states[i] = Running
	r.cond.Broadcast()
	return !wake.Closed(stopped)
}

// Request records a pause (on) or resume (off) request.
func (r *Control) Request(on bool) {
	r.mu.Lock()
	r.paused = on
	r.pauseFlag.Store(r.paused || r.sleeping)
	r.cond.Broadcast()
	r.mu.Unlock()
}

// Sleep puts the guest to sleep (on) or wakes it (off); it reports whether
// that changed anything.
func (r *Control) Sleep(on bool) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	was := r.sleeping
	r.sleeping = on
	r.pauseFlag.Store(r.paused || r.sleeping)
	r.cond.Broadcast()
	return was != on
}

// Paused reports whether a pause holds the vCPUs (Request(true), not yet
// withdrawn).
func (r *Control) Paused() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.paused
}

// Sleeping reports whether the guest is asleep (Sleep(true), not yet woken).
func (r *Control) Sleeping() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.sleeping
}

// WaitParked blocks until every vCPU is parked or idle, so none is in the
// guest or in a device, or until the guest is no longer asleep. It reports
// whether the guest is still asleep.
func (r *Control) WaitParked() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	for r.sleeping && !r.allParked() {
		r.cond.Wait()
	}
	return r.sleeping
}

func (r *Control) allParked() bool {
	for _, s := range r.states {
		if s != Parked && s != Idle {
			return false
		}
	}
	return true
}

// WaitQuiet blocks until no vCPU is running, or the pause was withdrawn.
func (r *Control) WaitQuiet() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for r.paused && r.anyRunning() {
		r.cond.Wait()
	}
}

func (r *Control) anyRunning() bool {
	for _, s := range r.states {
		if s == Running {
			return true
		}
	}
	return false
}
