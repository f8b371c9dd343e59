package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// --go-trace FILE leaves an execution trace go tool trace reads (it starts
// with the format's "go 1.N trace" header); without the flag nothing is
// written, and a file that cannot be made is an error naming the flag.
func TestGoTrace(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ember.trace")
	stop, err := startGoTrace(path)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { close(done) }()
	<-done
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(b, []byte("go 1.")) || !bytes.Contains(b[:16], []byte(" trace")) {
		t.Errorf("the trace starts %q; want the execution trace header \"go 1.N trace\"", b[:min(len(b), 16)])
	}

	stop, err = startGoTrace("")
	if err != nil || stop() != nil {
		t.Errorf("no --go-trace: %v", err)
	}

	if _, err := startGoTrace(filepath.Join(t.TempDir(), "no", "such", "dir", "t")); err == nil || !strings.Contains(err.Error(), "--go-trace") {
		t.Errorf("an unwritable path gave %v; want an error naming --go-trace", err)
	}
}
