package main

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"

	"ember/machine"
)

// stateReporter writes the running machine's state (machine.Report) to
// standard error each time ember run gets SIGUSR1, as `kill -USR1 PID` asks
// it to: what a person needs to see why a guest seems stuck, without stopping
// it.
type stateReporter struct {
	w    io.Writer
	crlf bool // the terminal is in raw mode: lines end in "\r\n"
	sig  chan os.Signal
	done chan struct{}
	wg   sync.WaitGroup

	mu sync.Mutex
	m  *machine.Machine // the machine of the boot under way, or nil
}

// startStateReporter starts reporting to w on SIGUSR1; stop ends it. With
// crlf (the terminal is in raw mode, which turns no "\n" into "\r\n") each
// line ends in "\r\n".
func startStateReporter(w io.Writer, crlf bool) *stateReporter {
	r := &stateReporter{w: w, crlf: crlf, sig: make(chan os.Signal, 1), done: make(chan struct{})}
	signal.Notify(r.sig, syscall.SIGUSR1)
	r.wg.Go(r.loop)
	return r
}

// attach makes m the machine reported on until the returned function runs.
func (r *stateReporter) attach(m *machine.Machine) (detach func()) {
	r.mu.Lock()
	r.m = m
	r.mu.Unlock()
	return func() {
		r.mu.Lock()
		r.m = nil
		r.mu.Unlock()
	}
}

// stop stops listening for SIGUSR1 and waits for a report under way.
func (r *stateReporter) stop() {
	signal.Stop(r.sig)
	close(r.done)
	r.wg.Wait()
}

func (r *stateReporter) loop() {
	for {
		select {
		case <-r.done:
			return
		case <-r.sig:
			r.report()
		}
	}
}

// report writes one report: a heading, then the machine's lines indented.
// The machine stays attached while it is read (a boot that ends meanwhile
// waits for the report before it closes the machine).
func (r *stateReporter) report() {
	r.mu.Lock()
	defer r.mu.Unlock()
	var b bytes.Buffer
	fmt.Fprintf(&b, "ember: state at %s (SIGUSR1):\n", time.Now().Format("15:04:05.000"))
	if r.m == nil {
		b.WriteString("  no VM is running\n")
	} else {
		var lines bytes.Buffer
		if err := r.m.Report(&lines); err != nil {
			fmt.Fprintf(&lines, "report: %v\n", err)
		}
		for l := range strings.Lines(lines.String()) {
			b.WriteString("  " + l)
		}
	}
	out := b.Bytes()
	if r.crlf {
		out = bytes.ReplaceAll(out, []byte("\n"), []byte("\r\n"))
	}
	r.w.Write(out)
}
