package main

import (
	"fmt"
	"io"
	"sync"
	"time"

	"ember/lab/internal/every"
	"ember/lab/job"
)

// heartbeatEvery is how often the init tells the host it is alive while a
// job runs. The host takes a lab that has sent nothing at all for a few of
// these to have halted (lab/machine.go); a beat needs the lab kernel's
// timers to fire, which a halted lab's do not.
const heartbeatEvery = 30 * time.Second

// lineWriter is the host's serial port, shared by the job's output and the
// init's marker lines: it serialises writes and knows whether the last one
// ended a line, so a heartbeat never lands inside a line of output.
type lineWriter struct {
	mu  sync.Mutex
	w   io.Writer
	bol bool // at the beginning of a line
}

func (l *lineWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	n, err := l.w.Write(p)
	if n > 0 {
		l.bol = p[n-1] == '\n'
	}
	return n, err
}

// beat writes the heartbeat marker line, ending a line of output the job
// left unfinished first.
func (l *lineWriter) beat() {
	l.mu.Lock()
	defer l.mu.Unlock()
	nl := ""
	if !l.bol {
		nl = "\n"
	}
	fmt.Fprintf(l.w, "%s%s%s\n", nl, job.Marker, job.EventAlive)
	l.bol = true
}

// heartbeat beats on out every heartbeatEvery until done is closed.
func heartbeat(out *lineWriter, done <-chan struct{}) {
	every.Tick(heartbeatEvery, done, func() bool { out.beat(); return true })
}
