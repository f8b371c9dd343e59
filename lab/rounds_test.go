package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strings"
	"testing"
)

// TestRoundOrderAlternates: odd rounds boot the subjects in reverse, so
// over an even number of rounds each subject boots in each position
// equally often.
func TestRoundOrderAlternates(t *testing.T) {
	for _, tt := range []struct {
		n, r int
		want []int
	}{
		{2, 0, []int{0, 1}},
		{2, 1, []int{1, 0}},
		{2, 2, []int{0, 1}},
		{3, 1, []int{2, 1, 0}},
		{1, 1, []int{0}},
		{0, 0, []int{}},
	} {
		if got := roundOrder(tt.n, tt.r); !slices.Equal(got, tt.want) {
			t.Errorf("roundOrder(%d, %d) = %v, want %v", tt.n, tt.r, got, tt.want)
		}
	}
	for n := 1; n <= 4; n++ {
		first := make([]int, n)
		for r := range 6 {
			first[roundOrder(n, r)[0]]++
		}
		if n > 1 && (first[0] != 3 || first[n-1] != 3) {
			t.Errorf("%d subjects over 6 rounds: booted first %v times, want the first and last subjects 3 each", n, first)
		}
	}
}

// TestPairRoundsComparesWithinRounds: the ratio is taken round by round,
// skipping rounds where either boot lacks the measure or the baseline's is
// zero, and the median of an even count is the middle two's mean.
func TestPairRoundsComparesWithinRounds(t *testing.T) {
	a := []map[string]float64{{"x": 10}, {"x": 30}, {"x": 8}, {}, {"x": 5}, {"x": 9}}
	b := []map[string]float64{{"x": 20}, {"x": 20}, {"x": 8}, {"x": 1}, {"x": 0}, {"x": 3}}
	// Rounds 0–2 and 5 count: 0.5, 1.5, 1, 3.
	got := pairRounds(a, b, "x")
	want := pairedRatio{median: 1.25, low: 0.5, high: 3, above: 2, n: 4, mean: math.Pow(2.25, 0.25)}
	if got.median != want.median || got.low != want.low || got.high != want.high ||
		got.above != want.above || got.n != want.n || math.Abs(got.mean-want.mean) > 1e-12 {
		t.Errorf("pairRounds = %+v, want %+v", got, want)
	}
	if !(got.ciLow < got.mean && got.mean < got.ciHigh) {
		t.Errorf("pairRounds' interval %v–%v does not hold its mean %v", got.ciLow, got.ciHigh, got.mean)
	}
	if got := pairRounds(a, b, "missing"); got.n != 0 {
		t.Errorf("a measure no boot has: %+v, want n 0", got)
	}
	if got := pairRounds(a[:1], b, "x"); got.n != 1 || got.median != 0.5 {
		t.Errorf("rounds of one subject only: %+v, want the one round both have", got)
	}
}

// TestGeoMeanCI: the geometric mean of the ratios and its 95 % interval
// from Student's t on their logarithms, and what the interval says.
func TestGeoMeanCI(t *testing.T) {
	t12 := math.Pow(2, 12.706) // one degree of freedom: 2^±t for 0.5 and 2
	for _, tt := range []struct {
		name            string
		ratios          []float64
		mean, low, high float64
		verdict         string
	}{
		{"none", nil, 0, 0, 0, ""},
		{"one round", []float64{1.5}, 1.5, 1.5, 1.5, ""},
		{"the same every round", []float64{2, 2, 2}, 2, 2, 2, "above"},
		{"two far apart", []float64{0.5, 2}, 1, 1 / t12, t12, "level"},
		{"a ratio of 0", []float64{0, 2}, 0, 0, 0, ""},
		// logs ±0.1: mean 1, sd 0.1095, se 0.0447, t(5) 2.571.
		{"ahead of one, behind the next", []float64{math.Exp(0.1), math.Exp(-0.1), math.Exp(0.1), math.Exp(-0.1), math.Exp(0.1), math.Exp(-0.1)},
			1, math.Exp(-2.571 * math.Sqrt(0.06/5/6)), math.Exp(2.571 * math.Sqrt(0.06/5/6)), "level"},
		{"a little ahead, steadily", []float64{1.1, 1.2, 1.15, 1.25, 1.1, 1.2}, 0, 0, 0, "above"},
		{"a little behind, steadily", []float64{0.8, 0.9, 0.85}, 0, 0, 0, "below"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			sorted := slices.Sorted(slices.Values(tt.ratios))
			mean, low, high := geoMeanCI(sorted)
			if tt.mean != 0 || tt.verdict == "" {
				for _, c := range []struct {
					what      string
					got, want float64
				}{{"mean", mean, tt.mean}, {"low", low, tt.low}, {"high", high, tt.high}} {
					if math.Abs(c.got-c.want) > 1e-9*math.Max(1, c.want) {
						t.Errorf("%s = %v, want %v", c.what, c.got, c.want)
					}
				}
			}
			p := pairedRatio{n: len(tt.ratios), mean: mean, ciLow: low, ciHigh: high}
			if got := p.verdict(); got != tt.verdict {
				t.Errorf("verdict of %v (%v–%v) = %q, want %q", tt.ratios, low, high, got, tt.verdict)
			}
		})
	}
}

