package vcputhread

import "testing"

// TestVCPUYieldOnlyWhenDue: the interval is honoured, a TSC that went
// backwards counts as due rather than as never, and no interval means no
// yield.
func TestVCPUYieldOnlyWhenDue(t *testing.T) {
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
			y := Yield{every: tc.every, last: tc.last}
			now := Cputicks()
			after, yielded := y.Maybe(now)
			if yielded != tc.want {
				t.Errorf("yielded = %v, want %v", yielded, tc.want)
			}
			if moved := y.last != tc.last; moved != tc.want {
				t.Errorf("interval restarted = %v, want %v", moved, tc.want)
			}
			// The loop times the next run from the returned TSC: the
			// yield's own time is not part of it.
			switch {
			case !yielded && after != now:
				t.Errorf("no yield, but the run clock moved from %d to %d", now, after)
			case yielded && after != y.last:
				t.Errorf("yielded, but the run clock is %d, not the TSC read after the yield (%d)", after, y.last)
			}
		})
	}
}
