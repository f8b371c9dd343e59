package ioreq

import (
	"testing"
	"time"
)

// TestPollWindowAdapts: a wake-up soon after the window grows it up to
// MaxPollWindow; one long after shrinks it back to its floor; a negative
// floor never polls.
func TestPollWindowAdapts(t *testing.T) {
	p := NewPollWindow(DefaultPollWindow)
	steps := []struct {
		late time.Duration
		want time.Duration
	}{
		{0, 2 * DefaultPollWindow},
		{100 * time.Microsecond, 4 * DefaultPollWindow},
		{MaxPollWindow, 8 * DefaultPollWindow},
		{0, 16 * DefaultPollWindow},
		{0, 32 * DefaultPollWindow},
		{0, MaxPollWindow},
		{0, MaxPollWindow},
		{time.Second, MaxPollWindow / 2},
		{time.Second, MaxPollWindow / 4},
		{time.Hour, MaxPollWindow / 8},
	}
	for i, s := range steps {
		p.Slept(s.late)
		if got := p.Get(); got != s.want {
			t.Fatalf("step %d (woken %v late): window %v, want %v", i, s.late, got, s.want)
		}
	}
	for range 10 {
		p.Slept(time.Hour)
	}
	if got := p.Get(); got != DefaultPollWindow {
		t.Errorf("after long sleeps the window is %v, want its floor %v", got, DefaultPollWindow)
	}
	off := NewPollWindow(-1)
	off.Slept(0)
	if got := off.Get(); got != 0 {
		t.Errorf("a disabled window polls for %v", got)
	}
}