// TestStudentT975: the table's values, and beyond it an approximation
// within 0.003 of the exact percentiles that keeps falling towards 1.96.
func TestStudentT975(t *testing.T) {
	for _, tt := range []struct {
		df   int
		want float64
	}{{1, 12.706}, {5, 2.571}, {30, 2.042}, {40, 2.021}, {60, 2.000}, {120, 1.980}, {100000, 1.960}} {
		if got := studentT975(tt.df); math.Abs(got-tt.want) > 0.003 {
			t.Errorf("studentT975(%d) = %.4f, want %.3f", tt.df, got, tt.want)
		}
	}
	for df := 1; df < 200; df++ {
		if studentT975(df+1) >= studentT975(df) {
			t.Errorf("studentT975(%d) = %v, not below studentT975(%d) = %v", df+1, studentT975(df+1), df, studentT975(df))
		}
	}
}

// TestMedian: the middle value, or the middle two's mean.
func TestMedian(t *testing.T) {
	for _, tt := range []struct {
		v    []float64
		want float64
	}{
		{nil, 0},
		{[]float64{4}, 4},
		{[]float64{1, 2, 9}, 2},
		{[]float64{1, 2, 4, 9}, 3},
	} {
		if got := median(tt.v); math.Abs(got-tt.want) > 1e-12 {
			t.Errorf("median(%v) = %v, want %v", tt.v, got, tt.want)
		}
	}
}

// TestPrintPairedNamesEachRatio: the round-by-round table has a column for
// each of ember's subjects over each of QEMU's, and a row for each of the
// benchmark's measures, with "-" where no round has both boots.
func TestPrintPairedNamesEachRatio(t *testing.T) {
	subjects := []subject{{name: "ember (virtio-pci)"}, {name: "QEMU vhost=off"}}
	rounds := [][]map[string]float64{
		{{"MB/s": 30}, {"MB/s": 20}},
		{{"MB/s": 20}, {"MB/s": 40}},
	}
	var out bytes.Buffer
	if err := printPaired(&out, subjects, rounds, []string{"MB/s", "IOPS"}); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 5 {
		t.Fatalf("got %d lines, want a title of two, a heading and 2 rows:\n%s", len(lines), out.String())
	}
	lines = lines[1:]
	if !strings.Contains(lines[1], "ember ÷ QEMU vhost=off") {
		t.Errorf("heading %q lacks the ratio's column", lines[1])
	}
	// Rounds: 1.5 and 0.5; geometric mean √0.75 = 0.87, and two rounds
	// that far apart cannot tell the subjects apart.
	if want := "1.00 [0.50–1.50], 1 of 2; 0.87 ("; !strings.HasPrefix(lines[2], "MB/s") || !strings.Contains(lines[2], want) || !strings.HasSuffix(lines[2], ") level") {
		t.Errorf("row %q, want MB/s %s…) level", lines[2], want)
	}
	if !strings.HasPrefix(lines[3], "IOPS") || !strings.HasSuffix(strings.TrimSpace(lines[3]), "-") {
		t.Errorf("row %q, want IOPS with no rounds: -", lines[3])
	}
	out.Reset()
	if err := printPaired(&out, []subject{{name: "ember"}}, rounds[:1], []string{"MB/s"}); err != nil || out.Len() != 0 {
		t.Errorf("no QEMU subject: printed %q (err %v), want nothing", out.String(), err)
	}
}

