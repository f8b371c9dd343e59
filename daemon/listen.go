package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/user"
	"strconv"
	"time"

	"golang.org/x/sys/unix"

	"ember/api"
	"ember/internal/unixsock"
)

// Listen creates the API's unix socket at path: mode 0600, or 0660 and
// owned by group when one is given, so only the daemon's user (and the
// group's members) can connect. The file appears once the daemon listens,
// so a client that waits for it is not refused. A stale socket from a
// daemon that died is replaced; a live one is an error. It returns the
// group's ID, or -1.
func Listen(path, group string) (*unixsock.Listener, int, error) {
	if c, err := net.Dial("unix", path); err == nil {
		c.Close()
		return nil, -1, fmt.Errorf("daemon: %s: another daemon is serving it", path)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, -1, fmt.Errorf("daemon: %w", err)
	}
	gid := -1
	if group != "" {
		var err error
		if gid, err = lookupGroup(group); err != nil {
			return nil, -1, fmt.Errorf("daemon: socket group %s: %w", group, err)
		}
	}
	old := unix.Umask(0o177) // the socket is never, even briefly, open to others
	l, err := unixsock.Listen("unix", path, func(tmp string) error {
		if gid < 0 {
			return nil
		}
		if err := os.Chown(tmp, -1, gid); err != nil {
			return fmt.Errorf("socket group %s: %w", group, err)
		}
		if err := os.Chmod(tmp, 0o660); err != nil {
			return fmt.Errorf("socket group %s: %w", group, err)
		}
		return nil
	})
	unix.Umask(old)
	if err != nil {
		return nil, -1, fmt.Errorf("daemon: %w", err)
	}
	return l, gid, nil
}

// lookupGroup returns a group's ID from its name or number.
func lookupGroup(group string) (int, error) {
	if n, err := strconv.Atoi(group); err == nil {
		return n, nil
	}
	g, err := user.LookupGroup(group)
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(g.Gid)
}

// Peers says which processes may use the API: the daemon's own user, root,
// and members of a group. The socket's mode already keeps others out; the
// check holds even if the mode is changed, or the socket passed on.
type Peers struct {
	UID int // the daemon's user
	GID int // a group whose members may connect, or -1
}

// allowed reports whether a peer with these credentials may connect.
func (p Peers) allowed(cred *unix.Ucred) bool {
	if cred.Uid == 0 || int(cred.Uid) == p.UID {
		return true
	}
	return p.GID >= 0 && int(cred.Gid) == p.GID
}

// peerKey carries a connection's peer check into its requests.
type peerKey struct{}

// Server returns the HTTP server for the daemon's API on a unix socket:
// bounded headers, time-outs for slow clients (none on the console and
// event streams, which live long), and every connection's peer checked
// with SO_PEERCRED.
func (d *Daemon) Server(peers Peers, log *slog.Logger) *http.Server {
	h := d.Handler()
	return &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if err, _ := r.Context().Value(peerKey{}).(error); err != nil {
				writeError(w, &api.Error{Status: http.StatusForbidden, Code: api.CodeForbidden, Message: err.Error()})
				return
			}
			h.ServeHTTP(w, r)
		}),
		ReadHeaderTimeout: 10 * time.Second,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
		ConnContext: func(ctx context.Context, c net.Conn) context.Context {
			return context.WithValue(ctx, peerKey{}, checkPeer(c, peers, log))
		},
	}
}

// checkPeer returns nil if the connection's peer may use the API, else why
// not.
func checkPeer(c net.Conn, peers Peers, log *slog.Logger) error {
	uc, ok := c.(*net.UnixConn)
	if !ok {
		return nil // a listener the caller chose (tests): nothing to check
	}
	raw, err := uc.SyscallConn()
	if err != nil {
		return fmt.Errorf("peer credentials: %w", err)
	}
	var cred *unix.Ucred
	var cerr error
	raw.Control(func(fd uintptr) { cred, cerr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED) })
	if cerr != nil {
		return fmt.Errorf("peer credentials: %w", cerr)
	}
	if !peers.allowed(cred) {
		log.Warn("refused a client", "pid", cred.Pid, "uid", cred.Uid, "gid", cred.Gid)
		return fmt.Errorf("uid %d (pid %d) may not use this daemon", cred.Uid, cred.Pid)
	}
	return nil
}
