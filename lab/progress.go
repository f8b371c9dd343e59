package main

import (
	"fmt"
	"io"
	"sync"
	"time"
)

// progress tells the user what the lab is doing, one line per phase, with
// the time since the lab started; the last phase is kept for time-out
// messages.
type progress struct {
	mu    sync.Mutex
	w     io.Writer
	start time.Time
	phase string
}

func newProgress(w io.Writer) *progress { return &progress{w: w, start: time.Now()} }

// say starts a new phase.
func (p *progress) say(phase string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.phase = phase
	fmt.Fprintf(p.w, "lab: [%5.1fs] %s\n", time.Since(p.start).Seconds(), phase)
}

// current is the phase in progress.
func (p *progress) current() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.phase
}
