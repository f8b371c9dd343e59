package main

import (
	"bufio"
	"regexp"
	"slices"
	"strings"

	"ember/internal/kvmtest"
)

// Reading a `lab test` job's output for failures the lab caused.
//
// Tests that boot Linux boot once more when the lab fails a guest (a triple
// fault or a stall QEMU's software SVM gives now and then) and log
// kvmtest.FlakeMark when they do. Seen in CI: once the lab has stalled one
// guest, the next boots in the same lab machine stall too, so a test's own
// second try fails as well. Such a test gets one more run in a lab booted
// afresh; a failure there counts. A package that failed with no test
// logging the mark, or without naming a failed test (a panic, a timeout), is
// not run again.

var (
	// failRE is a failed top-level test's line in go test's output.
	failRE = regexp.MustCompile(`^--- FAIL: (\S+) \(`)
	// testRE is a line that says whose output follows: a top-level test's
	// verdict (without -v, a failed test's log comes after it), or, with
	// -v, a test's or subtest's start or resumption (its log comes after
	// it); the group is the top-level test.
	testRE = regexp.MustCompile(`^(?:--- (?:FAIL|PASS): |=== (?:RUN|CONT|NAME|PAUSE) +)([^/\s]+)`)
	// stepEndRE is labinit's line after each step: verdict, label, time.
	stepEndRE = regexp.MustCompile(`^(ok  |FAIL)\t(\S+)\t.*\(in the lab\)$`)
	// flakeRE is a test's log line saying the lab failed its guest.
	flakeRE = regexp.MustCompile(`^\s+\S+\.go:\d+: ` + regexp.QuoteMeta(kvmtest.FlakeMark))
)

// flakedFailures returns, for each step (package) of a `lab test` job that
// failed, the top-level tests that failed, when every failed step has a
// failed test that logged the flake mark; rerun is false otherwise, for then
// running the flaked ones again cannot change the job's verdict. It reads
// go test's output with -v and without: a log line belongs to the test
// whose line came last before it (testRE).
func flakedFailures(output string) (failed map[string][]string, rerun bool) {
	failed = map[string][]string{}
	var tests []string
	flaked := map[string]bool{} // top-level tests that logged the mark
	current := ""
	sc := bufio.NewScanner(strings.NewReader(output))
	sc.Buffer(make([]byte, 64*1024), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if m := testRE.FindStringSubmatch(line); m != nil {
			current = m[1]
		}
		switch m := stepEndRE.FindStringSubmatch(line); {
		case m != nil:
			if m[1] == "FAIL" {
				if !slices.ContainsFunc(tests, func(t string) bool { return flaked[t] }) {
					return nil, false
				}
				failed[m[2]] = tests
			}
			tests, flaked, current = nil, map[string]bool{}, ""
		case failRE.MatchString(line):
			tests = append(tests, failRE.FindStringSubmatch(line)[1])
		case flakeRE.MatchString(line):
			flaked[current] = true
		}
	}
	if sc.Err() != nil {
		return nil, false
	}
	return failed, len(failed) > 0
}

// onlyTests is a -test.run pattern matching exactly the top-level tests
// named (with all their subtests).
func onlyTests(names []string) string {
	q := make([]string, len(names))
	for i, n := range names {
		q[i] = regexp.QuoteMeta(n)
	}
	return "^(" + strings.Join(q, "|") + ")$"
}
