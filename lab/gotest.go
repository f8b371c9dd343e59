package main

import (
	"fmt"
	"io"
	"os"
	"regexp"
	"slices"
	"strings"

	"ember/lab/job"
)

// Going on after the tests that passed when the lab dies under a test
// binary (job.Step.GoTest).
//
// The lab's kernel dies now and then (QEMU's software SVM), and a step that
// was running then runs again in a lab booted afresh. A package of tests
// that boot Linux takes ten minutes; on a day the lab dies every few
// minutes, running it again from its start each time never ends. So the
// lab runs test binaries with -test.v, counts each top-level test's
// "--- PASS" line as done, and the step's next run skips those tests: every
// test is still run until it passes (or fails) in some lab, and none is
// skipped that has not passed.

// passRE is a passed top-level test's line in go test -v's output
// (subtests' lines are indented).
var passRE = regexp.MustCompile(`^--- PASS: (\S+) \(`)

// passedTest returns the top-level test that line says passed.
func passedTest(line string) (string, bool) {
	m := passRE.FindStringSubmatch(line)
	if m == nil {
		return "", false
	}
	return m[1], true
}

// verboseOnly reports whether go test prints line only with -v: a test's
// "=== RUN", "=== PAUSE", "=== CONT" or "=== NAME" line, or a test's or
// subtest's "--- PASS" line.
func verboseOnly(line string) bool {
	return strings.HasPrefix(line, "=== ") || strings.HasPrefix(strings.TrimLeft(line, " "), "--- PASS: ")
}

// quietWriter shows a job's output as go test shows it without -v (but for
// the log lines of tests that passed): it passes each line written to it
// to w but those only -v prints (verboseOnly). Each Write is one line, as
// machine.follow writes them. What reads the output for failures
// (flakedFailures) takes it whole, before this: a log line is known to be
// a test's by the "=== RUN" line before it.
type quietWriter struct{ w io.Writer }

func (q quietWriter) Write(line []byte) (int, error) {
	if verboseOnly(string(line)) {
		return len(line), nil
	}
	return q.w.Write(line)
}

// skipPassed has GoTest step skip the top-level tests passed (all that have
// passed so far, in every lab that died under it) by giving it -test.skip,
// in place of any it was given before.
func skipPassed(step *job.Step, passed []string) {
	step.Passed = slices.Compact(slices.Sorted(slices.Values(passed)))
	step.Args = slices.DeleteFunc(slices.Clone(step.Args), func(a string) bool {
		return strings.HasPrefix(a, "-test.skip=")
	})
	step.Args = append(step.Args, "-test.skip="+onlyTests(step.Passed))
	fmt.Fprintf(os.Stderr, "lab: the step goes on after the %d tests that passed (-test.skip)\n", len(step.Passed))
}
