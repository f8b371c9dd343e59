package bench

import (
	"math"
	"sort"
	"time"
)

// Median returns the median of ds (the mean of the middle two for an even
// count); 0 for none.
func Median(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	m := len(s) / 2
	if len(s)%2 == 1 {
		return s[m]
	}
	return (s[m-1] + s[m]) / 2
}

// PerOp is the marginal cost of one operation: (t(n) - t(n0)) / (n - n0).
// Running the same thing with a large n and a small n0 and taking the
// difference removes what both runs pay once (process start, VM creation).
// It returns NaN when n == n0.
func PerOp(tn, tn0 time.Duration, n, n0 int) float64 {
	if n == n0 {
		return math.NaN()
	}
	return float64(tn-tn0) / float64(n-n0)
}

// Ratio returns a/b, or NaN when either is missing (NaN, zero or negative b).
func Ratio(a, b float64) float64 {
	if math.IsNaN(a) || math.IsNaN(b) || b <= 0 {
		return math.NaN()
	}
	return a / b
}

// PairedRatios returns a[i]/b[i] for every repetition i where both are
// measured, sorted. Subjects of one repetition run next to each other, so
// each ratio compares two runs made moments apart: where the machine's
// speed drifts during a run (the lab's doubles within minutes), the median
// of these is a steadier ratio than the ratio of the two medians.
func PairedRatios(a, b []time.Duration) []float64 {
	var rs []float64
	for i := range min(len(a), len(b)) {
		if r := Ratio(float64(a[i]), float64(b[i])); !math.IsNaN(r) && a[i] > 0 {
			rs = append(rs, r)
		}
	}
	sort.Float64s(rs)
	return rs
}

// MedianOf returns the median of sorted values, NaN for none.
func MedianOf(sorted []float64) float64 {
	n := len(sorted)
	switch {
	case n == 0:
		return math.NaN()
	case n%2 == 1:
		return sorted[n/2]
	}
	return (sorted[n/2-1] + sorted[n/2]) / 2
}
