package main

import (
	"fmt"
	"io"
	"math"
	"slices"
	"text/tabwriter"
)

// Rounds: the lab's benchmarks boot every subject once a round, round
// after round, and compare subjects within a round.
//
// The lab's speed drifts by half between boots, so a subject is compared
// with the boot next to it, not with another run's. In a fixed order one
// subject would always boot first and another always after it, and
// whatever a boot leaves behind for the next (the lab's page cache, its
// TAP's queues, a lab kernel still busy tearing the last VM down) would
// count for one of them every time: a trial build that booted second had
// 1.19 of the build before, and 0.91 when it booted first
// (docs/performance-log.md). So odd rounds boot the subjects in reverse,
// and an even number of rounds puts each subject first as often as last.

// roundOrder is the order, as indices into the subjects, in which round r
// (from 0) boots n subjects: as given in even rounds, reversed in odd ones.
func roundOrder(n, r int) []int {
	order := make([]int, n)
	for i := range order {
		order[i] = i
	}
	if r%2 == 1 {
		slices.Reverse(order)
	}
	return order
}

// pairedRatio is the median, lowest and highest of a's value of measure k
// over b's, round by round (a[r] and b[r] are the two subjects' boots in
// round r), and in how many rounds the ratio was above 1. Rounds in which
// either boot lacks the measure, or b's is 0, are left out; n is how many
// were not.
//
// mean is the ratios' geometric mean and ciLow to ciHigh its 95 %
// confidence interval (Student's t on the ratios' logarithms; with fewer
// than two rounds both ends are the mean, and with a ratio of 0 or less,
// which has no logarithm, all three are 0): the interval says whether the
// rounds put the ratio above 1 all through, below 1, or neither (ahead or
// behind for a rate, the other way round for a cost such as CPU a MB),
// which a median and a range cannot say of six rounds on a lab whose
// figures wander by half.
type pairedRatio struct {
	median, low, high   float64
	mean, ciLow, ciHigh float64
	above, n            int
}

// pairRounds computes the pairedRatio of measure k between the rounds of
// two subjects.
func pairRounds(a, b []map[string]float64, k string) pairedRatio {
	var ratios []float64
	for r := range min(len(a), len(b)) {
		x, okA := a[r][k]
		y, okB := b[r][k]
		if !okA || !okB || y == 0 {
			continue
		}
		ratios = append(ratios, x/y)
	}
	p := pairedRatio{n: len(ratios)}
	if p.n == 0 {
		return p
	}
	slices.Sort(ratios)
	p.median, p.low, p.high = median(ratios), ratios[0], ratios[p.n-1]
	for _, v := range ratios {
		if v > 1 {
			p.above++
		}
	}
	p.mean, p.ciLow, p.ciHigh = geoMeanCI(ratios)
	return p
}

// geoMeanCI is the geometric mean of positive ratios and its 95 %
// confidence interval: the mean of their logarithms plus and minus
// Student's t times its standard error, back from logarithms. Ratios are
// compared by their logarithms because 0.5 and 2 are equally far from 1.
// With fewer than two ratios the interval is the mean alone; with one of
// 0 or less, all three are 0.
func geoMeanCI(ratios []float64) (mean, low, high float64) {
	n := len(ratios)
	if n == 0 {
		return 0, 0, 0
	}
	var sum float64
	for _, v := range ratios {
		if v <= 0 {
			return 0, 0, 0
		}
		sum += math.Log(v)
	}
	m := sum / float64(n)
	if n < 2 {
		return math.Exp(m), math.Exp(m), math.Exp(m)
	}
	var ss float64
	for _, v := range ratios {
		d := math.Log(v) - m
		ss += d * d
	}
	half := studentT975(n-1) * math.Sqrt(ss/float64(n-1)/float64(n))
	return math.Exp(m), math.Exp(m - half), math.Exp(m + half)
}

// tTable975 is Student's t distribution's 97.5th percentile for 1 to 30
// degrees of freedom (any statistics table): the two-sided 95 % interval.
var tTable975 = [...]float64{
	12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228,
	2.201, 2.179, 2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086,
	2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042,
}

// studentT975 is t's 97.5th percentile for df degrees of freedom (df ≥ 1):
// from the table up to 30, beyond it the normal's 1.96 with the first
// term of its expansion in 1/df (within 0.003 of the exact value there).
func studentT975(df int) float64 {
	if df <= len(tTable975) {
		return tTable975[df-1]
	}
	const z = 1.959964
	return z + (z*z*z+z)/(4*float64(df))
}

// verdict reads a confidence interval of a ratio: "above" when all of it
// is above 1, "below" when all of it is below, "level" when it holds 1
// (the rounds do not tell the subjects apart), "" with too few rounds or
// a ratio of 0 among them.
func (p pairedRatio) verdict() string {
	switch {
	case p.n < 2 || p.mean <= 0:
		return ""
	case p.ciLow > 1:
		return "above"
	case p.ciHigh < 1:
		return "below"
	default:
		return "level"
	}
}

// median is the middle of sorted values, the mean of the middle two for
// an even count (0 for none).
func median(sorted []float64) float64 {
	n := len(sorted)
	switch {
	case n == 0:
		return 0
	case n%2 == 1:
		return sorted[n/2]
	default:
		return (sorted[n/2-1] + sorted[n/2]) / 2
	}
}

// printPaired prints, for each ratio column of the table (ratioPairs) and
// each of the benchmark's own measures, the median of the rounds' own
// ratios with their range and how many were above 1, and their geometric
// mean with its 95 % confidence interval and what that interval says
// (pairedRatio.verdict): the figures that a drifting lab moves least,
// where the medians' ratio above them compares boots from different
// rounds. rounds[i][r] is subject i's boot in round r.
func printPaired(w io.Writer, subjects []subject, rounds [][]map[string]float64, measures []string) error {
	pairs := ratioPairs(subjects)
	if len(pairs) == 0 {
		return nil
	}
	fmt.Fprintf(w, "\nround by round: the median of each round's ratio [lowest–highest], rounds above 1 of those with both boots;\n"+
		"their geometric mean (95 %% confidence interval): above or below 1 all through, or level where it holds 1\n")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprint(tw, "measure")
	printPairHeads(tw, subjects, pairs)
	for _, k := range measures {
		fmt.Fprint(tw, k)
		for _, p := range pairs {
			pr := pairRounds(rounds[p[0]], rounds[p[1]], k)
			if pr.n == 0 {
				fmt.Fprint(tw, "\t-")
				continue
			}
			fmt.Fprintf(tw, "\t%.2f [%.2f–%.2f], %d of %d", pr.median, pr.low, pr.high, pr.above, pr.n)
			if v := pr.verdict(); v != "" {
				fmt.Fprintf(tw, "; %.2f (%.2f–%.2f) %s", pr.mean, pr.ciLow, pr.ciHigh, v)
			}
		}
		fmt.Fprintln(tw)
	}
	return tw.Flush()
}

// printPairHeads ends a table's heading line with a column for each ratio
// pair ("ember ÷ QEMU"): the round-by-round table, lab pool's run means
// and a run's table of medians head their ratio columns alike.
func printPairHeads(w io.Writer, subjects []subject, pairs [][2]int) {
	for _, p := range pairs {
		fmt.Fprintf(w, "\t%s ÷ %s", shortName(subjects[p[0]].name), shortName(subjects[p[1]].name))
	}
	fmt.Fprintln(w)
}
