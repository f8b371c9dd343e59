package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"ember/internal/gobuild"
	"ember/internal/kvmtest"
	"ember/lab/job"
)

// A package's tests use KVM when they import kvmtest (whose Require every
// such test calls) or, in package kvm itself (which imports nothing of
// ember, tests included), name the variable that kvmtest.Require reads.
const (
	kvmTestImport = "ember/internal/kvmtest"
	kvmTestEnv    = `"EMBER_REQUIRE_KVM"`
)

func newTestCmd(o *options) *cobra.Command {
	var f testFlags
	cmd := &cobra.Command{
		Use:   "test [packages] [-run regexp] [-v] [--count n] [--bench regexp]",
		Short: "run the KVM-using tests inside the lab",
		Long: `test builds the test binary of every listed package whose tests use KVM
(default ./...) on this machine, runs them inside the lab with
EMBER_REQUIRE_KVM=1 (a missing /dev/kvm fails), streams their output, and
exits with the first failing status. Packages whose tests need no KVM are
left to 'go test' on this machine.

A lab whose kernel dies (QEMU's software SVM is not flawless) is booted
afresh, and the package it died under goes on after the tests that had
passed (the binaries run with -test.v for their "--- PASS" lines, which the
output shows only with -v; -test.skip names them).

A test that boots Linux boots once more when the lab fails its guest (QEMU's
software SVM now and then triple-faults or stalls one) and logs "lab flake".
When every failed package has such a test, the failed tests run once more in
a lab booted afresh, and that run's verdict is the job's.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				args = []string{"./..."}
			}
			s, err := newSession(o)
			if err != nil {
				return err
			}
			defer s.close()
			pkgs, err := kvmPackages(cmd.Context(), args)
			if err != nil {
				return err
			}
			if len(pkgs) == 0 {
				return fmt.Errorf("none of %s has tests that use KVM", strings.Join(args, " "))
			}
			s.p.say(fmt.Sprintf("building %d test binaries", len(pkgs)))
			steps := map[string]job.Step{}
			var j job.Job
			for _, p := range pkgs {
				bin := filepath.Join(s.dir, strings.ReplaceAll(p.path, "/", "_")+".test")
				c := exec.CommandContext(cmd.Context(), gobuild.Tool(), "test", "-c", "-o", bin, p.path)
				if out, err := c.CombinedOutput(); err != nil {
					return fmt.Errorf("go test -c %s: %w\n%s", p.path, err, out)
				}
				argv := f.argv(bin, f.run)
				step := job.Step{Label: p.path, Dir: p.dir, Args: argv, Env: labEnv(), KeepGoing: true,
					GoTest: f.resumable()}
				steps[p.path] = step
				j.Steps = append(j.Steps, step)
			}
			var out bytes.Buffer
			s.out = io.MultiWriter(f.stdout(), &out)
			err = s.run(cmd.Context(), j)
			if err == nil {
				return nil
			}
			failed, rerun := flakedFailures(out.String())
			if !rerun {
				return err
			}
			return s.rerun(cmd.Context(), f, steps, failed)
		},
	}
	cmd.Flags().StringVar(&f.run, "run", "", "run only the tests matching this regexp (as go test -run)")
	cmd.Flags().BoolVarP(&f.verbose, "verbose", "v", false, "verbose test output (as go test -v)")
	cmd.Flags().StringVar(&f.bench, "bench", "", "run the benchmarks matching this regexp, 5 iterations each (as go test -bench -benchtime 5x), and no tests unless -run says")
	cmd.Flags().IntVar(&f.count, "count", 1, "run each test this many times (as go test -count), to hunt a flaky one")
	return cmd
}

// testFlags are lab test's flags for the test binaries.
type testFlags struct {
	run     string
	verbose bool
	count   int
	bench   string
}

// resumable reports whether the steps run the tests so that a lab that
// dies goes on after those that passed (job.Step.GoTest): each test once.
func (f testFlags) resumable() bool { return f.count <= 1 }

// stdout is where the job's output is shown: as it is with -v; without,
// as go test shows it, for the binaries run with -test.v all the same.
func (f testFlags) stdout() io.Writer {
	if f.verbose {
		return os.Stdout
	}
	return quietWriter{os.Stdout}
}

// argv is the command line of test binary bin with f's flags and -test.run
// pattern run. It has -test.v for a resumable step too, whose passes the
// host counts; without -v the host drops what only -v prints.
func (f testFlags) argv(bin, run string) []string {
	argv := []string{bin, "-test.timeout=20m"}
	if run != "" {
		argv = append(argv, "-test.run="+run)
	}
	if f.verbose || f.resumable() {
		argv = append(argv, "-test.v")
	}
	if f.bench != "" {
		argv = append(argv, "-test.bench="+f.bench, "-test.benchtime=5x")
		if run == "" {
			argv = append(argv, "-test.run=^$")
		}
	}
	if f.count > 1 {
		argv = append(argv, fmt.Sprintf("-test.count=%d", f.count))
	}
	return argv
}

// rerun runs the tests that failed after the lab flaked (flakedFailures:
// package → tests) once more, in a lab booted afresh, and returns that
// run's verdict, which is then the job's: every other test passed the
// first time. The first lab's kernel log is kept beside the second's.
func (s *session) rerun(ctx context.Context, f testFlags, steps map[string]job.Step, failed map[string][]string) error {
	var j job.Job
	var names []string
	for _, label := range slices.Sorted(maps.Keys(failed)) {
		step := steps[label]
		step.Args = f.argv(step.Args[0], onlyTests(failed[label]))
		j.Steps = append(j.Steps, step)
		names = append(names, label+": "+strings.Join(failed[label], ", "))
	}
	kept := filepath.Join(s.cache, "console.flaked.log")
	os.Rename(filepath.Join(s.cache, "console.log"), kept)
	fmt.Fprintf(os.Stderr, "lab: these tests failed after logging %q (the lab's guest triple-faulted or stalled); running them once more in a freshly booted lab (the first lab kernel's log: %s):\n  %s\n",
		kvmtest.FlakeMark, kept, strings.Join(names, "\n  "))
	s.out = f.stdout()
	return s.run(ctx, j)
}

// pkg is a package whose tests use KVM.
type pkg struct{ path, dir string }

// kvmPackages lists the packages matching patterns whose tests import
// kvmtest.
func kvmPackages(ctx context.Context, patterns []string) ([]pkg, error) {
	args := append([]string{"list", "-f", "{{.ImportPath}}\t{{.Dir}}\t{{join .TestGoFiles \" \"}} {{join .XTestGoFiles \" \"}}\t{{join .TestImports \" \"}} {{join .XTestImports \" \"}}"}, patterns...)
	c := exec.CommandContext(ctx, gobuild.Tool(), args...)
	var stderr bytes.Buffer
	c.Stderr = &stderr
	out, err := c.Output()
	if err != nil {
		return nil, fmt.Errorf("go list %s: %w\n%s", strings.Join(patterns, " "), err, stderr.String())
	}
	var pkgs []pkg
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.SplitN(line, "\t", 4)
		if len(f) != 4 {
			continue
		}
		if strings.Contains(" "+f[3]+" ", " "+kvmTestImport+" ") || mentions(f[1], strings.Fields(f[2]), kvmTestEnv) {
			pkgs = append(pkgs, pkg{f[0], f[1]})
		}
	}
	return pkgs, nil
}

// mentions reports whether any of the files (in dir) contains s.
func mentions(dir string, files []string, s string) bool {
	for _, f := range files {
		b, err := os.ReadFile(filepath.Join(dir, f))
		if err == nil && bytes.Contains(b, []byte(s)) {
			return true
		}
	}
	return false
}
