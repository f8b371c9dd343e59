package main

import (
	"fmt"
	"os"
	"runtime/trace"
)

// startGoTrace starts a Go execution trace of ember itself (runtime/trace)
// into the file at path, for `go tool trace`: which goroutine waited for
// what, and how long a goroutine made ready waited to run — the questions
// a slow device path raises that a CPU profile does not answer. An empty
// path traces nothing. The returned function stops the trace and closes
// the file.
func startGoTrace(path string) (func() error, error) {
	if path == "" {
		return func() error { return nil }, nil
	}
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("--go-trace: %w", err)
	}
	if err := trace.Start(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("--go-trace: %w", err)
	}
	return func() error {
		trace.Stop()
		return f.Close()
	}, nil
}
