package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"ember/lab/job"
)

// TestRunBenchGoesOnFromRecords: given the records of the boots a run
// finished before the lab died, runBench boots only the others, prints a
// record of every boot (those given again, so the host's next file holds
// them all) and takes the given ones' measures into the medians.
func TestRunBenchGoesOnFromRecords(t *testing.T) {
	subjects := []subject{{name: "ember (virtio-pci)", argv: []string{"ember"}}, {name: "QEMU vhost=off", argv: []string{"qemu"}}}
	var booted []string
	tbl := benchTable{
		title:    "test",
		measures: []string{"MB/s"},
		boot: func(_ context.Context, argv []string) (map[string]float64, bootOutput, error) {
			booted = append(booted, argv[0])
			return map[string]float64{"MB/s": 10}, bootOutput{}, nil
		},
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "records")
	lines := []string{
		`{"rep":1,"subject":"ember (virtio-pci)","measures":{"MB/s":30},"counts":{}}`,
		`{"rep":1,"subject":"QEMU vhost=off","measures":{"MB/s":40},"counts":{}}`,
		`{"rep":2,"subject":"ember (virt`, // cut short on the serial line: booted again
	}
	if err := os.WriteFile(path, []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	var err error
	if tbl, err = (&benchFlags{done: path}).table(tbl); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := runBench(context.Background(), &out, subjects, 2, tbl); err != nil {
		t.Fatal(err)
	}
	if want := []string{"qemu", "ember"}; !slices.Equal(booted, want) {
		t.Errorf("booted %q, want %q (rep 2 only, in the second round's reversed order)", booted, want)
	}
	var recs []bootRecord
	for _, l := range strings.Split(out.String(), "\n") {
		if rest, ok := strings.CutPrefix(l, job.Record("")); ok {
			var r bootRecord
			if err := json.Unmarshal([]byte(rest), &r); err != nil {
				t.Fatalf("record %q: %v", rest, err)
			}
			recs = append(recs, r)
		}
	}
	if len(recs) != 4 || recs[0].Measures["MB/s"] != 30 || recs[3].Rep != 2 || recs[3].Subject != "ember (virtio-pci)" {
		t.Errorf("records printed: %+v; want all four boots, the given ones as given", recs)
	}
	// The median of two is their mean: the given boots' 30 and 40 each
	// with the 10 of round 2, not the 10 alone.
	if row := tableRow(out.String(), "MB/s"); !slices.Equal(row, []string{"20.0", "25.0", "0.80"}) {
		t.Errorf("the table's row %q, want the given boots' medians and their ratio", row)
	}
	// Round by round: 30/40 and 10/10.
	if !strings.Contains(out.String(), "0.88 [0.75–1.00], 0 of 2") {
		t.Errorf("no round-by-round ratio of 0.88 [0.75–1.00], 0 of 2 in:\n%s", out.String())
	}
	if !strings.Contains(out.String(), "(booted before the lab died)") {
		t.Errorf("output does not say which boots were taken from before:\n%s", out.String())
	}
}

// tableRow returns the cells after the name of the table's row name.
func tableRow(out, name string) []string {
	for _, l := range strings.Split(out, "\n") {
		if f := strings.Fields(l); len(f) > 0 && f[0] == name {
			return f[1:]
		}
	}
	return nil
}

// TestALabThatDiesGoesOnFromRecords: the records a step printed before
// the lab died under it reach its next run in a file named by its
// ResumeFlag, replacing the file an earlier run was given; a step
// without the flag is run again as it was.
func TestALabThatDiesGoesOnFromRecords(t *testing.T) {
	one := []job.Step{{Label: "a", Args: []string{"cmd", "-x"}, ResumeFlag: "--done"}}
	two := []job.Step{{Label: "a", Args: []string{"cmd"}, ResumeFlag: "--done"}, {Label: "b", Args: []string{"cmd"}, ResumeFlag: "--done"}}
	for _, tt := range []struct {
		name   string
		steps  []job.Step
		boots  [][]string // each boot's events; the last finishes the job
		want   []string   // the last run's records file; nil: none
		wantAt int        // how many times the last run's args have the flag
	}{
		{"two deaths", one, [][]string{
			{"ready 1", "step a", "record r1", "record r2"},
			{"ready 1", "step a", "record r1", "record r2", "record r3"},
			{"ready 1", "step a", "done 0", "exit 0"},
		}, []string{"r1", "r2", "r3"}, 1},
		{"an earlier step's records are not the running one's", two, [][]string{
			{"ready 1", "step a", "record old", "done 0", "step b", "record b1"},
			{"ready 1", "step b", "done 0", "exit 0"},
		}, []string{"b1"}, 1},
		{"more deaths than labRetries, each after another boot", one, growing(labRetries + 2), records(labRetries + 2), 1},
		{"no flag", []job.Step{{Label: "a", Args: []string{"cmd"}}}, [][]string{
			{"ready 1", "step a", "record r1"},
			{"ready 1", "step a", "done 0", "exit 0"},
		}, nil, 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			m := scriptedLab(t, dir, tt.boots)
			steps := slices.Clone(tt.steps)
			s := &session{o: &options{timeout: 20 * time.Second, retries: labRetries}, p: newProgress(io.Discard), out: io.Discard, dir: dir}
			if status, err := s.runSteps(context.Background(), m, job.Job{Steps: steps}); err != nil || status != 0 {
				t.Fatalf("runSteps = %d, %v", status, err)
			}
			args := lastJob(t, dir).Steps[0].Args
			if n := count(args, "--done"); n != tt.wantAt {
				t.Fatalf("last run's args %q: %d --done, want %d", args, n, tt.wantAt)
			}
			if tt.want == nil {
				return
			}
			got, err := os.ReadFile(args[slices.Index(args, "--done")+1])
			if err != nil {
				t.Fatal(err)
			}
			if want := strings.Join(tt.want, "\n") + "\n"; string(got) != want {
				t.Errorf("records file %q, want %q", got, want)
			}
		})
	}
}