// TestRunBenchLeavesOutALostBoot: a boot that fails every try is left out
// of its round, said so, and the run goes on to its table; a subject
// whose every boot fails fails the run.
func TestRunBenchLeavesOutALostBoot(t *testing.T) {
	subjects := []subject{{name: "ember (virtio-pci)", argv: []string{"ember"}}, {name: "QEMU vhost=off", argv: []string{"qemu"}}}
	boots := map[string]int{}
	tbl := benchTable{
		title:    "test",
		measures: []string{"MB/s"},
		boot: func(_ context.Context, argv []string) (map[string]float64, bootOutput, error) {
			boots[argv[0]]++
			if n := boots["qemu"]; argv[0] == "qemu" && n >= 2 && n < 2+bootTries { // every try of QEMU's second boot
				return nil, bootOutput{}, errors.New("the guest reported nothing")
			}
			return map[string]float64{"MB/s": map[string]float64{"ember": 30, "qemu": 20}[argv[0]]}, bootOutput{}, nil
		},
	}
	var out bytes.Buffer
	if err := runBench(context.Background(), &out, subjects, 3, tbl); err != nil {
		t.Fatalf("a lost boot failed the run: %v\n%s", err, out.String())
	}
	for _, want := range []string{
		fmt.Sprintf("boot 2/3 %-28s left out after %d tries", "QEMU vhost=off", bootTries),
		"QEMU vhost=off: 1 of 3 boots left out",
		"1.50 [1.50–1.50], 2 of 2", // the two rounds both finished
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
	if boots["qemu"] != 2+bootTries {
		t.Errorf("QEMU booted %d times, want %d (its lost boot tried %d times)", boots["qemu"], 2+bootTries, bootTries)
	}

	tbl.boot = func(_ context.Context, argv []string) (map[string]float64, bootOutput, error) {
		if argv[0] == "qemu" {
			return nil, bootOutput{}, errors.New("no")
		}
		return map[string]float64{"MB/s": 1}, bootOutput{}, nil
	}
	if err := runBench(context.Background(), io.Discard, subjects, 2, tbl); err == nil {
		t.Error("a subject whose every boot failed did not fail the run")
	}
}

// TestRunBenchWarmsTheLabUp: with warmUp, the first round's first subject
// boots that many times before the first round, its figures printed and
// counted nowhere; a warm-up that fails does not stop the run.
func TestRunBenchWarmsTheLabUp(t *testing.T) {
	subjects := []subject{{name: "ember (virtio-pci)", argv: []string{"ember"}}, {name: "QEMU vhost=off", argv: []string{"qemu"}}}
	for _, fail := range []bool{false, true} {
		var booted []string
		tbl := benchTable{
			title:    "test",
			measures: []string{"MB/s"},
			warmUp:   1,
			boot: func(_ context.Context, argv []string) (map[string]float64, bootOutput, error) {
				booted = append(booted, argv[0])
				if len(booted) == 1 { // the lab's first VM: slow, or lost
					if fail {
						return nil, bootOutput{}, errors.New("the guest reported nothing")
					}
					return map[string]float64{"MB/s": 1}, bootOutput{}, nil
				}
				return map[string]float64{"MB/s": map[string]float64{"ember": 30, "qemu": 20}[argv[0]]}, bootOutput{}, nil
			},
		}
		var out bytes.Buffer
		if err := runBench(context.Background(), &out, subjects, 2, tbl); err != nil {
			t.Fatalf("fail %v: %v\n%s", fail, err, out.String())
		}
		if want := []string{"ember", "ember", "qemu", "qemu", "ember"}; !slices.Equal(booted, want) {
			t.Errorf("fail %v: booted %q, want %q (the warm-up, then two rounds in alternating order)", fail, booted, want)
		}
		if row := tableRow(out.String(), "MB/s"); !slices.Equal(row, []string{"30.0", "20.0", "1.50"}) {
			t.Errorf("fail %v: the table's row %q, want the warm-up left out", fail, row)
		}
		want := fmt.Sprintf("warm-up %-30s map[MB/s:1] (not counted)", "ember (virtio-pci)")
		if fail {
			want = fmt.Sprintf("warm-up %-30s failed (not counted)", "ember (virtio-pci)")
		}
		if !strings.Contains(out.String(), want) {
			t.Errorf("fail %v: output lacks %q:\n%s", fail, want, out.String())
		}
	}
}
