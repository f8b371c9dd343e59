package unixsock

import (
	"errors"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
)

// TestAFileThatExistsListens watches for the socket's file while it is
// made, again and again, and connects the moment it appears: the
// connection must never be refused, which a socket bound at its own name
// allows between bind and listen.
func TestAFileThatExistsListens(t *testing.T) {
	for _, network := range []string{"unix", "unixpacket"} {
		t.Run(network, func(t *testing.T) {
			dir := t.TempDir()
			for i := range 300 {
				path := filepath.Join(dir, "api.sock")
				var stop atomic.Bool
				refused := make(chan error, 1)
				go func() {
					defer close(refused)
					for !stop.Load() {
						if _, err := os.Lstat(path); err != nil {
							continue
						}
						c, err := net.Dial(network, path)
						if err != nil {
							refused <- err
							return
						}
						c.Close()
						return
					}
				}()
				ln, err := Listen(network, path, nil)
				if err != nil {
					t.Fatal(err)
				}
				for err := range refused {
					t.Fatalf("round %d: the socket's file existed but a connection was refused: %v", i, err)
				}
				stop.Store(true)
				if err := ln.Close(); err != nil {
					t.Fatal(err)
				}
			}
		})
	}
}

func TestListen(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "dm.sock")
	var prepared string
	ln, err := Listen("unixpacket", path, func(tmp string) error {
		prepared = tmp
		return os.Chmod(tmp, 0o600)
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := ln.Addr().String(); got != path {
		t.Errorf("Addr = %q, want the path %q", got, path)
	}
	if filepath.Dir(prepared) != dir || prepared == path {
		t.Errorf("prepare got %q, want a temporary name beside %q", prepared, path)
	}
	if st, err := os.Stat(path); err != nil || st.Mode()&fs.ModeSocket == 0 || st.Mode().Perm() != 0o600 {
		t.Errorf("the socket file: %v, %v; want a socket, mode 0600 as prepare set", st, err)
	}
	if names := dirNames(t, dir); len(names) != 1 {
		t.Errorf("directory holds %v; want only the socket", names)
	}
	c, err := net.Dial("unixpacket", path)
	if err != nil {
		t.Fatal(err)
	}
	c.Close()

	// A second listener on the same path is refused and leaves it alone.
	if _, err := Listen("unixpacket", path, nil); !errors.Is(err, fs.ErrExist) {
		t.Errorf("Listen on a live socket's path: %v, want fs.ErrExist", err)
	}
	if names := dirNames(t, dir); len(names) != 1 {
		t.Errorf("after the refused Listen the directory holds %v", names)
	}
	if c, err := net.Dial("unixpacket", path); err != nil {
		t.Errorf("the first listener no longer answers: %v", err)
	} else {
		c.Close()
	}

	if err := ln.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(path); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("after Close the socket file: %v, want it removed", err)
	}
	if err := ln.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

func TestListenFails(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name    string
		path    string
		prepare func(string) error
		want    string
	}{
		{"a path too long", filepath.Join(dir, strings.Repeat("x", 120)), nil, "at most 107 bytes"},
		{"no such directory", filepath.Join(dir, "missing", "s.sock"), nil, "no such file"},
		{"prepare fails", filepath.Join(dir, "p.sock"), func(string) error { return errors.New("chown refused") }, "chown refused"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Listen("unix", tt.path, tt.prepare)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Listen: %v, want an error saying %q", err, tt.want)
			}
			if err != nil && !strings.Contains(err.Error(), tt.path) {
				t.Errorf("Listen: %v, want the error to name %s", err, tt.path)
			}
			if names := dirNames(t, dir); len(names) != 0 {
				t.Errorf("a failed Listen left %v", names)
			}
		})
	}
}

func dirNames(t *testing.T, dir string) []string {
	t.Helper()
	es, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range es {
		names = append(names, e.Name())
	}
	return names
}