// records are n records: r1, r2 ...
func records(n int) []string {
	var r []string
	for i := range n {
		r = append(r, fmt.Sprintf("r%d", i+1))
	}
	return r
}

// growing is n boots of a lab that dies each time after its step printed
// one more record than the time before, then one that finishes.
func growing(n int) [][]string {
	var boots [][]string
	for i := range n {
		boot := []string{"ready 1", "step a"}
		for _, r := range records(i + 1) {
			boot = append(boot, "record "+r)
		}
		boots = append(boots, boot)
	}
	return append(boots, []string{"ready 1", "step a", "done 0", "exit 0"})
}

// TestALabThatKeepsDyingGivesUp: a lab that dies more than --retries
// times (labRetries by default) with nothing new done in between ends the
// run.
func TestALabThatKeepsDyingGivesUp(t *testing.T) {
	for _, retries := range []int{1, labRetries} {
		dir := t.TempDir()
		boots := make([][]string, retries+2)
		for i := range boots {
			boots[i] = []string{"ready 1", "step a", "record r1"}
		}
		m := scriptedLab(t, dir, boots)
		s := &session{o: &options{timeout: 20 * time.Second, retries: retries}, p: newProgress(io.Discard), out: io.Discard, dir: dir}
		_, err := s.runSteps(context.Background(), m, job.Job{Steps: []job.Step{{Label: "a", Args: []string{"cmd"}, ResumeFlag: "--done"}}})
		if !errors.Is(err, errLabDied) {
			t.Fatalf("retries %d: runSteps: %v, want the lab's death", retries, err)
		}
		if b, _ := os.ReadFile(filepath.Join(dir, "boots")); strings.Count(string(b), "\n") != retries+2 {
			t.Errorf("retries %d: the lab was booted %d times, want %d: one, then retries more after the first new record", retries, strings.Count(string(b), "\n"), retries+2)
		}
	}
}

// count is how many times v is in s.
func count(s []string, v string) int {
	n := 0
	for _, x := range s {
		if x == v {
			n++
		}
	}
	return n
}

// lastJob is the job file scriptedLab's last boot was given.
func lastJob(t *testing.T, dir string) job.Job {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "last-job.json"))
	if err != nil {
		t.Fatal(err)
	}
	var j job.Job
	if err := json.Unmarshal(b, &j); err != nil {
		t.Fatal(err)
	}
	return j
}

// scriptedLab is a stand-in for QEMU that, at its n-th boot, prints the
// init's marker lines of boots[n] (an event that starts with "|" is a line
// of the step's own output, printed as it is without the "|") and copies the
// job file it was given to dir/last-job.json; every boot but the last then
// exits, as a lab whose kernel died.
func scriptedLab(t *testing.T, dir string, boots [][]string) machine {
	t.Helper()
	n := filepath.Join(dir, "boots")
	var b strings.Builder
	b.WriteString("#!/bin/sh\necho >> " + n + "\ncp " + filepath.Join(dir, "job.json") + " " + filepath.Join(dir, "last-job.json") + "\ncase $(wc -l < " + n + ") in\n")
	for i, events := range boots {
		fmt.Fprintf(&b, " %d)\n", i+1)
		for _, e := range events {
			if line, ok := strings.CutPrefix(e, "|"); ok {
				b.WriteString("echo '" + line + "'\n")
				continue
			}
			b.WriteString("echo '" + job.Marker + e + "'\n")
		}
		b.WriteString(";;\n")
	}
	b.WriteString("esac\n")
	qemu := filepath.Join(dir, "qemu")
	if err := os.WriteFile(qemu, []byte(b.String()), 0o755); err != nil {
		t.Fatal(err)
	}
	return machine{qemu: qemu, jobFile: filepath.Join(dir, "job.json"), consoleLog: filepath.Join(dir, "console.log"),
		bootLimit: 2 * time.Second, powerOffGrace: 200 * time.Millisecond}
}
