package sysmon

import (
	"testing"
	"time"
)

// TestPacerYieldsOnlyWhenDue: the interval is honoured, a TSC that went
// backwards counts as due rather than as never, and no interval means no
// yield.
func TestPacerYieldsOnlyWhenDue(t *testing.T) {
	now := Cputicks()
	tests := []struct {
		name  string
		every int64
		last  int64
		want  bool
	}{
		{"not due", 1 << 62, now, false},
		{"due", 1, now - 1000, true},
		{"TSC went backwards", 1 << 62, now + 1<<40, true},
		{"no interval", 0, now - 1<<40, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := Pacer{every: tc.every, last: tc.last}
			now := Cputicks()
			after, yielded := p.Maybe(now)
			if yielded != tc.want {
				t.Errorf("yielded = %v, want %v", yielded, tc.want)
			}
			if moved := p.last != tc.last; moved != tc.want {
				t.Errorf("interval restarted = %v, want %v", moved, tc.want)
			}
			// The loop times its next step from the returned TSC: the
			// yield's own time is not part of it.
			switch {
			case !yielded && after != now:
				t.Errorf("no yield, but the loop's clock moved from %d to %d", now, after)
			case yielded && after != p.last:
				t.Errorf("yielded, but the loop's clock is %d, not the TSC read after the yield (%d)", after, p.last)
			}
		})
	}
}

// TestNewPacerInterval: the interval is EveryMs at the rate given; a rate
// not known makes a Pacer that never yields.
func TestNewPacerInterval(t *testing.T) {
	for _, tc := range []struct {
		rate, want int64
	}{
		{2_000_000, 2_000_000 * EveryMs},
		{0, 0},
		{-1, 0},
	} {
		if got := NewPacer(tc.rate).every; got != tc.want {
			t.Errorf("NewPacer(%d).every = %d, want %d", tc.rate, got, tc.want)
		}
	}
}

// TestTicksPerMsMatchesTheClock: the measured rate counts the ticks of a
// sleep measured again now, within 5 % (a sleep of 50 ms, long beside
// both clocks' reads).
func TestTicksPerMsMatchesTheClock(t *testing.T) {
	rate := TicksPerMs()
	if rate <= 0 {
		t.Fatalf("TicksPerMs() = %d", rate)
	}
	t0, c0 := time.Now(), Cputicks()
	time.Sleep(50 * time.Millisecond)
	ticks, elapsed := Cputicks()-c0, time.Since(t0)
	want := float64(ticks) / (float64(elapsed) / float64(time.Millisecond))
	if r := float64(rate) / want; r < 0.95 || r > 1.05 {
		t.Errorf("TicksPerMs() = %d, but the TSC ran at %.0f a millisecond over %v", rate, want, elapsed)
	}
	if again := TicksPerMs(); again != rate {
		t.Errorf("TicksPerMs() changed from %d to %d: it is measured once", rate, again)
	}
}
