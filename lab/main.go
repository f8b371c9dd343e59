// Command lab runs ember where KVM is as users have it: hardware
// virtualization. It boots a QEMU machine in software emulation whose CPU
// exposes AMD SVM with nested paging, loads Debian's kvm-amd inside, shares
// the host's root filesystem read-only, and runs ember's tests or commands
// there. Any machine with Debian's packages can run it, with or without a
// /dev/kvm of its own.
//
//	go run ./lab test [packages] [-run regexp]   KVM-using tests, inside the lab
//	go run ./lab linux                           Debian's kernel to userspace under ember (and QEMU)
//	go run ./lab exec -- <ember args>            any ember command inside the lab
//	go run ./lab kut DIR                         kvm-unit-tests' x86 tests under ember and QEMU
//	go run ./lab virtio                          virtio-blk from inside Linux, ember against QEMU
//	go run ./lab net                             TCP over virtio-net from inside Linux, ember against QEMU
//	go run ./lab pool FILE...                    several benchmark runs kept with --records, as one sample
//
// What it needs (Debian's qemu-system-x86 and linux-image-amd64 packages) it
// installs or downloads itself, into the user's cache directory.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"ember/internal/cli"
	"ember/lab/internal/kut"
	"ember/lab/job"
)

// options are the lab machine's settings, shared by every command.
type options struct {
	cpus    int
	memMiB  int
	timeout time.Duration
	keep    bool
	retries int // boots after deaths with nothing new done (labRetries)
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	root := newRootCmd()
	root.SetArgs(goTestFlags(os.Args[1:]))
	err := root.ExecuteContext(ctx)
	stop()
	cli.Exit("lab", err)
}

// goTestFlags lets `lab test` take go test's single-dash -run (pflag wants
// --run), so a go test command line can be reused as it is.
func goTestFlags(args []string) []string {
	out := make([]string, len(args))
	for i, a := range args {
		if a == "-run" || strings.HasPrefix(a, "-run=") {
			a = "-" + a
		}
		out[i] = a
	}
	return out
}

func newRootCmd() *cobra.Command {
	var o options
	root := &cobra.Command{
		Use:   "lab",
		Short: "run ember on hardware-virtualization KVM, anywhere",
		Long: `lab boots a QEMU machine (software emulation, -cpu max: AMD SVM with
nested paging) with Debian's kvm-amd, shares this machine's root filesystem
into it read-only, and runs ember's tests or commands there.`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.PersistentFlags().IntVar(&o.cpus, "cpus", 2, "CPUs the job runs on: the lab machine has one more, its CPU 0, which the job is kept off (every lab kernel death seen was there)")
	root.PersistentFlags().IntVar(&o.memMiB, "memory", 6144, "memory of the lab machine, MiB")
	root.PersistentFlags().DurationVar(&o.timeout, "timeout", 30*time.Minute, "stop the lab after this long")
	root.PersistentFlags().BoolVar(&o.keep, "keep", false, "keep the run directory (binaries, job, lab kernel log)")
	root.PersistentFlags().IntVar(&o.retries, "retries", labRetries, "boot a lab that died this many times more with nothing new done in between (a long benchmark in a lab that dies often wants more; --timeout still bounds the run)")
	root.AddCommand(newTestCmd(&o), newExecCmd(&o), newLinuxCmd(&o), newTimeBootsCmd(),
		newKutCmd(&o), kut.TestCommand(), newVirtioCmd(&o), newTimeVirtioCmd(), newNetCmd(&o), newTimeNetCmd(), newPoolCmd())
	return root
}

// session is one lab run being prepared on the host: its directory (inside
// the cache, so visible in the lab at the same path) and the progress line.
type session struct {
	o     *options
	p     *progress
	cache string
	dir   string
	out   io.Writer // where the job's output goes; nil: standard output
	// records, if not nil, gets the records the job prints (machine.records).
	records io.Writer
}

func newSession(o *options) (*session, error) {
	cache, err := cacheDir()
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Join(cache, "runs"), 0o755); err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp(filepath.Join(cache, "runs"), "run-")
	if err != nil {
		return nil, err
	}
	return &session{o: o, p: newProgress(os.Stderr), cache: cache, dir: dir}, nil
}

// close removes the run directory unless --keep was given.
func (s *session) close() {
	if s.o.keep {
		fmt.Fprintln(os.Stderr, "lab: kept", s.dir)
		return
	}
	os.RemoveAll(s.dir)
}

// run boots the lab with j and returns its status as an error (nil for 0).
func (s *session) run(ctx context.Context, j job.Job) error {
	qemu, err := ensureQEMU(s.p)
	if err != nil {
		return err
	}
	kf, err := ensureKernel(s.p, s.cache, labKernelMeta, labModules)
	if err != nil {
		return err
	}
	s.p.say("building the lab's init and initramfs")
	initrd, err := buildInitramfs(ctx, s.dir, kf)
	if err != nil {
		return err
	}
	jobFile := filepath.Join(s.dir, "job.json")
	m := machine{
		qemu: qemu, kernel: kf.Vmlinuz, initrd: initrd, jobFile: jobFile,
		consoleLog: filepath.Join(s.cache, "console.log"),
		cpus:       s.o.cpus + 1, memMiB: s.o.memMiB, // the lab kernel's CPU 0 besides the job's
		records: s.records,
	}
	status, err := s.runSteps(ctx, m, j)
	if err != nil {
		return err
	}
	s.p.say(fmt.Sprintf("done, exit status %d", status))
	if status != 0 {
		return cli.Code(status)
	}
	return nil
}

