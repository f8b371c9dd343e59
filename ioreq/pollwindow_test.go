package ioreq

import (
	"testing"
	"time"
)

// TestPollWindowAdapts: a wake-up soon after the window grows it up to
// MaxPollWindow; one long after shrinks it back to its floor; a negative
// floor never polls.
func TestPollWindowAdapts(t *testing.T) {
	p := newPollWindow(DefaultPollWindow)
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
		p.slept(s.late)
		if got := p.get(); got != s.want {
			t.Fatalf("step %d (woken %v late): window %v, want %v", i, s.late, got, s.want)
		}
	}
	for range 10 {
		p.slept(time.Hour)
	}
	if got := p.get(); got != DefaultPollWindow {
		t.Errorf("after long sleeps the window is %v, want its floor %v", got, DefaultPollWindow)
	}
	off := newPollWindow(-1)
	off.slept(0)
	if got := off.get(); got != 0 {
		t.Errorf("a disabled window polls for %v", got)
	}
}
