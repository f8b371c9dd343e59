package main

import (
	"bytes"
	"io"
	"sync"
	"sync/atomic"
	"time"
)

// tailKeep is how much of a step's output activityWriter keeps: enough for
// its last line when that is a verdict.
const tailKeep = 64

// activityWriter passes a step's output on, and remembers when it last did
// and whether the output so far ends with go test's verdict line.
type activityWriter struct {
	w    io.Writer
	last atomic.Int64 // unix nanoseconds of the last output (or report)

	mu      sync.Mutex
	tail    []byte    // the output's last bytes, at most tailKeep
	trimmed bool      // output before tail was dropped
	ends    string    // the verdict the output ends with, or ""
	wrote   time.Time // when the last output came
}

func (a *activityWriter) Write(p []byte) (int, error) {
	a.touch()
	a.mu.Lock()
	a.tail = append(a.tail, p...)
	if n := len(a.tail); n > tailKeep {
		a.tail = append(a.tail[:0], a.tail[n-tailKeep:]...)
		a.trimmed = true
	}
	a.ends, a.wrote = verdictLine(a.tail, !a.trimmed), time.Now()
	a.mu.Unlock()
	return a.w.Write(p)
}

func (a *activityWriter) touch() { a.last.Store(time.Now().UnixNano()) }

// verdict returns go test's verdict (PASS or FAIL) when it is the last line
// of the output so far, and when it was written; "" otherwise.
func (a *activityWriter) verdict() (string, time.Time) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.ends, a.wrote
}

// verdictLine is "PASS" or "FAIL" when that is the last line of tail (the
// end of an output, all of it when whole), ended by a newline.
func verdictLine(tail []byte, whole bool) string {
	line, ok := bytes.CutSuffix(tail, []byte("\n"))
	if !ok {
		return ""
	}
	if i := bytes.LastIndexByte(line, '\n'); i >= 0 {
		line = line[i+1:]
	} else if !whole {
		return ""
	}
	switch s := string(line); s {
	case "PASS", "FAIL":
		return s
	}
	return ""
}
