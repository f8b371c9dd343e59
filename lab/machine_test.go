package main

import (
	"context"
	"errors"
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
	return machine{qemu: qemu, consoleLog: filepath.Join(dir, "console.log"), powerOffGrace: 200 * time.Millisecond,
		bootLimit: 500 * time.Millisecond}
}

// TestALabThatDoesNotPowerOff: a lab whose steps have all reported done but
// which then wedges is stopped after the grace period, with the steps'
// statuses as the outcome; one that wedges with a step left still fails at
// the time-out, and not as a lab that died, although it ran past its boot
// limit; one that powers off is followed to its end. A lab that never comes
// up is stopped at its boot limit as one that died, which runSteps boots
// again.
func TestALabThatDoesNotPowerOff(t *testing.T) {
	two := job.Job{Steps: []job.Step{{Label: "a"}, {Label: "b"}}}
	keepGoing := job.Job{Steps: []job.Step{{Label: "a", KeepGoing: true}, {Label: "b"}}}
	tests := []struct {
		name     string
		j        job.Job
		events   []string
		exit     bool
		wantErr  bool
		wantDied bool
		wantDone []int
		status   int
	}{
		{"every step done, then wedged", two, []string{"ready 1", "step a", "done 0", "step b", "done 0"}, false, false, false, []int{0, 0}, 0},
		{"a step failed, then wedged", two, []string{"ready 1", "step a", "done 3"}, false, false, false, []int{3}, 0},
		{"a step left, wedged", two, []string{"ready 1", "step a", "done 0", "step b"}, false, true, false, []int{0}, 0},
		{"a KeepGoing step failed, wedged", keepGoing, []string{"ready 1", "step a", "done 3"}, false, true, false, []int{3}, 0},
		{"powered off", two, []string{"ready 1", "step a", "done 0", "step b", "done 1", "exit 1"}, true, false, false, []int{0, 1}, 1},
		{"never up", two, nil, false, true, true, nil, 0},
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
			if died := errors.Is(err, errLabDied); died != tc.wantDied {
				t.Errorf("run: %v; a lab that died: %v, want %v", err, died, tc.wantDied)
			}
			if tc.wantDied && time.Since(start) > 2*time.Second {
				t.Errorf("a lab never up was stopped after %v, want its boot limit (500ms)", time.Since(start))
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

// TestALabNeverUpIsBootedAgain: runSteps boots a lab that did not come up
// within its boot limit once more, and the second boot's job counts.
func TestALabNeverUpIsBootedAgain(t *testing.T) {
	dir := t.TempDir()
	boots := filepath.Join(dir, "boots")
	script := "#!/bin/sh\necho >> " + boots + "\n" +
		"if [ $(wc -l < " + boots + ") -eq 1 ]; then exec sleep 600; fi\n"
	for _, e := range []string{"ready 1", "step a", "done 0", "exit 0"} {
		script += "echo '" + job.Marker + e + "'\n"
	}
	qemu := filepath.Join(dir, "qemu")
	if err := os.WriteFile(qemu, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	m := machine{qemu: qemu, jobFile: filepath.Join(dir, "job.json"), consoleLog: filepath.Join(dir, "console.log"),
		bootLimit: 300 * time.Millisecond}
	s := &session{o: &options{timeout: 20 * time.Second, retries: labRetries}, p: newProgress(io.Discard), out: io.Discard}
	status, err := s.runSteps(context.Background(), m, job.Job{Steps: []job.Step{{Label: "a"}}})
	if err != nil || status != 0 {
		t.Fatalf("runSteps = %d, %v; want 0 after a second boot", status, err)
	}
	if b, _ := os.ReadFile(boots); strings.Count(string(b), "\n") != 2 {
		t.Errorf("the lab was booted %d times, want 2", strings.Count(string(b), "\n"))
	}
}

// TestALabThatHalts: a lab that sends nothing in the middle of its job,
// not even its init's heartbeat, is stopped as one that died, so runSteps
// boots it again; one whose job is quiet but whose init beats is left to
// the job's time-out.
func TestALabThatHalts(t *testing.T) {
	one := job.Job{Steps: []job.Step{{Label: "a"}}}
	alive := "while :; do echo '" + job.Marker + job.EventAlive + "'; sleep 0.1; done\n"
	for _, tc := range []struct {
		name     string
		tail     string // what the fake QEMU does once its step has started
		wantDied bool
	}{
		{"halted", "exec sleep 600\n", true},
		{"quiet job, init alive", alive, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			script := "#!/bin/sh\necho '" + job.Marker + "ready 1'\necho '" + job.Marker + "step a'\n" + tc.tail
			qemu := filepath.Join(dir, "qemu")
			if err := os.WriteFile(qemu, []byte(script), 0o755); err != nil {
				t.Fatal(err)
			}
			m := machine{qemu: qemu, consoleLog: filepath.Join(dir, "console.log"), haltLimit: 600 * time.Millisecond}
			start := time.Now()
			_, err := m.run(context.Background(), newProgress(io.Discard), io.Discard, one, 3*time.Second)
			if err == nil {
				t.Fatal("run succeeded; the job never finished")
			}
			if died := errors.Is(err, errLabDied); died != tc.wantDied {
				t.Fatalf("run: %v; a lab that died: %v, want %v", err, died, tc.wantDied)
			}
			if tc.wantDied && (!strings.Contains(err.Error(), "halted") || time.Since(start) > 2*time.Second) {
				t.Errorf("run: %v after %v; want it stopped as halted within about its limit (600ms)", err, time.Since(start))
			}
		})
	}
}