// labRetries is how many times a lab machine that died (its kernel crashed:
// QEMU's software SVM is not flawless) is booted again for the steps that
// had not completed. The lab kernel's known crash ("corrupted stack end
// detected inside scheduler", in a thread of a KVM-using test process) came
// twice in one CI run's cmd/ember step, the longest, so a run gets four
// more boots; each crash is printed with the lab kernel's log. A crash
// after which a step finished, a benchmark finished more boots
// (job.EventRecord) or a test binary passed more tests (job.Step.GoTest)
// does not count: the run is getting somewhere, and --timeout still bounds
// it. --retries sets another number. (No lab that kept the job off its
// CPU 0, labinit's keepOffCPU0, died in the runs of 2026-12-07 that
// brought the rule in: about forty minutes of benchmarks and tests.)
const labRetries = 4

// runSteps runs the job, booting the lab again for what is left when the
// machine dies mid-job, and returns the first non-zero step status (or the
// job's status).
func (s *session) runSteps(ctx context.Context, m machine, j job.Job) (int, error) {
	// --timeout bounds the whole run, reboots included.
	ctx, cancel := context.WithTimeout(ctx, s.o.timeout)
	defer cancel()
	status, deaths, given := 0, 0, 0
	for attempt := 0; ; attempt++ {
		if err := job.Write(m.jobFile, j); err != nil {
			return 0, err
		}
		out := s.out
		if out == nil {
			out = os.Stdout
		}
		o, err := m.run(ctx, s.p, out, j, s.o.timeout)
		for _, code := range o.done {
			if status == 0 {
				status = code
			}
		}
		if err == nil {
			if status == 0 {
				status = o.status
			}
			return status, nil
		}
		if !errors.Is(err, errLabDied) {
			return 0, err
		}
		// A GoTest step prints only the tests that pass in this boot; those
		// of the boots before are on the step.
		if dying := len(o.done); dying < len(j.Steps) && j.Steps[dying].GoTest {
			o.records = append(slices.Clone(j.Steps[dying].Passed), o.records...)
		}
		if len(o.done) == 0 && len(o.records) <= given {
			deaths++
		}
		if deaths > s.o.retries {
			return 0, err
		}
		// The step that was running when the machine died runs again from
		// its start, with those after it.
		left := j.Steps[min(len(o.done), len(j.Steps)):]
		if len(left) == 0 || status != 0 && len(o.done) > 0 && !j.Steps[len(o.done)-1].KeepGoing {
			return status, nil
		}
		fmt.Fprintf(os.Stderr, "lab: %v\nlab: booting the lab again for the %d steps left\n", err, len(left))
		j.Steps = left
		if given, err = s.resume(&j.Steps[0], attempt, o.records); err != nil {
			return 0, err
		}
	}
}

// resume gives step, which the lab died under, the records it printed
// (outcome.records) for its next run, if it takes them (ResumeFlag): in a
// file in the session's directory, which the lab sees, named by its flag
// in place of any file an earlier run was given. The step prints the
// records it was given again, so each file holds every one so far. A
// GoTest step is given the tests that passed to skip (skipPassed). It
// returns how many records it gave.
func (s *session) resume(step *job.Step, attempt int, records []string) (int, error) {
	if step.GoTest && len(records) > 0 {
		skipPassed(step, records)
		return len(step.Passed), nil
	}
	if step.ResumeFlag == "" || len(records) == 0 {
		return 0, nil
	}
	path := filepath.Join(s.dir, fmt.Sprintf("records-%d.txt", attempt+1))
	if err := os.WriteFile(path, []byte(strings.Join(records, "\n")+"\n"), 0o644); err != nil {
		return 0, fmt.Errorf("lab: keeping what the step did before the lab died: %w", err)
	}
	if i := slices.Index(step.Args, step.ResumeFlag); i >= 0 && i+1 < len(step.Args) {
		step.Args[i+1] = path
	} else {
		step.Args = append(step.Args, step.ResumeFlag, path)
	}
	fmt.Fprintf(os.Stderr, "lab: the step goes on from the %d records it printed (%s %s)\n", len(records), step.ResumeFlag, path)
	return len(records), nil
}

// labEnv is the environment of every command run in the lab: the host's
// PATH and Go settings, ember's variables, and KVM required.
func labEnv(extra ...string) []string {
	env := []string{
		"PATH=" + os.Getenv("PATH") + ":/usr/local/go/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
		"HOME=" + os.Getenv("HOME"),
		"TERM=dumb",
		"EMBER_REQUIRE_KVM=1",
		"EMBER_LAB=1",
	}
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(k, "EMBER_") && k != "EMBER_REQUIRE_KVM" && k != "EMBER_LAB" ||
			strings.HasPrefix(k, "GO") {
			env = append(env, kv)
		}
	}
	return append(env, extra...)
}
