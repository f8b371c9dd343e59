package main

import (
	"fmt"
	"io"
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
type pairedRatio struct {
	median, low, high float64
	above, n          int
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
	return p
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
// ratios with their range and how many were above 1: the figure that a
// drifting lab moves least, where the medians' ratio above it compares
// boots from different rounds. rounds[i][r] is subject i's boot in round r.
func printPaired(w io.Writer, subjects []subject, rounds [][]map[string]float64, measures []string) error {
	pairs := ratioPairs(subjects)
	if len(pairs) == 0 {
		return nil
	}
	fmt.Fprintf(w, "\nround by round: the median of each round's ratio [lowest–highest], rounds above 1 of those with both boots\n")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprint(tw, "measure")
	for _, p := range pairs {
		fmt.Fprintf(tw, "\t%s ÷ %s", shortName(subjects[p[0]].name), shortName(subjects[p[1]].name))
	}
	fmt.Fprintln(tw)
	for _, k := range measures {
		fmt.Fprint(tw, k)
		for _, p := range pairs {
			pr := pairRounds(rounds[p[0]], rounds[p[1]], k)
			if pr.n == 0 {
				fmt.Fprint(tw, "\t-")
				continue
			}
			fmt.Fprintf(tw, "\t%.2f [%.2f–%.2f], %d of %d", pr.median, pr.low, pr.high, pr.above, pr.n)
		}
		fmt.Fprintln(tw)
	}
	return tw.Flush()
}
