package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"sync/atomic"
	"syscall"
	"time"

	"ember/lab/internal/every"
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
// the host's serial port.
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
	cmd.SysProcAttr = &syscall.SysProcAttr{Chroot: newRoot, Setsid: true}
	done := make(chan struct{})
	go watchdog(w, done)
	err := cmd.Run()
	close(done)
	var ee *exec.ExitError
	switch {
	case err == nil:
		return 0, time.Since(start)
	case errors.As(err, &ee):
		if ee.ExitCode() >= 0 {
			return ee.ExitCode(), time.Since(start)
		}
		fmt.Fprintf(out, "labinit: %s: %v\n", s.Label, err)
		return 128, time.Since(start)
	default:
		fmt.Fprintf(out, "labinit: %s: %v\n", s.Label, err)
		return 127, time.Since(start)
	}
}

// quietLimit is how long a step may print nothing before the watchdog asks
// the lab kernel for backtraces of every CPU and of blocked tasks.
const quietLimit = 5 * time.Minute

// activityWriter passes output on and remembers when it last did.
type activityWriter struct {
	w    io.Writer
	last atomic.Int64 // unix nanoseconds
}

func (a *activityWriter) Write(p []byte) (int, error) {
	a.touch()
	return a.w.Write(p)
}

func (a *activityWriter) touch() { a.last.Store(time.Now().UnixNano()) }

// watchdog reports a step that has gone quiet: the lab kernel's log (the
// first serial port, kept by the host) gets sysrq backtraces, so a hang in
// the lab can be told from a slow test.
func watchdog(a *activityWriter, done <-chan struct{}) {
	every.Tick(quietLimit/4, done, func() bool {
		if time.Since(time.Unix(0, a.last.Load())) < quietLimit {
			return true
		}
		// The console logs at level 4 (printing more, under software
		// emulation, from inside KVM's exit handling, made the lab
		// kernel crash far more often); the backtraces need 7.
		os.WriteFile("/proc/sys/kernel/printk", []byte("7"), 0)
		for _, c := range []string{"l", "w"} {
			os.WriteFile("/proc/sysrq-trigger", []byte(c), 0)
		}
		os.WriteFile("/proc/sys/kernel/printk", []byte("4"), 0)
		fmt.Fprintf(a.w, "labinit: no output for %v; CPU and blocked-task backtraces went to the lab kernel's log\n", quietLimit)
		a.touch()
		return true
	})
}
