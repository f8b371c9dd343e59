package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"

	"ember/lab/job"
)

// Records of a benchmark's finished boots, so that a run the lab's kernel
// cut short goes on from where it was in a lab booted afresh rather than
// from its first boot (job.EventRecord, job.Step.ResumeFlag): with the
// lab's crashes coming every few minutes on some days, a run of a dozen
// boots never finished otherwise.

// bootRecord is one finished boot as runBench prints it for the host: the
// rep (from 1), the subject's name and what the boot measured.
type bootRecord struct {
	Rep      int                `json:"rep"`
	Subject  string             `json:"subject"`
	Measures map[string]float64 `json:"measures"`
	Counts   map[string]float64 `json:"counts"`
}

// recordKey picks a boot of a run: its rep and its subject's name.
type recordKey struct {
	rep     int
	subject string
}

// printRecord prints rec for the host (job.Record). A record JSON cannot
// hold (a measure that is not a number) is not printed: its boot would be
// booted again after a crash.
func printRecord(w io.Writer, rec bootRecord) {
	b, err := json.Marshal(rec)
	if err != nil {
		return
	}
	fmt.Fprintln(w, job.Record(string(b)))
}

// readRecords reads the records a run printed before the lab died, as the
// host kept them (one a line), by rep and subject. A line that does not
// parse (the serial line the records come over can mix in another's
// output) is skipped, and its boot is booted again.
func readRecords(path string) (map[recordKey]bootRecord, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("the boots done before the lab died: %w", err)
	}
	defer f.Close()
	done := map[recordKey]bootRecord{}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64*1024), 1<<20)
	for sc.Scan() {
		var rec bootRecord
		if json.Unmarshal(sc.Bytes(), &rec) == nil && rec.Rep > 0 && rec.Subject != "" {
			done[recordKey{rec.Rep, rec.Subject}] = rec
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("the boots done before the lab died: %w", err)
	}
	return done, nil
}
