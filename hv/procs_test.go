package hv

import (
	"slices"
	"testing"
)

// TestProcBudget: GOMAXPROCS grows by one for each running vCPU thread, up
// to twice the host's, shrinks back as they end, is set only when it
// changes, and is never touched when the user set it.
func TestProcBudget(t *testing.T) {
	tests := []struct {
		name  string
		base  int
		fixed bool
		steps []int // vCPU threads starting (+1) or ending (-1)
		want  []int // the values GOMAXPROCS was set to, in order
	}{
		{"two vCPUs on two CPUs", 2, false, []int{1, 1, -1, -1}, []int{3, 4, 3, 2}},
		{"more vCPUs than CPUs stop at twice the CPUs", 2, false, []int{1, 1, 1, 1, -1, -1, -1, -1}, []int{3, 4, 3, 2}},
		{"one CPU", 1, false, []int{1, 1, -1, -1}, []int{2, 1}},
		{"GOMAXPROCS from the environment", 2, true, []int{1, 1, -1, -1}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []int
			p := newProcBudget(tt.base, tt.fixed, func(n int) int { got = append(got, n); return 0 })
			for _, d := range tt.steps {
				p.add(d)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("GOMAXPROCS set to %v, want %v", got, tt.want)
			}
		})
	}
}
