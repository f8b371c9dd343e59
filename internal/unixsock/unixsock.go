// Package unixsock makes listening unix sockets whose file appears only
// once the socket listens. A socket made with bind(2) and then listen(2)
// exists as a file in between, and a client that waits for the file (a
// script's `while [ ! -S sock ]`, a test, a program started beside its
// server) can find it and be refused (ECONNREFUSED). Listen binds under a
// temporary name beside the path, listens, and only then moves the socket
// to its name, without replacing anything already there.
package unixsock

import (
	"crypto/rand"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"sync"

	"golang.org/x/sys/unix"
)

// maxPath is the longest path a unix socket address holds (sun_path less
// its terminating NUL).
const maxPath = 107

// Listener is a listening unix socket at a path. Its Addr is the path, and
// Close removes the file.
type Listener struct {
	*net.UnixListener
	addr      *net.UnixAddr
	closeOnce sync.Once
	closeErr  error
}

// Listen listens on network ("unix" or "unixpacket") at path. The file
// appears at path only after the socket listens. If path exists, Listen
// fails with an error wrapping fs.ErrExist and leaves the file alone; a
// caller that replaces a stale socket removes it first. prepare, if not nil,
// is called with the socket's temporary name before it is moved, to set its
// owner and mode while no client can reach it yet.
func Listen(network, path string, prepare func(tmp string) error) (*Listener, error) {
	tmp, err := tempName(path)
	if err != nil {
		return nil, err
	}
	ln, err := net.ListenUnix(network, &net.UnixAddr{Name: tmp, Net: network})
	if err != nil {
		// The error names the temporary name; the caller knows the path.
		var oe *net.OpError
		if errors.As(err, &oe) {
			err = oe.Err
		}
		return nil, fmt.Errorf("listen %s %s: %w", network, path, err)
	}
	// The name the socket was bound to is gone once it moves: Close
	// removes path instead.
	ln.SetUnlinkOnClose(false)
	if prepare != nil {
		if err = prepare(tmp); err != nil {
			err = fmt.Errorf("listen %s: %w", path, err)
		}
	}
	if err == nil {
		err = moveNoReplace(tmp, path)
	}
	if err != nil {
		ln.Close()
		os.Remove(tmp)
		return nil, err
	}
	return &Listener{UnixListener: ln, addr: &net.UnixAddr{Name: path, Net: network}}, nil
}

// tempName returns an unused-looking name in path's directory, no longer
// than a socket address allows.
func tempName(path string) (string, error) {
	if len(path) > maxPath {
		return "", fmt.Errorf("listen %s: a unix socket path holds at most %d bytes", path, maxPath)
	}
	var b [4]byte
	rand.Read(b[:])
	tmp := filepath.Join(filepath.Dir(path), fmt.Sprintf(".%x", b))
	if len(tmp) > maxPath {
		return "", fmt.Errorf("listen %s: no room for a temporary name beside it (%d bytes at most)", path, maxPath)
	}
	return tmp, nil
}

// moveNoReplace renames old to new unless new exists: with renameat2's
// RENAME_NOREPLACE, or, on a file system without it, a hard link and an
// unlink (equally atomic for new).
func moveNoReplace(old, new string) error {
	err := unix.Renameat2(unix.AT_FDCWD, old, unix.AT_FDCWD, new, unix.RENAME_NOREPLACE)
	if errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOSYS) {
		if err = unix.Link(old, new); err == nil {
			os.Remove(old)
		}
	}
	if errors.Is(err, unix.EEXIST) {
		return fmt.Errorf("listen %s: %w", new, fs.ErrExist)
	}
	if err != nil {
		return fmt.Errorf("listen %s: %w", new, err)
	}
	return nil
}

// Addr returns the socket's path.
func (l *Listener) Addr() net.Addr { return l.addr }

// Close stops listening and removes the socket's file. Accepted
// connections stay open. Calls after the first return the first's result.
func (l *Listener) Close() error {
	l.closeOnce.Do(func() {
		l.closeErr = l.UnixListener.Close()
		if err := os.Remove(l.addr.Name); err != nil && !errors.Is(err, fs.ErrNotExist) && l.closeErr == nil {
			l.closeErr = err
		}
	})
	return l.closeErr
}
