package main

import (
	"errors"
	"fmt"
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
	cmd.Stdout = out
	cmd.Stderr = out
	cmd.SysProcAttr = &syscall.SysProcAttr{Chroot: newRoot, Setsid: true}
	err := cmd.Run()
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
