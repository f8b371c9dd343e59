package client

import (
	"context"
	"errors"
	"net"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// TestNoDaemonSaysWhatToCheck: a client whose socket has no daemon behind
// it (no file; a file nobody listens on) gets the system's error, wrapped,
// and a hint to start the daemon on that socket, from the API's routes and
// from the console alike.
func TestNoDaemonSaysWhatToCheck(t *testing.T) {
	dir := t.TempDir()
	stale := filepath.Join(dir, "stale.sock")
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: stale, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	ln.SetUnlinkOnClose(false)
	ln.Close() // the file stays; nothing listens
	tests := []struct {
		name  string
		path  string
		errno syscall.Errno
	}{
		{"no socket file", filepath.Join(dir, "missing.sock"), syscall.ENOENT},
		{"a socket file nobody listens on", stale, syscall.ECONNREFUSED},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := New(tt.path)
			defer c.Close()
			_, listErr := c.List(context.Background())
			_, conErr := c.Console(context.Background(), "web")
			for _, err := range []error{listErr, conErr} {
				if !errors.Is(err, tt.errno) || !strings.Contains(err.Error(), "is `ember daemon --api-socket "+tt.path+"` running?") {
					t.Errorf("error %v; want %v and the hint to start the daemon", err, tt.errno)
				}
			}
		})
	}
}
