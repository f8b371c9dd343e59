package main

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"
)

// Pooling runs.
//
// One run's confidence interval is of its rounds, not of the lab: on
// 2026-12-07 four runs of the disk benchmark gave ember's random reads
// geometric means of 1.33, 1.71, 0.86 and 1.06 of QEMU's, further apart
// than any run's own interval said. What a day's runs say together is
// their rounds taken as one sample, which lab pool computes from the
// records the runs kept (lab virtio --records FILE, lab net --records
// FILE), with the same pairing, intervals and verdicts a run prints
// (printPaired), and beside them each run's own geometric mean, so the
// spread between runs is seen too.

// newPoolCmd is lab pool: the rounds of several runs of a lab benchmark,
// saved with --records, compared as one sample. It boots nothing.
func newPoolCmd() *cobra.Command {
	var only string
	cmd := &cobra.Command{
		Use:   "pool FILE...",
		Short: "compare the rounds of several lab virtio or lab net runs (saved with --records) as one sample",
		Long: `pool reads the boots that runs of lab virtio or lab net wrote with
--records FILE and prints, for each of ember's subjects against each
baseline (QEMU's, the lab alone), the ratios round by round over all the
runs' rounds together — median, range, geometric mean with its 95 %
confidence interval and its verdict, as a run prints them — and each run's
own geometric mean. A round is one rep of one run; a subject missing from
a round (a boot the lab lost, a subject the run did not boot) leaves that
round out of its ratios. --only keeps the subjects whose name starts with
one of its comma-separated prefixes.`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, files []string) error {
			runs := make([]map[recordKey]bootRecord, len(files))
			for i, f := range files {
				var err error
				if runs[i], err = readRecords(f); err != nil {
					return fmt.Errorf("%s: %w", f, err)
				}
			}
			return printPool(cmd.OutOrStdout(), files, runs, only)
		},
	}
	cmd.Flags().StringVar(&only, "only", "", "keep only the subjects whose name starts with one of these comma-separated prefixes")
	return cmd
}

// pooled is several runs' boots as one benchmark's rounds.
type pooled struct {
	subjects []subject
	rounds   [][]map[string]float64 // [subject][round]: the boot's measures; nil where it has none
	perRun   []int                  // how many rounds each run (file) holds; its rounds follow the run before's
	measures []string
}

// poolRuns makes rounds of the runs' boots: each rep of each run, in
// order, is one round. The subjects are every name the runs booted that
// only keeps (benchFlags.pick), ember's before the baselines, each sorted;
// the measures are those the boots have, the benchmarks' own in their
// order (benchMeasures, netMeasures), any other after them, sorted.
func poolRuns(runs []map[recordKey]bootRecord, only string) pooled {
	names := map[string]bool{}
	keys := map[string]bool{}
	for _, run := range runs {
		for k, rec := range run {
			names[k.subject] = true
			for m := range rec.Measures {
				keys[m] = true
			}
		}
	}
	var p pooled
	for _, n := range slices.Sorted(maps.Keys(names)) {
		p.subjects = append(p.subjects, subject{name: n})
	}
	p.subjects = (&benchFlags{only: only}).pick(p.subjects)
	slices.SortStableFunc(p.subjects, func(a, b subject) int {
		switch x, y := isBaseline(a), isBaseline(b); {
		case x == y:
			return 0
		case y:
			return -1
		default:
			return 1
		}
	})
	for _, k := range slices.Concat(benchMeasures, netMeasures()) {
		if keys[k] {
			p.measures = append(p.measures, k)
			delete(keys, k)
		}
	}
	p.measures = append(p.measures, slices.Sorted(maps.Keys(keys))...)
	p.rounds = make([][]map[string]float64, len(p.subjects))
	for _, run := range runs {
		reps := map[int]bool{}
		for k := range run {
			reps[k.rep] = true
		}
		p.perRun = append(p.perRun, len(reps))
		for _, r := range slices.Sorted(maps.Keys(reps)) {
			for j, s := range p.subjects {
				var m map[string]float64
				if rec, ok := run[recordKey{r, s.name}]; ok {
					m = rec.Measures
				}
				p.rounds[j] = append(p.rounds[j], m)
			}
		}
	}
	return p
}

// printPool prints the runs' rounds pooled (poolRuns): what each run
// holds, the ratios over all rounds (printPaired), and each run's own
// geometric mean of each ratio.
func printPool(w io.Writer, files []string, runs []map[recordKey]bootRecord, only string) error {
	p := poolRuns(runs, only)
	if len(ratioPairs(p.subjects)) == 0 {
		return fmt.Errorf("nothing to compare: the runs hold no subject of ember's beside a baseline (subjects: %s)", subjectNames(p.subjects))
	}
	nrounds := 0
	if len(p.rounds) > 0 {
		nrounds = len(p.rounds[0])
	}
	fmt.Fprintf(w, "%d rounds from %d runs; subjects: %s\n", nrounds, len(files), subjectNames(p.subjects))
	for i, f := range files {
		fmt.Fprintf(w, "  run %d: %s, %d rounds\n", i+1, f, p.perRun[i])
	}
	if err := printPaired(w, p.subjects, p.rounds, p.measures); err != nil {
		return err
	}
	return printRunMeans(w, p)
}

// printRunMeans prints, for each ratio column and measure, each run's own
// geometric mean of the rounds' ratios, run by run ("-" for a run with no
// round holding both boots).
func printRunMeans(w io.Writer, p pooled) error {
	fmt.Fprintf(w, "\neach run's own geometric mean, run 1 to %d\n", len(p.perRun))
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	pairs := ratioPairs(p.subjects)
	fmt.Fprint(tw, "measure")
	printPairHeads(tw, p.subjects, pairs)
	for _, k := range p.measures {
		fmt.Fprint(tw, k)
		for _, pr := range pairs {
			means := make([]string, len(p.perRun))
			lo := 0
			for run, n := range p.perRun {
				a, b := p.rounds[pr[0]][lo:lo+n], p.rounds[pr[1]][lo:lo+n]
				lo += n
				if r := pairRounds(a, b, k); r.n > 0 && r.mean > 0 {
					means[run] = fmt.Sprintf("%.2f", r.mean)
				} else {
					means[run] = "-"
				}
			}
			fmt.Fprintf(tw, "\t%s", strings.Join(means, " "))
		}
		fmt.Fprintln(tw)
	}
	return tw.Flush()
}

// subjectNames is the subjects' names, comma-separated.
func subjectNames(subjects []subject) string {
	names := make([]string, len(subjects))
	for i, s := range subjects {
		names[i] = s.name
	}
	return strings.Join(names, ", ")
}
