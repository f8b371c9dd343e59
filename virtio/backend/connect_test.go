package backend

import (
	"errors"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// bind binds a SOCK_SEQPACKET socket at path without listening, as a
// back-end is between its bind and its listen: the file is there, and a
// connect is refused.
func bind(path string) (int, error) {
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, err
	}
	if err := unix.Bind(fd, &unix.SockaddrUnix{Name: path}); err != nil {
		unix.Close(fd)
		return -1, err
	}
	return fd, nil
}

// boundSocket is bind for the test's goroutine, closed when the test ends.
func boundSocket(t *testing.T, path string) int {
	t.Helper()
	fd, err := bind(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	return fd
}

// TestConnectWaitsForTheBackEnd: Dial's connect tries again while the
// back-end's socket is missing or not yet listening, so a back-end started
// just before ember (or a script that waits for its socket file) is found;
// it gives up after its time-out with the error it last got.
func TestConnectWaitsForTheBackEnd(t *testing.T) {
	t.Run("bound, listening later", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "b.sock")
		fd := boundSocket(t, path)
		time.AfterFunc(100*time.Millisecond, func() { unix.Listen(fd, 1) })
		conn, err := connect(path, 5*time.Second)
		if err != nil {
			t.Fatalf("connect to a socket that listens 100 ms after its bind: %v", err)
		}
		conn.Close()
	})
	t.Run("created later", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "c.sock")
		made := make(chan error, 1)
		time.AfterFunc(100*time.Millisecond, func() {
			fd, err := bind(path)
			if err == nil {
				t.Cleanup(func() { unix.Close(fd) })
				err = unix.Listen(fd, 1)
			}
			made <- err
		})
		conn, err := connect(path, 5*time.Second)
		if err != nil {
			t.Fatalf("connect to a socket made 100 ms later: %v", err)
		}
		conn.Close()
		if err := <-made; err != nil {
			t.Fatal(err)
		}
	})
	for _, tt := range []struct {
		name string
		make func(t *testing.T, path string)
		want error
	}{
		{"never there", func(*testing.T, string) {}, unix.ENOENT},
		{"never listening", func(t *testing.T, path string) { boundSocket(t, path) }, unix.ECONNREFUSED},
	} {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "n.sock")
			tt.make(t, path)
			start := time.Now()
			conn, err := connect(path, 200*time.Millisecond)
			if err == nil {
				conn.Close()
				t.Fatal("connected")
			}
			if !errors.Is(err, tt.want) {
				t.Errorf("error %v, want %v", err, tt.want)
			}
			if waited := time.Since(start); waited < 200*time.Millisecond || waited > 5*time.Second {
				t.Errorf("gave up after %v, want the 200 ms time-out", waited)
			}
		})
	}
}
