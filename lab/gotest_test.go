package main

import (
	"bytes"
	"context"
	"io"
	"slices"
	"strings"
	"testing"
	"time"

	"ember/lab/job"
)

// TestATestStepGoesOnAfterThePassedTests: when the lab dies under a GoTest
// step, the step's next run skips the top-level tests that passed in every
// lab before (and only those: not a subtest's pass, not a failed test), and
// a lab that dies after a new test passed counts as progress, not as one of
// the --retries deaths.
func TestATestStepGoesOnAfterThePassedTests(t *testing.T) {
	dir := t.TempDir()
	boots := [][]string{
		{"ready 1", "step a", "|=== RUN   TestA", "|--- PASS: TestA (1.00s)", "|=== RUN   TestB", "|    --- PASS: TestB/x (0.50s)"},
		{"ready 1", "step a", "|--- FAIL: TestB (2.00s)", "|--- PASS: TestC (1.00s)"},
		{"ready 1", "step a"},
		{"ready 1", "step a", "|--- PASS: TestB (2.00s)", "done 0", "exit 0"},
	}
	m := scriptedLab(t, dir, boots)
	var out bytes.Buffer
	s := &session{o: &options{timeout: 20 * time.Second, retries: 1}, p: newProgress(io.Discard), out: &out, dir: dir}
	step := job.Step{Label: "a", Args: []string{"a.test", "-test.v"}, GoTest: true}
	if status, err := s.runSteps(context.Background(), m, job.Job{Steps: []job.Step{step}}); err != nil || status != 0 {
		t.Fatalf("runSteps = %d, %v; want 0 after four boots", status, err)
	}
	want := []string{"a.test", "-test.v", "-test.skip=^(TestA|TestC)$"}
	if got := lastJob(t, dir).Steps[0].Args; !slices.Equal(got, want) {
		t.Errorf("the last boot ran %q, want %q", got, want)
	}
	if !strings.Contains(out.String(), "=== RUN   TestA\n--- PASS: TestA (1.00s)\n") {
		t.Errorf("the job's output lost lines of the step's:\n%s", out.String())
	}
}

// TestAStepThatIsNotAGoTestKeepsItsOutput: the lines of a step that is not
// a GoTest are shown as they are and are no records.
func TestAStepThatIsNotAGoTestKeepsItsOutput(t *testing.T) {
	dir := t.TempDir()
	m := scriptedLab(t, dir, [][]string{{"ready 1", "step a", "|=== RUN   TestA", "|--- PASS: TestA (1.00s)", "done 0", "exit 0"}})
	var out bytes.Buffer
	s := &session{o: &options{timeout: 20 * time.Second, retries: 1}, p: newProgress(io.Discard), out: &out, dir: dir}
	if status, err := s.runSteps(context.Background(), m, job.Job{Steps: []job.Step{{Label: "a", Args: []string{"sh"}}}}); err != nil || status != 0 {
		t.Fatalf("runSteps = %d, %v", status, err)
	}
	if want := "=== RUN   TestA\n--- PASS: TestA (1.00s)\n"; out.String() != want {
		t.Errorf("output %q, want %q", out.String(), want)
	}
}

// TestQuietWriter: without -v, what only -v prints is left out of the
// job's output shown, and nothing else is.
func TestQuietWriter(t *testing.T) {
	var b bytes.Buffer
	q := quietWriter{&b}
	for _, line := range []string{"=== RUN   TestA\n", "    a_test.go:9: lab flake, booting again\n", "--- PASS: TestA (1.00s)\n",
		"=== RUN   TestB\n", "--- FAIL: TestB (1.00s)\n", "FAIL\n"} {
		if n, err := q.Write([]byte(line)); n != len(line) || err != nil {
			t.Fatalf("Write(%q) = %d, %v", line, n, err)
		}
	}
	if want := "    a_test.go:9: lab flake, booting again\n--- FAIL: TestB (1.00s)\nFAIL\n"; b.String() != want {
		t.Errorf("shown %q, want %q", b.String(), want)
	}
}

// TestVerboseOnly: the lines go test prints only with -v, and not a
// failure, a log line or the verdict.
func TestVerboseOnly(t *testing.T) {
	for line, want := range map[string]bool{
		"=== RUN   TestA\n":               true,
		"=== PAUSE TestA/x\n":             true,
		"=== CONT  TestA/x\n":             true,
		"=== NAME  TestA\n":               true,
		"--- PASS: TestA (1.00s)\n":       true,
		"    --- PASS: TestA/x (0.10s)\n": true,
		"--- FAIL: TestA (1.00s)\n":       false,
		"    a_test.go:9: lab flake\n":    false,
		"PASS\n":                          false,
		"ok  \tember/hv\t1.0s\n":          false,
	} {
		if got := verboseOnly(line); got != want {
			t.Errorf("verboseOnly(%q) = %v, want %v", line, got, want)
		}
	}
}
