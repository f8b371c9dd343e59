package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestReportStuckAsksOnlyEmberRun: reportStuck sends an `ember run` in the
// group two SIGUSR1s and then a SIGQUIT, and leaves the group's other
// processes (a back-end, a shell) alone. The stand-in for ember is a shell
// named ember whose script, "run", logs each SIGUSR1.
func TestReportStuckAsksOnlyEmberRun(t *testing.T) {
	defer func(d time.Duration) { stuckReportGap = d }(stuckReportGap)
	stuckReportGap = 300 * time.Millisecond
	dir := t.TempDir()
	sh, err := exec.LookPath("sh")
	if err != nil {
		t.Fatalf("sh: %v", err)
	}
	shell, err := os.ReadFile(sh)
	if err != nil {
		t.Fatal(err)
	}
	ember := filepath.Join(dir, "ember")
	if err := os.WriteFile(ember, shell, 0o755); err != nil {
		t.Fatal(err)
	}
	script := "trap 'echo usr1 >> log' USR1\nwhile :; do sleep 0.05; done\n"
	if err := os.WriteFile(filepath.Join(dir, "run"), []byte(script), 0o644); err != nil {
		t.Fatal(err)
	}
	run := exec.Command(ember, "run")
	run.Dir, run.SysProcAttr = dir, &syscall.SysProcAttr{Setpgid: true}
	if err := run.Start(); err != nil {
		t.Fatal(err)
	}
	defer run.Process.Kill()
	other := exec.Command("sleep", "30")
	other.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pgid: run.Process.Pid}
	if err := other.Start(); err != nil {
		t.Fatal(err)
	}
	defer other.Process.Kill()
	time.Sleep(200 * time.Millisecond) // the trap is set

	if got := emberRuns(run.Process.Pid); len(got) != 1 || got[0] != run.Process.Pid {
		t.Fatalf("emberRuns = %v, want [%d] (not the sleep, %d)", got, run.Process.Pid, other.Process.Pid)
	}
	reportStuck(run.Process.Pid)
	err = run.Wait()
	if ws, ok := run.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGQUIT {
		t.Errorf("ember run ended with %v, want killed by SIGQUIT", err)
	}
	log, _ := os.ReadFile(filepath.Join(dir, "log"))
	if n := strings.Count(string(log), "usr1"); n != 2 {
		t.Errorf("ember run got %d SIGUSR1s, want 2", n)
	}
	if err := other.Process.Signal(syscall.Signal(0)); err != nil {
		t.Errorf("the other process of the group was signalled too: %v", err)
	}
}

// TestVMMOutput: a failed boot shows its standard error from the first state
// report on, bounded, or its last lines when there is none.
func TestVMMOutput(t *testing.T) {
	many := strings.Repeat("goroutine line\n", maxReportLines+10)
	tests := []struct {
		name, stderr string
		want         func(string) bool
	}{
		{"no report", "a\nb\nc\nd\n", func(s string) bool { return s == "c\nd" }},
		{"a report", "a\nb\n" + stateMark + "12:00:00.000 (SIGUSR1):\n  vCPU 0: halted\n", func(s string) bool {
			return s == stateMark+"12:00:00.000 (SIGUSR1):\n  vCPU 0: halted"
		}},
		{"a long dump", "x\n" + stateMark + "t\n" + many, func(s string) bool {
			lines := strings.Split(s, "\n")
			return len(lines) == maxReportLines+3 && lines[0] == stateMark+"t" && lines[maxReportLines+2] == "[...]"
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := vmmOutput(tt.stderr, 2); !tt.want(got) {
				t.Errorf("vmmOutput = %q", got)
			}
		})
	}
}
