package main

import (
	"strings"
	"testing"

	"ember/lab/job"
)

// TestBeatKeepsLinesWhole: a heartbeat lands between lines of the job's
// output, ending a line the job left unfinished rather than splitting a
// marker line into it, so the host reads every marker at a line's start.
func TestBeatKeepsLinesWhole(t *testing.T) {
	var b strings.Builder
	l := &lineWriter{w: &b, bol: true}
	l.beat()
	l.Write([]byte("=== RUN TestX\n--- PASS: Test"))
	l.beat()
	l.Write([]byte("X\n"))
	alive := job.Marker + job.EventAlive
	want := alive + "\n=== RUN TestX\n--- PASS: Test\n" + alive + "\nX\n"
	if b.String() != want {
		t.Errorf("serial port got %q, want %q", b.String(), want)
	}
}
