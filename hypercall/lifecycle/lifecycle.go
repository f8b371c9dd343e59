// Package lifecycle is the life cycle ACRN v2.6 gives a VM that its Service
// VM creates (a post-launched VM, HC_CREATE_VM): created, running, paused,
// powered off, and which hypercall may move it where. START only from
// created; PAUSE from anywhere (a no-op but from running and created); RESET
// and DESTROY only when paused or powered off; RESET back to created.
//
// ACRN has no state for a VM whose guest powers off by itself (its device
// model sees the guest's request and pauses the VM); in ember that run is
// over, and a Life reports the VM powered off and treats it as paused.
package lifecycle

import "ember/hv"

// State is a post-launched VM's state (ACRN's VM_CREATED, VM_RUNNING,
// VM_PAUSED, VM_POWERED_OFF).
type State int

// The states.
const (
	Created State = iota
	Running
	Paused
	PoweredOff
)

// String names the state as ember's API shows it.
func (s State) String() string {
	switch s {
	case Created:
		return "created"
	case Running:
		return "running"
	case Paused:
		return "paused"
	case PoweredOff:
		return "powered-off"
	}
	return "state?"
}

// Machine is what a Life needs of the VM: a run of its vCPUs in the
// background, and pausing them. *hv.VM has it.
type Machine interface {
	Start() *hv.Background
	Pause()
	Resume()
}

// Life is one VM's life cycle and its runs. It is not safe for concurrent
// use: the caller serialises the hypercalls that change a VM (and holds the
// same lock to read it), while the run itself goes on without the lock.
type Life struct {
	m       Machine
	state   State
	run     *hv.Background // the run Start started; nil before it and after EndRun
	lastRun *hv.Background // the latest run, kept across EndRun
	dead    bool
}

// New returns the life cycle of m, in the created state.
func New(m Machine) *Life { return &Life{m: m} }

// State returns the state, with a run that ended on its own (the guest
// exited, shut down or failed) seen as powered off.
func (l *Life) State() State {
	if (l.state == Running || l.state == Paused) && l.run != nil && l.run.Finished() {
		l.state = PoweredOff
	}
	return l.state
}

// Running reports whether a run Start started is still going.
func (l *Life) Running() bool { return l.run != nil && !l.run.Finished() }

// Stopped reports whether the VM may be reset or destroyed: paused, as ACRN
// asks, or powered off.
func (l *Life) Stopped() bool {
	s := l.State()
	return s == Paused || s == PoweredOff
}

// Start starts a run of a created VM and reports true, or reports false in
// any other state (ACRN v2.6 answers -EPERM: a paused VM is reset before it
// starts again).
func (l *Life) Start() bool {
	if l.State() != Created {
		return false
	}
	l.run = l.m.Start()
	l.lastRun, l.state = l.run, Running
	return true
}

// Pause stops a running VM's vCPUs, and makes a created VM paused without
// having run; a paused or powered-off VM stays as it is.
func (l *Life) Pause() {
	switch l.State() {
	case Running:
		l.m.Pause()
		l.state = Paused
	case Created:
		l.state = Paused
	}
}

// EndRun ends the run Start started, if any, and waits for it: the first
// step of a reset. The state is left as it was until Recreated.
func (l *Life) EndRun() {
	if l.run == nil {
		return
	}
	l.run.Stop()
	l.m.Resume() // a paused VM must not start its next run paused
	l.run = nil
}

// Recreated puts the VM back in the created state once a reset has given
// it its power-on state: it can be started again.
func (l *Life) Recreated() { l.state = Created }

// Kill marks the VM dead and ends its run, pausing it first, and reports
// false if it was dead already. The caller then closes the VM.
func (l *Life) Kill() bool {
	if l.dead {
		return false
	}
	l.dead = true
	if l.Running() {
		l.m.Pause()
	}
	if l.run != nil {
		l.run.Stop()
		l.m.Resume()
	}
	return true
}

// Dead reports whether Kill has run.
func (l *Life) Dead() bool { return l.dead }

// Run returns the run Start started, or nil before it and after EndRun.
func (l *Life) Run() *hv.Background { return l.run }

// LastResult returns how the latest run ended, kept across a reset, and
// false while it goes on or if there was none.
func (l *Life) LastResult() (hv.Result, bool) {
	if l.lastRun == nil || !l.lastRun.Finished() {
		return hv.Result{}, false
	}
	return Result(l.lastRun), true
}

// Result waits for run b to end and returns how it ended, Run's own failure
// as a hv.StopError.
func Result(b *hv.Background) hv.Result {
	res, err := b.Wait()
	if err != nil {
		res = hv.Result{Reason: hv.StopError, Err: err}
	}
	return res
}
