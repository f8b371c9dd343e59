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
			y.Maybe(Cputicks())
			if yielded := y.last != tc.last; yielded != tc.want {
				t.Errorf("yielded = %v, want %v", yielded, tc.want)
			}
		})
	}
}
