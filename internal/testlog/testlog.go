// Package testlog gives tests a logger whose output they can read back, for
// asserting what ember logs (a failed request, a device model gone). It is
// safe for the several goroutines a test's VM or server logs from.
package testlog

import (
	"bytes"
	"log/slog"
	"sync"
)

// Buffer collects log output from several goroutines.
type Buffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

// Write appends p.
func (l *Buffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

// String returns everything written so far.
func (l *Buffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// New returns a text logger that writes into a new Buffer, and the Buffer.
func New() (*slog.Logger, *Buffer) {
	b := &Buffer{}
	return slog.New(slog.NewTextHandler(b, nil)), b
}
