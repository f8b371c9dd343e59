// Package job is the contract between the lab's host side (package main in
// lab/) and its init inside the QEMU machine (lab/labinit): which commands to
// run, where and with what environment, and the marker lines the init prints
// so the host can follow along.
package job

import (
	"encoding/json"
	"fmt"
	"os"
)

// Marker starts every line the lab's init writes for the host rather than
// for the user; the rest of the line is one of the events below.
const Marker = "@@ember-lab@@ "

// Events that follow Marker.
const (
	// EventReady is printed when /dev/kvm is up and the host root mounted,
	// followed by the seconds since the lab kernel started.
	EventReady = "ready"
	// EventStep is printed before each step, followed by its label.
	EventStep = "step"
	// EventDone is printed after each step, followed by its exit status.
	EventDone = "done"
	// EventExit is printed last, followed by the job's exit status.
	EventExit = "exit"
	// EventAlive is printed every 30 s while the job runs, so the host can
	// tell a quiet job from a lab that halted.
	EventAlive = "alive"
	// EventRecord is printed by a step's own command, followed by one
	// line of what it has done so far (a benchmark's finished boot): if
	// the lab dies during the step, the host hands the step's records to
	// its next run (Step.ResumeFlag), which goes on from there.
	EventRecord = "record"
)

// CmdlineKey is the kernel command-line parameter that carries the path of
// the job file (a path on the host, seen at the same path inside the lab).
const CmdlineKey = "ember.lab.job"

// Step is one command run inside the lab, chrooted into the host's root
// filesystem (shared read-only, with a writable layer in lab memory).
type Step struct {
	Label string   // printed with the result, e.g. a package path
	Dir   string   // working directory
	Args  []string // argv; Args[0] is a path inside the host root
	Env   []string // the whole environment, KEY=value
	// KeepGoing runs the next steps even when this one fails; the job's
	// status is then the first non-zero status.
	KeepGoing bool
	// ResumeFlag, if not empty, is a flag of the step's command that
	// takes a file of the records (EventRecord, one a line, Marker and
	// event stripped) the step printed before the lab died under it: the
	// host adds it, with the file, when it runs the step again in a lab
	// booted afresh, so that a long benchmark is not started over each
	// time the lab's kernel crashes.
	ResumeFlag string `json:",omitempty"`
	// GoTest says the step is a go test binary run with -test.v: each
	// top-level test's "--- PASS: Name" line is one of its records, and a
	// lab booted afresh after the lab died under the step runs it with
	// -test.skip naming them (Passed), so a long package is not started
	// over each time the lab's kernel crashes. Unset with -test.count
	// above 1 (a pass is then not the test's last run).
	GoTest bool `json:",omitempty"`
	// Passed are the top-level tests of a GoTest step that passed in labs
	// that died under it, which its next run skips.
	Passed []string `json:",omitempty"`
}

// Record is a line a step prints for the host: Marker, EventRecord and
// rec (one line, no newline).
func Record(rec string) string { return Marker + EventRecord + " " + rec }

// Job is what one lab boot runs.
type Job struct {
	Steps []Step
}

// Write stores j as JSON at path.
func Write(path string, j Job) error {
	b, err := json.MarshalIndent(j, "", "  ")
	if err != nil {
		return fmt.Errorf("lab job: %w", err)
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		return fmt.Errorf("lab job: %w", err)
	}
	return nil
}

// Read loads the job stored at path.
func Read(path string) (Job, error) {
	var j Job
	b, err := os.ReadFile(path)
	if err != nil {
		return j, fmt.Errorf("lab job: %w", err)
	}
	if err := json.Unmarshal(b, &j); err != nil {
		return j, fmt.Errorf("lab job %s: %w", path, err)
	}
	return j, nil
}
