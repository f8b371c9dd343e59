package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// stuckReportGap is how long reportStuck lets pass between the two state
// reports it asks for: long enough for a guest that still runs to have moved.
var stuckReportGap = 2 * time.Second

// reportStuck is what a boot that ran out of time does before it is killed:
// it asks every `ember run` in process group pgid for its VM's state
// (SIGUSR1) twice, stuckReportGap apart, so the reader sees whether the
// guest still moves, then for its goroutines (SIGQUIT, which ends it with
// every goroutine's stack). The boot's standard error then says where the
// guest and ember were. Processes other than ember run (a shell, a
// back-end, QEMU) are left to the kill that follows.
func reportStuck(pgid int) {
	pids := emberRuns(pgid)
	if len(pids) == 0 {
		return
	}
	for _, sig := range []syscall.Signal{syscall.SIGUSR1, syscall.SIGUSR1, syscall.SIGQUIT} {
		for _, pid := range pids {
			syscall.Kill(pid, sig)
		}
		time.Sleep(stuckReportGap)
	}
}

// emberRuns lists the processes of group pgid that run `ember run`.
func emberRuns(pgid int) []int {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if g, err := syscall.Getpgid(pid); err != nil || g != pgid {
			continue
		}
		cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil {
			continue
		}
		args := bytes.Split(cmdline, []byte{0})
		if len(args) > 1 && strings.HasPrefix(filepath.Base(string(args[0])), "ember") && string(args[1]) == "run" {
			pids = append(pids, pid)
		}
	}
	return pids
}

// stateMark begins each state report ember run writes on SIGUSR1.
const stateMark = "ember: state at "

// maxReportLines is how much vmmOutput shows of the state reports and the
// goroutine dump, beyond the n lines it shows anyway.
const maxReportLines = 300

// vmmOutput is the part of a failed boot's standard error worth showing:
// from the first state report on, if reportStuck got one (at most
// maxReportLines+n lines, the end cut), else its last n lines.
func vmmOutput(stderr string, n int) string {
	i := strings.Index(stderr, stateMark)
	if i < 0 {
		return tail(stderr, n)
	}
	lines := strings.Split(strings.TrimRight(stderr[i:], "\n"), "\n")
	if len(lines) > maxReportLines+n {
		lines = append(lines[:maxReportLines+n], "[...]")
	}
	return strings.Join(lines, "\n")
}
