package main

import (
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/spf13/cobra"

	"ember/internal/cli"
	"ember/internal/gobuild"
	"ember/lab/internal/kut"
	"ember/lab/job"
)

// newKutCmd is `lab kut DIR`: package kut plans and reports the
// kvm-unit-tests run; this command boots the lab for it.
func newKutCmd(o *options) *cobra.Command {
	var tests string
	var asJSON, markdown bool
	var logs string
	var testTimeout time.Duration
	cmd := &cobra.Command{
		Use:   "kut DIR [--tests a,b] [--json | --markdown] [--logs DIR]",
		Short: "run a built kvm-unit-tests tree's x86 tests under ember and under QEMU, inside the lab",
		Long: `kut runs the x86 tests of a built kvm-unit-tests tree (DIR) inside the lab,
each under ember and under QEMU (-machine accel=kvm), the way the suite's
own runner (run_tests.sh) drives QEMU: one test per process, with its
section of x86/unittests.cfg (kernel, test_args as the command line, smp,
extra_params/qemu_params, timeout, default 90 s), the suite's arch, accel,
check, disabled_if and nodefault rules, and its exit-status convention
(status 1 passes, 77 skips). It prints a table: each test, ember's result,
QEMU's, and why they differ (ember's first failing line, or QEMU's when ember
is the one that passed). It exits 1 if ember does not pass a test QEMU passes.

QEMU gets x86/run's command line without -device pci-testdev, which ember
lacks; ember gets 'ember run --kernel X.flat --cmdline ARGS --cpus N
--memory M --test-devices', M from -m or QEMU's default 128 MiB, and the
CPUID features the parameters remove (--cpuid-mask), --hyperv for -cpu's
Hyper-V enlightenments and, with them, --hyperv-testdev for -device
hyperv-testdev; the parameters ember has no equivalent for (CPU models, devices, machine options) are listed
with --json. Both get the suite's environment file as -initrd.

kvm-unit-tests is not part of ember: fetch and build it anywhere, then
point kut at it (docs/kvm-unit-tests.md):

  git clone https://gitlab.com/kvm-unit-tests/kvm-unit-tests.git /tmp/kut
  cd /tmp/kut && ./configure && make -j"$(nproc)"

and, from ember's repository: go run ./lab kut /tmp/kut`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if asJSON && markdown {
				return errors.New("--json and --markdown: choose one")
			}
			tree, err := kut.OpenTree(args[0])
			if err != nil {
				return err
			}
			plan, err := kut.NewPlan(tree, tests, testTimeout)
			if err != nil {
				return err
			}
			if !cmd.Flags().Changed("timeout") {
				o.timeout = plan.Budget
			}
			s, err := newSession(o)
			if err != nil {
				return err
			}
			defer s.close()
			s.p.say("building ember and the lab's kvm-unit-tests runner")
			ember, err := gobuild.Build(cmd.Context(), s.dir, "ember/cmd/ember")
			if err != nil {
				return err
			}
			runner, err := gobuild.Build(cmd.Context(), s.dir, "ember/lab")
			if err != nil {
				return err
			}
			var j job.Job
			for _, t := range plan.ToRun {
				argv := []string{runner, kut.TestCmd, "--ember", ember, "--dir", tree.Dir}
				if testTimeout > 0 {
					argv = append(argv, "--test-timeout", testTimeout.String())
				}
				j.Steps = append(j.Steps, job.Step{
					Label: "kut " + t.Name, Dir: tree.Dir, Args: append(argv, t.Name),
					Env: labEnv(), KeepGoing: true,
				})
			}
			c := kut.NewCollector(len(plan.ToRun), os.Stderr)
			var labErr error
			if len(j.Steps) > 0 {
				s.out = c
				labErr = s.run(cmd.Context(), j)
				c.Flush()
			}
			results := plan.Merge(c.Results())
			if logs != "" {
				if err := kut.WriteLogs(logs, c.Wires()); err != nil {
					return err
				}
			}
			switch {
			case asJSON:
				err = kut.WriteJSON(os.Stdout, tree, results)
			case markdown:
				err = kut.WriteMarkdown(os.Stdout, results)
			default:
				err = kut.WriteTable(os.Stdout, results)
			}
			if err != nil {
				return err
			}
			var status cli.Status
			switch {
			case errors.As(labErr, &status):
				// A kut-test step could not run its test; its message
				// went by above, and the table says "no result".
				return fmt.Errorf("a test step failed with status %d (its message is above)", status.ExitStatus())
			case labErr != nil:
				return labErr
			}
			return kut.Verdict(results)
		},
	}
	f := cmd.Flags()
	f.StringVar(&tests, "tests", "", "run only these tests (comma-separated section names of x86/unittests.cfg; nodefault tests run when named)")
	f.BoolVar(&asJSON, "json", false, "print the results as JSON")
	f.BoolVar(&markdown, "markdown", false, "print the table as Markdown")
	f.StringVar(&logs, "logs", "", "write each test's console output and VMM messages to this directory (NAME.ember.log, NAME.qemu.log)")
	f.DurationVar(&testTimeout, "test-timeout", 0, "every test's time-out, overriding unittests.cfg (the suite's TIMEOUT variable)")
	return cmd
}
