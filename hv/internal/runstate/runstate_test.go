package runstate

import (
	"testing"
	"time"
)

// TestSleepAndPauseAreIndependent drives the run-state machine (no KVM) as
// a guest's sleep, its wake and the host's pause and resume would, and
// checks when a parked vCPU may enter the guest again: only once neither a
// pause nor a sleep holds it.
func TestSleepAndPauseAreIndependent(t *testing.T) {
	type step func(r *Control)
	pause := func(r *Control) { r.Request(true) }
	resume := func(r *Control) { r.Request(false) }
	sleep := func(r *Control) { r.Sleep(true) }
	wake := func(r *Control) { r.Sleep(false) }
	tests := []struct {
		name    string
		steps   []step
		runs    bool // the parked vCPU runs again
		paused  bool
		asleep  bool
		flagSet bool // what the vCPU loop sees on its next exit
	}{
		{"sleep parks", []step{sleep}, false, false, true, true},
		{"wake releases", []step{sleep, wake}, true, false, false, false},
		{"the host's resume does not end a sleep", []step{sleep, pause, resume}, false, false, true, true},
		{"a wake does not end the host's pause", []step{pause, sleep, wake}, false, true, false, true},
		{"wake, then the host's resume", []step{pause, sleep, wake, resume}, true, false, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var r Control
			r.Init(1)
			r.Set(0, Running)
			stopped := make(chan struct{})
			defer close(stopped)
			tt.steps[0](&r)
			released := make(chan bool, 1)
			go func() { released <- r.Park(0, stopped) }()
			awaitState(t, &r, Parked)
			if r.Sleeping() && !r.WaitParked() {
				t.Fatal("waitParked says awake while asleep")
			}
			for _, s := range tt.steps[1:] {
				s(&r)
			}
			if r.Paused() != tt.paused || r.Sleeping() != tt.asleep || r.PauseRequested() != tt.flagSet {
				t.Errorf("paused %v, asleep %v, loop flag %v; want %v, %v, %v",
					r.Paused(), r.Sleeping(), r.PauseRequested(), tt.paused, tt.asleep, tt.flagSet)
			}
			if !tt.runs {
				// park returns only once neither flag holds it, both read
				// under r.mu: with one still set it cannot have returned.
				select {
				case ok := <-released:
					t.Errorf("the vCPU left its park (run %v); want it held", ok)
				default:
				}
				return
			}
			select {
			case ok := <-released:
				if !ok {
					t.Error("park says the run stopped")
				}
			case <-time.After(5 * time.Second):
				t.Error("the vCPU is still parked; want it running")
			}
		})
	}
}

// awaitState waits until vCPU 0 is in state s: every change is broadcast.
func awaitState(t *testing.T, r *Control, s State) {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	for r.states[0] != s {
		r.cond.Wait()
	}
}
