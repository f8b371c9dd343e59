package main

import (
	"maps"
	"regexp"
	"slices"
	"testing"
)

// TestFlakedFailures: failed tests are run again only when every failed
// package named its failed tests and one of them logged the flake mark,
// in go test's output with -v (a test's log before its verdict) and
// without (after it).
func TestFlakedFailures(t *testing.T) {
	const (
		okStep    = "ok  \tember/hv\t12.00s (in the lab)\n"
		failEmber = "FAIL\tember/cmd/ember\t983.14s (in the lab)\n"
		failVMM   = "FAIL\tember/vmm\t80.00s (in the lab)\n"
		flake     = "        linux_test.go:186: lab flake (stalled), booting again: ember: stopped by host\n"
		flakeVMM  = "    linux_test.go:162: lab flake, booting again\n"
	)
	tests := []struct {
		name  string
		out   string
		want  map[string][]string
		rerun bool
	}{
		{"all passed", okStep, nil, false},
		{"flaked, then failed",
			okStep + "--- FAIL: TestLinuxToUserspace (440.12s)\n    --- FAIL: TestLinuxToUserspace/pvh/1cpu (240.43s)\n" + flake +
				"--- FAIL: TestLinuxVirtioConsole (153.48s)\n" + flake + "FAIL\n" + failEmber,
			map[string][]string{"ember/cmd/ember": {"TestLinuxToUserspace", "TestLinuxVirtioConsole"}}, true},
		{"two packages flaked",
			"--- FAIL: TestLinuxBoots (80.00s)\n" + flakeVMM + "FAIL\n" + failVMM +
				"--- FAIL: TestLinuxToUserspace (440.12s)\n" + flake + "FAIL\n" + failEmber,
			map[string][]string{"ember/vmm": {"TestLinuxBoots"}, "ember/cmd/ember": {"TestLinuxToUserspace"}}, true},
		{"a failure with no flake",
			"--- FAIL: TestPause (1.00s)\n    pause_test.go:40: vCPU 0 did not stop\nFAIL\n" + failVMM, nil, false},
		{"one package flaked, another failed plainly",
			"--- FAIL: TestLinuxToUserspace (440.12s)\n" + flake + "FAIL\n" + failEmber +
				"--- FAIL: TestPause (1.00s)\nFAIL\n" + failVMM, nil, false},
		{"a panic names no test",
			flake + "panic: runtime error: index out of range\n" + failEmber, nil, false},
		{"the mark in a passing package does not carry over",
			flake + okStep + "--- FAIL: TestPause (1.00s)\nFAIL\n" + failVMM, nil, false},
		{"-v: flaked, then failed",
			"=== RUN   TestLinuxBoots\n" + flakeVMM + "--- FAIL: TestLinuxBoots (80.00s)\nFAIL\n" + failVMM,
			map[string][]string{"ember/vmm": {"TestLinuxBoots"}}, true},
		{"-v: a parallel subtest flaked, then failed",
			"=== RUN   TestLinuxToUserspace\n=== RUN   TestLinuxToUserspace/pvh\n=== PAUSE TestLinuxToUserspace/pvh\n" +
				"=== RUN   TestLinuxBoots2\n--- PASS: TestLinuxBoots2 (1.00s)\n=== CONT  TestLinuxToUserspace/pvh\n" + flake +
				"    --- FAIL: TestLinuxToUserspace/pvh (240.43s)\n--- FAIL: TestLinuxToUserspace (440.12s)\nFAIL\n" + failEmber,
			map[string][]string{"ember/cmd/ember": {"TestLinuxToUserspace"}}, true},
		{"-v: one test flaked and passed, another failed plainly",
			"=== RUN   TestLinuxBoots\n" + flakeVMM + "--- PASS: TestLinuxBoots (80.00s)\n" +
				"=== RUN   TestPause\n    pause_test.go:40: vCPU 0 did not stop\n--- FAIL: TestPause (1.00s)\nFAIL\n" + failVMM, nil, false},
		{"the mark quoted in a message is not a log line",
			"--- FAIL: TestX (1.00s)\n    x_test.go:9: got \"no lab flake\"\nFAIL\n" + failVMM, nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, rerun := flakedFailures(tt.out)
			if rerun != tt.rerun || tt.rerun && !maps.EqualFunc(got, tt.want, func(a, b []string) bool { return slices.Equal(a, b) }) {
				t.Errorf("flakedFailures = %v, %v; want %v, %v", got, rerun, tt.want, tt.rerun)
			}
		})
	}
}

// TestOnlyTestsMatchesExactlyTheNamed: the rerun pattern matches the named
// top-level tests (so their subtests run) and no test whose name merely
// begins like one of them.
func TestOnlyTestsMatchesExactlyTheNamed(t *testing.T) {
	re := regexp.MustCompile(onlyTests([]string{"TestLinuxToUserspace", "TestLinuxVirtioConsole"}))
	for name, want := range map[string]bool{
		"TestLinuxToUserspace":       true,
		"TestLinuxVirtioConsole":     true,
		"TestLinuxToUserspaceTwice":  false,
		"XTestLinuxToUserspace":      false,
		"TestLinuxVirtioConsoleSlow": false,
	} {
		if got := re.MatchString(name); got != want {
			t.Errorf("%q matches %v, want %v", name, got, want)
		}
	}
}
