package main

import (
	"io"
	"sync"
	"sync/atomic"
	"time"

	"ember/lab/internal/every"
)

// A lab machine can halt for good in the middle of a job: in a CI run of
// 2026-12-04 the lab kernel's RCU reported "timer wakeup didn't happen" on
// CPU 0, and then both lab CPUs sat idle with no timer left to wake them
// (QEMU at 0.3 % of a host CPU, as an idle lab is) until the run's
// 30-minute time-out. While a job runs, the lab's init sends a heartbeat
// every 30 s (job.EventAlive), which needs the lab kernel's timers; a
// machine that sends nothing at all, neither output nor heartbeat, for
// haltLimit has halted. It is stopped and counts as one that died
// (errLabDied), which runSteps boots again for the steps left.

// defaultHaltLimit is machine.haltLimit's default: four heartbeats.
const defaultHaltLimit = 2 * time.Minute

// activityReader passes reads on and remembers when the last byte came.
type activityReader struct {
	r    io.Reader
	last atomic.Int64 // unix nanoseconds
}

func (a *activityReader) Read(p []byte) (int, error) {
	n, err := a.r.Read(p)
	if n > 0 {
		a.touch()
	}
	return n, err
}

func (a *activityReader) touch() { a.last.Store(time.Now().UnixNano()) }

// quiet is how long it has been since the last byte.
func (a *activityReader) quiet() time.Duration { return time.Since(time.Unix(0, a.last.Load())) }

// watchQuiet calls halted, once, if a goes limit without a byte, looking
// four times a limit. It returns the function that ends the watch.
func watchQuiet(a *activityReader, limit time.Duration, halted func()) (stop func()) {
	a.touch()
	done := make(chan struct{})
	go every.Tick(limit/4, done, func() bool {
		if a.quiet() >= limit {
			halted()
			return false
		}
		return true
	})
	return sync.OnceFunc(func() { close(done) })
}
