package main

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"syscall"
	"time"

	"ember/lab/job"
)

// runJob runs the job's steps in order inside newRoot and returns the first
// non-zero status (or 0).
func runJob(j job.Job) int {
	status := 0
	for _, s := range j.Steps {
		fmt.Fprintf(out, "%s%s %s\n", job.Marker, job.EventStep, s.Label)
		code, took := runStep(s)
		verdict := "ok  "
		if code != 0 {
			verdict = "FAIL"
		}
		fmt.Fprintf(out, "%s\t%s\t%.2fs (in the lab)\n", verdict, s.Label, took.Seconds())
		fmt.Fprintf(out, "%s%s %d\n", job.Marker, job.EventDone, code)
		if code != 0 && status == 0 {
			status = code
		}
		if code != 0 && !s.KeepGoing {
			break
		}
	}
	return status
}

// runStep runs one command chrooted into the host root, with its output on
// the host's serial port, and returns its exit status. Processes the
// command leaves behind in its session are reported and killed.
func runStep(s job.Step) (int, time.Duration) {
	start := time.Now()
	if len(s.Args) == 0 {
		fmt.Fprintln(out, "labinit: a step with no command")
		return 125, 0
	}
	// Not exec.Command: it would look Args[0] up here, outside the chroot.
	cmd := &exec.Cmd{Path: s.Args[0], Args: s.Args, Dir: s.Dir}
	cmd.Env = s.Env
	w := &activityWriter{w: out}
	w.touch()
	cmd.Stdout = w
	cmd.Stderr = w
	cmd.SysProcAttr = &syscall.SysProcAttr{Chroot: newRoot}
	return runCmd(s.Label, cmd, w, stepLimits), time.Since(start)
}

