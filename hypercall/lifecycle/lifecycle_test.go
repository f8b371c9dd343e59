package lifecycle

import (
	"context"
	"testing"

	"ember/hv"
)

// fakeMachine runs "vCPUs" that wait for their context, and records pauses.
type fakeMachine struct{ paused bool }

func (m *fakeMachine) Start() *hv.Background {
	return hv.Go(func(ctx context.Context) (hv.Result, error) {
		<-ctx.Done()
		return hv.Result{Reason: hv.StopHost}, nil
	})
}
func (m *fakeMachine) Pause()  { m.paused = true }
func (m *fakeMachine) Resume() { m.paused = false }

// TestTransitions: what each operation does from each state (ACRN v2.6).
func TestTransitions(t *testing.T) {
	type op func(l *Life) bool
	start := func(l *Life) bool { return l.Start() }
	pause := func(l *Life) bool { l.Pause(); return true }
	reset := func(l *Life) bool {
		if !l.Stopped() {
			return false
		}
		l.EndRun()
		l.Recreated()
		return true
	}
	for _, tt := range []struct {
		name   string
		ops    []op
		want   []bool
		state  State
		paused bool // the machine's vCPUs
	}{
		{"new", nil, nil, Created, false},
		{"start", []op{start}, []bool{true}, Running, false},
		{"start twice", []op{start, start}, []bool{true, false}, Running, false},
		{"pause a running VM", []op{start, pause}, []bool{true, true}, Paused, true},
		{"pause a created VM: no vCPU to stop", []op{pause}, []bool{true}, Paused, false},
		{"start a paused VM", []op{start, pause, start}, []bool{true, true, false}, Paused, true},
		{"reset a running VM", []op{start, reset}, []bool{true, false}, Running, false},
		{"reset a paused VM, start again", []op{start, pause, reset, start}, []bool{true, true, true, true}, Running, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			m := &fakeMachine{}
			l := New(m)
			defer l.Kill()
			for i, o := range tt.ops {
				if got := o(l); got != tt.want[i] {
					t.Errorf("op %d: %v, want %v", i, got, tt.want[i])
				}
			}
			if s := l.State(); s != tt.state {
				t.Errorf("state %v, want %v", s, tt.state)
			}
			if m.paused != tt.paused {
				t.Errorf("machine paused %v, want %v", m.paused, tt.paused)
			}
		})
	}
}

// TestPoweredOff: a run that ends by itself is powered off, which counts as
// stopped; its result is kept.
func TestPoweredOff(t *testing.T) {
	m := &fakeMachine{}
	l := New(m)
	if !l.Start() {
		t.Fatal("start refused")
	}
	l.Run().Stop() // the guest "exits"
	if s := l.State(); s != PoweredOff || !l.Stopped() || l.Running() {
		t.Errorf("state %v, stopped %v, running %v; want powered-off, stopped", s, l.Stopped(), l.Running())
	}
	if res, ok := l.LastResult(); !ok || res.Reason != hv.StopHost {
		t.Errorf("last result %v, %v", res, ok)
	}
	if !l.Kill() || !l.Dead() || l.Kill() {
		t.Error("Kill should succeed once and mark the life dead")
	}
}
