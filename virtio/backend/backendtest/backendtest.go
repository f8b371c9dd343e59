// Package backendtest serves a virtio device as an out-of-process back-end
// would, for tests and benchmarks of what sits on ember's side of the
// protocol: the back-end (backend.Serve) runs in a goroutine at one end of
// a socketpair, and a backend.Remote holds the other.
package backendtest

import (
	"net"
	"os"
	"testing"

	"golang.org/x/sys/unix"

	"ember/memory"
	"ember/virtio"
	"ember/virtio/backend"
)

// Serve serves dev over a socketpair and returns the Remote at ember's
// end, given mem (memfd-backed). When the test ends, the Remote closes and
// Serve returns; cleanups the test registers after Serve run before, so a
// VM using the Remote closes first, as a machine's does.
func Serve(tb testing.TB, dev virtio.Device, mem *memory.Guest) *backend.Remote {
	tb.Helper()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		tb.Fatal(err)
	}
	conns := make([]*net.UnixConn, 2)
	for i, fd := range fds {
		f := os.NewFile(uintptr(fd), "socketpair")
		c, err := net.FileConn(f)
		f.Close()
		if err != nil {
			tb.Fatal(err)
		}
		conns[i] = c.(*net.UnixConn)
	}
	served := make(chan struct{})
	go func() { backend.Serve(conns[1], dev, nil); close(served) }()
	r, err := backend.New(conns[0], backend.Config{Mem: mem})
	if err != nil {
		conns[1].Close()
		<-served
		tb.Fatal(err)
	}
	tb.Cleanup(func() { r.Close(); <-served; conns[1].Close() })
	return r
}
