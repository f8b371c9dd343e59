package main

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"ember/lab/job"
)

// fakeLab writes a stand-in for QEMU that prints the init's marker lines
// given, then sleeps as a wedged machine would (or exits, with exit set).
func fakeLab(t *testing.T, events []string, exit bool) machine {
	t.Helper()
	dir := t.TempDir()
	var b strings.Builder
	b.WriteString("#!/bin/sh\n")
	for _, e := range events {
		b.WriteString("echo '" + job.Marker + e + "'\n")
	}
	if !exit {
		b.WriteString("exec sleep 600\n")
	}
	qemu := filepath.Join(dir, "qemu")
	if err := os.WriteFile(qemu, []byte(b.String()), 0o755); err != nil {
		t.Fatal(err)
	}
	return machine{qemu: qemu, consoleLog: filepath.Join(dir, "console.log"), powerOffGrace: 200 * time.Millisecond}
}

// TestALabThatDoesNotPowerOff: a lab whose steps have all reported done but
// which then wedges is stopped after the grace period, with the steps'
// statuses as the outcome; one that wedges with a step left still fails at
// the time-out; one that powers off is followed to its end.
func TestALabThatDoesNotPowerOff(t *testing.T) {
	two := job.Job{Steps: []job.Step{{Label: "a"}, {Label: "b"}}}
	keepGoing := job.Job{Steps: []job.Step{{Label: "a", KeepGoing: true}, {Label: "b"}}}
	tests := []struct {
		name     string
		j        job.Job
		events   []string
		exit     bool
		wantErr  bool
		wantDone []int
		status   int
	}{
		{"every step done, then wedged", two, []string{"ready 1", "step a", "done 0", "step b", "done 0"}, false, false, []int{0, 0}, 0},
		{"a step failed, then wedged", two, []string{"ready 1", "step a", "done 3"}, false, false, []int{3}, 0},
		{"a step left, wedged", two, []string{"ready 1", "step a", "done 0", "step b"}, false, true, []int{0}, 0},
		{"a KeepGoing step failed, wedged", keepGoing, []string{"ready 1", "step a", "done 3"}, false, true, []int{3}, 0},
		{"powered off", two, []string{"ready 1", "step a", "done 0", "step b", "done 1", "exit 1"}, true, false, []int{0, 1}, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := fakeLab(t, tc.events, tc.exit)
			start := time.Now()
			o, err := m.run(context.Background(), newProgress(io.Discard), io.Discard, tc.j, 3*time.Second)
			if took := time.Since(start); took > 10*time.Second {
				t.Errorf("run took %v", took)
			}
			if (err != nil) != tc.wantErr {
				t.Fatalf("run: %v, want error %v", err, tc.wantErr)
			}
			if !slices.Equal(o.done, tc.wantDone) {
				t.Errorf("steps done with %v, want %v", o.done, tc.wantDone)
			}
			if err == nil && (!o.finished || o.status != tc.status) {
				t.Errorf("outcome %+v, want finished with status %d", o, tc.status)
			}
		})
	}
}
