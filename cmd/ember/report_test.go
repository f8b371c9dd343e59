package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"ember/internal/kvmtest"
)

// TestRunReportsStateOnSIGUSR1: ember run answers SIGUSR1 with the VM's
// state on standard error (the vCPU in the guest's ring-3 loop, COM1, the
// disk's virtio function, named by its slot behind the edu device's, and the
// disk's totals) and the guest runs on until the time-out.
func TestRunReportsStateOnSIGUSR1(t *testing.T) {
	kvmtest.Require(t)
	disk := filepath.Join(t.TempDir(), "disk.img")
	if err := os.WriteFile(disk, make([]byte, 1<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr lockedBuffer
	root := newRootCmd()
	root.SetArgs([]string{"run", "--guest", "counter", "--edu", "--disk", disk, "--timeout", "20s"})
	root.SetOut(&stdout)
	root.SetErr(&stderr)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- root.ExecuteContext(ctx) }()
	// Ask until a report finds the guest in its ring-3 loop: one asked for
	// before the guest got there (its start-up runs at ring 0) shows CPL 0.
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(stderr.String(), " CPL 3 ") && time.Now().Before(deadline) {
		syscall.Kill(os.Getpid(), syscall.SIGUSR1)
		time.Sleep(100 * time.Millisecond)
	}
	select {
	case err := <-done:
		t.Fatalf("ember run ended before the report was done: %v\n%s", err, stderr.String())
	default:
	}
	cancel()
	err := <-done
	if ee, ok := err.(exitError); !ok || ee.code != exitHost {
		t.Errorf("ember run stopped from the host returned %v, want exit status %d", err, exitHost)
	}
	out := stderr.String()
	report := out[strings.LastIndex(out, "ember: state at ")+1:] // the last report
	for _, want := range []string{
		"(SIGUSR1):\n  vCPU 0: runnable RIP ",
		" CPL 3 ", // the counter guest counts at ring 3
		"\n  vCPU 0 LAPIC: ",
		"\n  IOAPIC: ",
		"\n  COM1: IER ",
		"\n  PCI 00:02.0 virtio-pci block: status 0x0 (), interrupts by INTx", // slot 1 is the edu device
		"\n  disk 0: 0 reads (0 bytes), 0 writes (0 bytes), 0 flushes, 0 discards; 0 I/O errors, 0 unsupported\n",
	} {
		if !strings.Contains(report, want) {
			t.Errorf("the report has no %q:\n%s", want, out)
		}
	}
}

// TestStateReportLineEnds: on a terminal in raw mode each line of a report
// ends in "\r\n" (raw mode adds no carriage return), elsewhere in "\n".
func TestStateReportLineEnds(t *testing.T) {
	for _, crlf := range []bool{false, true} {
		var out lockedBuffer
		r := &stateReporter{w: &out, crlf: crlf}
		r.report() // no machine attached
		got := out.String()
		want := "\n  no VM is running\n"
		if crlf {
			want = "\r\n  no VM is running\r\n"
		}
		if !strings.HasPrefix(got, "ember: state at ") || !strings.HasSuffix(got, want) || strings.Count(got, "\n") != 2 {
			t.Errorf("crlf %v: report %q, want a heading and %q", crlf, got, want)
		}
	}
}
