package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"ember/lab/job"
)

// recordLine is the record of one boot as runBench prints it.
func recordLine(t *testing.T, rep int, subject string, measures map[string]float64) string {
	t.Helper()
	b, err := json.Marshal(bootRecord{Rep: rep, Subject: subject, Measures: measures, Counts: map[string]float64{"CPU s": 1}})
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// writeRun writes a run's records file of lines.
func writeRun(t *testing.T, dir, name string, lines []string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestPoolTakesEveryRunsRoundsAsOneSample: the rounds of two runs are
// compared as one sample, with the interval worked by hand, and each run's
// own mean is printed beside it. A record printed twice (a run that went on
// after the lab died prints the boots before again) counts once, a line
// that is no record is skipped, a round missing a subject is left out of
// its ratios, and --only leaves a subject out.
func TestPoolTakesEveryRunsRoundsAsOneSample(t *testing.T) {
	const k = "rand-read IOPS"
	dir := t.TempDir()
	boot := func(rep int, subject string, v float64) string {
		return recordLine(t, rep, subject, map[string]float64{k: v})
	}
	// Run 1: ember ÷ QEMU 2 and 0.5 (mean 1); run 2: 2 and 2 (mean 2), and
	// a third round without QEMU's boot.
	run1 := writeRun(t, dir, "run1.jsonl", []string{
		boot(1, "ember (x)", 200), boot(1, "QEMU (y)", 100), boot(1, "ember-B (x)", 7),
		"serial noise {",
		boot(2, "ember (x)", 50), boot(2, "QEMU (y)", 100),
		boot(1, "ember (x)", 200), // again, after a lab death
	})
	run2 := writeRun(t, dir, "run2.jsonl", []string{
		boot(1, "QEMU (y)", 10), boot(1, "ember (x)", 20),
		boot(2, "ember (x)", 30), boot(2, "QEMU (y)", 15),
		boot(3, "ember (x)", 99),
	})
	var out bytes.Buffer
	cmd := newPoolCmd()
	cmd.SetOut(&out)
	cmd.SetArgs([]string{"--only", "ember (,QEMU", run1, run2})
	if err := cmd.Execute(); err != nil {
		t.Fatal(err)
	}
	got := out.String()
	for _, want := range []string{
		"5 rounds from 2 runs; subjects: ember (x), QEMU (y)\n",
		"run 1: " + run1 + ", 2 rounds",
		"run 2: " + run2 + ", 3 rounds",
		// Ratios 2, 0.5, 2, 2: logs ln2·(1, −1, 1, 1), mean ln2/2, standard
		// error ln2/2, t(3) = 3.182: 2^(0.5 ± 1.591).
		"2.00 [0.50–2.00], 3 of 4; 1.41 (0.47–4.26) level",
		"1.00 2.00",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("pool's output lacks %q:\n%s", want, got)
		}
	}
	if strings.Contains(got, "ember-B") {
		t.Errorf("--only kept ember-B:\n%s", got)
	}
}

// TestPoolWantsSomethingToCompare: runs with no baseline beside ember's
// subjects are an error that names the subjects, not an empty table.
func TestPoolWantsSomethingToCompare(t *testing.T) {
	dir := t.TempDir()
	run := writeRun(t, dir, "run.jsonl", []string{recordLine(t, 1, "ember (x)", map[string]float64{"seq-read MB/s": 1})})
	cmd := newPoolCmd()
	cmd.SetOut(io.Discard)
	cmd.SetArgs([]string{run})
	if err := cmd.Execute(); err == nil || !strings.Contains(err.Error(), "ember (x)") {
		t.Errorf("pool of ember alone: %v, want an error naming the subjects", err)
	}
}

// TestPoolOrdersTheBenchmarksMeasures: the measures come in the order the
// benchmark prints them, whatever order a record's JSON has them in.
func TestPoolOrdersTheBenchmarksMeasures(t *testing.T) {
	m := map[string]float64{"seq-write MB/s": 1, "rand-read IOPS": 1, "seq-read MB/s": 1, "zz other": 1}
	runs := []map[recordKey]bootRecord{{
		{1, "ember (x)"}: {Rep: 1, Subject: "ember (x)", Measures: m},
		{1, "QEMU (y)"}:  {Rep: 1, Subject: "QEMU (y)", Measures: m},
	}}
	p := poolRuns(runs, "")
	if got, want := strings.Join(p.measures, ","), "seq-read MB/s,rand-read IOPS,seq-write MB/s,zz other"; got != want {
		t.Errorf("measures %s, want %s", got, want)
	}
	if got, want := subjectNames(p.subjects), "ember (x), QEMU (y)"; got != want {
		t.Errorf("subjects %s, want %s (ember's before the baselines)", got, want)
	}
}

// TestRecordsAreKeptAsTheyCome: with --records, every record the job
// prints reaches the file as one line of its own, through a lab that died
// and went on, and none reaches the job's output.
func TestRecordsAreKeptAsTheyCome(t *testing.T) {
	dir := t.TempDir()
	m := scriptedLab(t, dir, [][]string{
		{"ready 1", "step a", "record {\"rep\":1}", "|boot 1"},
		{"ready 1", "step a", "record {\"rep\":1}", "record {\"rep\":2}", "|boot 2", "done 0", "exit 0"},
	})
	var out, records bytes.Buffer
	s := &session{o: &options{timeout: 20 * time.Second, retries: 1}, p: newProgress(io.Discard), out: &out, dir: dir}
	m.records = &records
	if status, err := s.runSteps(context.Background(), m, job.Job{Steps: []job.Step{{Label: "a", Args: []string{"cmd"}, ResumeFlag: "--done"}}}); err != nil || status != 0 {
		t.Fatalf("runSteps = %d, %v", status, err)
	}
	if want := "{\"rep\":1}\n{\"rep\":1}\n{\"rep\":2}\n"; records.String() != want {
		t.Errorf("records %q, want %q", records.String(), want)
	}
	if want := "boot 1\nboot 2\n"; out.String() != want {
		t.Errorf("output %q, want %q", out.String(), want)
	}
}
