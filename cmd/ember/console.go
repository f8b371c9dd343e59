package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"sync"

	"ember/machine"

	"golang.org/x/term"
)

// Console destinations for --console.
const (
	consoleStdio = "stdio"
	consoleFile  = "file"
	consoleNone  = "none"
)

// escapeKey is Ctrl-A: followed by 'x' it ends the VM; pressed twice it sends
// one Ctrl-A to the guest (QEMU's and screen's convention).
const escapeKey = 0x01

// openConsole returns where guest console output goes and a closer for it.
func openConsole(kind, path string, stdout io.Writer) (io.Writer, func() error, error) {
	switch kind {
	case consoleStdio:
		return stdout, func() error { return nil }, nil
	case consoleNone:
		return io.Discard, func() error { return nil }, nil
	case consoleFile:
		if path == "" {
			return nil, nil, fmt.Errorf("--console=file needs --console-file PATH")
		}
		f, err := os.Create(path)
		if err != nil {
			return nil, nil, fmt.Errorf("console file: %w", err)
		}
		return f, f.Close, nil
	}
	return nil, nil, fmt.Errorf("--console must be stdio, file or none, not %q", kind)
}

// rawTerminal puts in in raw mode when it is a terminal, so keys reach the
// guest as typed, and returns how to restore it.
func rawTerminal(in io.Reader) (restore func()) {
	if !isTerminal(in) {
		return func() {}
	}
	fd := int(in.(*os.File).Fd())
	old, err := term.MakeRaw(fd)
	if err != nil {
		return func() {}
	}
	return func() { term.Restore(fd, old) }
}

// isTerminal says whether in is a terminal, which rawTerminal puts in raw
// mode.
func isTerminal(in io.Reader) bool {
	f, ok := in.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// consoleInput feeds the user's input to the console of whichever machine
// is running: one reader of stdin for the whole `ember run`, so no keystroke
// is taken by a VM that a guest reboot has already replaced. Input that
// arrives between two boots is dropped, as keys typed into a machine that is
// resetting are.
type consoleInput struct {
	mu  sync.Mutex
	m   *machine.Machine
	ctx context.Context // the current boot's
}

// startConsoleInput starts copying in (through the Ctrl-A x filter) until ctx
// ends or in closes.
func startConsoleInput(ctx context.Context, in io.Reader) *consoleInput {
	c := &consoleInput{}
	go pumpInput(ctx, in, &escapeFilter{guest: c, quit: c.stop})
	return c
}

// attach makes m's console the input's destination until the returned
// detach is called.
func (c *consoleInput) attach(ctx context.Context, m *machine.Machine) (detach func()) {
	c.mu.Lock()
	c.m, c.ctx = m, ctx
	c.mu.Unlock()
	return func() {
		c.mu.Lock()
		c.m, c.ctx = nil, nil
		c.mu.Unlock()
	}
}

// Write hands p to the current machine's console (Machine.Input); keys
// typed while no machine runs, or that a closed machine refuses, are
// dropped.
func (c *consoleInput) Write(p []byte) (int, error) {
	c.mu.Lock()
	m, ctx := c.m, c.ctx
	c.mu.Unlock()
	if m != nil {
		m.Input(ctx, p)
	}
	return len(p), nil
}

// stop is Ctrl-A x: the running VM stops as if from the host.
func (c *consoleInput) stop() {
	c.mu.Lock()
	m := c.m
	c.mu.Unlock()
	if m != nil {
		m.VM.Stop()
	}
}

// escapeFilter passes keystrokes to the guest and watches for Ctrl-A x.
type escapeFilter struct {
	guest   io.Writer
	quit    func()
	pending bool
}

// Write forwards p, minus the escape sequences, to the guest.
func (f *escapeFilter) Write(p []byte) (int, error) {
	out := make([]byte, 0, len(p))
	for _, b := range p {
		switch {
		case f.pending && (b == 'x' || b == 'X'):
			f.pending = false
			f.quit()
		case f.pending:
			f.pending = false
			out = append(out, b) // Ctrl-A Ctrl-A sends one Ctrl-A; Ctrl-A other sends other
		case b == escapeKey:
			f.pending = true
		default:
			out = append(out, b)
		}
	}
	if len(out) > 0 {
		if _, err := f.guest.Write(out); err != nil {
			return 0, err
		}
	}
	return len(p), nil
}

// pumpInput copies stdin through the escape filter until ctx ends or stdin closes.
func pumpInput(ctx context.Context, in io.Reader, f *escapeFilter) {
	buf := make([]byte, 256)
	for ctx.Err() == nil {
		n, err := in.Read(buf)
		if n > 0 {
			f.Write(buf[:n])
		}
		if err != nil {
			return
		}
	}
}