// runCmd starts cmd (its output going to w) in a session of its own,
// supervises it within lim and returns its status. Processes it leaves
// behind in its session are reported and killed.
func runCmd(label string, cmd *exec.Cmd, w *activityWriter, lim limits) int {
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Setsid = true
	// A process the command started and left running may hold its output
	// open: once the command itself has exited, stop reading after a while.
	cmd.WaitDelay = lim.pipeGrace
	if err := cmd.Start(); err != nil {
		fmt.Fprintf(out, "labinit: %s: %v\n", label, err)
		return 127
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	code := lim.supervise(label, cmd.Process.Pid, w, exited)
	if left := live(sessionProcs(cmd.Process.Pid)); len(left) > 0 {
		fmt.Fprintf(out, "labinit: %s left %d processes behind; killing them:\n", label, len(left))
		describe(out, left, false)
		killAll(left)
	}
	return code
}

// limits are the times supervise allows a step (stepLimits in the lab,
// shorter in tests).
type limits struct {
	// quiet is how long a step may print nothing before labinit asks
	// the lab kernel for backtraces of every CPU and of blocked tasks, and
	// lists what the step's threads wait on.
	quiet time.Duration
	// exitGrace is how long a test binary may take to exit after printing
	// its verdict (go test's last line, PASS or FAIL). Nothing a test
	// checks runs after that line, and Go's exit waits on nothing of the
	// program's, only on the kernel (on 2026-12-07 a CI run's test binary
	// printed PASS and was still there 18 minutes later, no CPU busy, no
	// task blocked).
	exitGrace time.Duration
	// killGrace is how long a step killed after exitGrace has to go.
	killGrace time.Duration
	// pipeGrace is how long a step's output is read after its command
	// has exited (cmd.WaitDelay).
	pipeGrace time.Duration
	// every is how often supervise looks at a running step.
	every time.Duration
}

// stepLimits are the lab's.
var stepLimits = limits{
	quiet:     5 * time.Minute,
	exitGrace: 2 * time.Minute,
	killGrace: 30 * time.Second,
	pipeGrace: 30 * time.Second,
	every:     15 * time.Second,
}

// supervise waits for a step's command (pid, whose Wait reports on
// exited) and returns its exit status. Meanwhile it reports a step that
// has gone quiet, and ends one whose test binary printed its verdict and
// did not exit (endStuck).
func (lim limits) supervise(label string, pid int, w *activityWriter, exited <-chan error) int {
	t := time.NewTicker(lim.every)
	defer t.Stop()
	for {
		select {
		case err := <-exited:
			return lim.exitStatus(label, err)
		case <-t.C:
		}
		if v, at := w.verdict(); v != "" && time.Since(at) >= lim.exitGrace {
			return lim.endStuck(label, pid, v, exited)
		}
		if time.Since(time.Unix(0, w.last.Load())) >= lim.quiet {
			reportQuiet(pid, lim.quiet)
			w.touch()
		}
	}
}

// exitStatus is the step's status from its command's Wait.
func (lim limits) exitStatus(label string, err error) int {
	var ee *exec.ExitError
	switch {
	case err == nil:
		return 0
	case errors.Is(err, exec.ErrWaitDelay):
		// The command exited 0; something it left held its output.
		fmt.Fprintf(out, "labinit: %s: its output was still open %v after it exited\n", label, lim.pipeGrace)
		return 0
	case errors.As(err, &ee):
		if ee.ExitCode() >= 0 {
			return ee.ExitCode()
		}
		fmt.Fprintf(out, "labinit: %s: %v\n", label, err)
		return 128
	default:
		fmt.Fprintf(out, "labinit: %s: %v\n", label, err)
		return 127
	}
}

// reportQuiet reports a step that has printed nothing for quiet: the
// lab kernel's log (the first serial port, kept by the host) gets sysrq
// backtraces, and the step's output a line for each of its processes,
// so a hang in the lab can be told from a slow test.
func reportQuiet(pid int, quiet time.Duration) {
	// The console logs at level 4 (printing more, under software
	// emulation, from inside KVM's exit handling, made the lab kernel
	// crash far more often); the backtraces need 7.
	os.WriteFile("/proc/sys/kernel/printk", []byte("7"), 0)
	for _, c := range []string{"l", "w"} {
		os.WriteFile("/proc/sysrq-trigger", []byte(c), 0)
	}
	os.WriteFile("/proc/sys/kernel/printk", []byte("4"), 0)
	fmt.Fprintf(out, "labinit: no output for %v; CPU and blocked-task backtraces went to the lab kernel's log; the step's processes:\n", quiet)
	describe(out, live(sessionProcs(pid)), false)
}

// endStuck ends a step whose test binary printed its verdict lim.exitGrace ago
// and is still there: it lists the step's threads with their kernel
// stacks, kills them, and returns the verdict's status (0 for PASS), for
// the tests ran to the end and that is their result.
func (lim limits) endStuck(label string, pid int, verdict string, exited <-chan error) int {
	ps := live(sessionProcs(pid))
	fmt.Fprintf(out, "labinit: %s printed %s and had not exited %v later; its threads and their kernel stacks:\n", label, verdict, lim.exitGrace)
	describe(out, ps, true)
	killAll(ps)
	deadline := time.After(lim.killGrace)
	select {
	case <-exited:
		fmt.Fprintf(out, "labinit: %s killed; its verdict %s stands\n", label, verdict)
		// Let the rest of the session die too before runCmd looks for it.
		for len(live(sessionProcs(pid))) > 0 {
			select {
			case <-deadline:
				return verdictStatus(verdict)
			case <-time.After(10 * time.Millisecond):
			}
		}
	case <-deadline:
		fmt.Fprintf(out, "labinit: %s still there %v after SIGKILL; left behind, its verdict %s stands\n", label, lim.killGrace, verdict)
	}
	return verdictStatus(verdict)
}

// verdictStatus is the exit status go test gives a verdict.
func verdictStatus(verdict string) int {
	if verdict == "PASS" {
		return 0
	}
	return 1
}
