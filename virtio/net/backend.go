package net

import (
	"errors"
	"fmt"
	"io"
	"os"
	"syscall"
	"time"

	"ember/virtio"

	"golang.org/x/sys/unix"
)

// Backend is the host side of a virtio-net device: it moves whole packets,
// each led by the HeaderSize-byte virtio-net header, as a TAP with
// IFF_VNET_HDR and TUNSETVNETHDRSZ 12 does. The device calls ReadPacket
// from its receive goroutine and WritePacket from its transmit goroutine,
// concurrently.
type Backend interface {
	// ReadPacket reads one packet into p and returns its length, blocking
	// until one arrives. A packet longer than p may be cut short or
	// refused; the device passes a buffer of HeaderSize+MaxFrameSize
	// bytes or more.
	ReadPacket(p []byte) (int, error)
	// WritePacket sends the concatenation of bufs as one packet.
	WritePacket(bufs [][]byte) (int, error)
	// SetOffload says which offloads the packets ReadPacket returns may
	// use: TunCsum, TunTSO4, TunTSO6, TunTSOECN, as the guest accepted
	// them (TUNSETOFFLOAD). A backend that cannot ask its source for
	// less returns nil; the device drops the packets the guest cannot
	// take.
	SetOffload(flags int) error
	// SetDeadline makes ReadPacket and WritePacket, blocked or to come,
	// fail with an error wrapping os.ErrDeadlineExceeded after t; the
	// zero time clears it. Reset stops the device's goroutines with it.
	SetDeadline(t time.Time) error
	// Close releases the backend.
	Close() error
}

// iovMax is the most buffers one writev takes (IOV_MAX).
const iovMax = 1024

// FileBackend is a Backend on a packet-oriented file descriptor in
// non-blocking mode, waited on with Go's poller: a TAP, or a SOCK_SEQPACKET
// or SOCK_DGRAM socket whose peer sends and receives packets led by the
// virtio-net header. Each read is one packet, each write sends one.
type FileBackend struct {
	f  *os.File
	rc syscall.RawConn
}

// NewFileBackend returns a FileBackend on f, which must be in non-blocking
// mode (O_NONBLOCK before os.NewFile, or os.OpenFile with O_NONBLOCK) and
// pollable, so that a read can wait without holding a thread and a
// deadline can stop it. The backend owns f.
func NewFileBackend(f *os.File) (*FileBackend, error) {
	if err := f.SetDeadline(time.Time{}); err != nil {
		return nil, fmt.Errorf("virtio-net: %s is not pollable (open it non-blocking): %w", f.Name(), err)
	}
	rc, err := f.SyscallConn()
	if err != nil {
		return nil, fmt.Errorf("virtio-net: %s: %w", f.Name(), err)
	}
	return &FileBackend{f: f, rc: rc}, nil
}

// ReadPacket reads one packet. A read of 0 bytes is io.EOF: a socket
// whose peer has gone (a TAP never returns an empty packet).
func (b *FileBackend) ReadPacket(p []byte) (int, error) { return b.readPacket(p, true) }

// WritePacket writes bufs as one packet with writev, waiting while the
// descriptor cannot take it. More than IOV_MAX buffers are gathered into
// one first.
func (b *FileBackend) WritePacket(bufs [][]byte) (int, error) { return b.writePacket(bufs, true) }

// tryRead is ReadPacket for the device's thread, which waits on the
// descriptor itself: errWouldBlock when no packet is there.
func (b *FileBackend) tryRead(p []byte) (int, error) { return b.readPacket(p, false) }

// tryWrite is WritePacket for the device's thread: errWouldBlock when the
// descriptor cannot take the packet now.
func (b *FileBackend) tryWrite(bufs [][]byte) (int, error) { return b.writePacket(bufs, false) }

// readPacket reads one packet, waiting for one in Go's poller if wait.
func (b *FileBackend) readPacket(p []byte, wait bool) (int, error) {
	var n int
	var rerr error
	err := b.rc.Read(func(fd uintptr) bool {
		n, rerr = retryEINTR(func() (int, error) { return unix.Read(int(fd), p) })
		return !wait || rerr != unix.EAGAIN
	})
	switch {
	case err != nil:
		return 0, fmt.Errorf("virtio-net: reading %s: %w", b.f.Name(), err)
	case rerr == unix.EAGAIN:
		return 0, errWouldBlock
	case rerr != nil:
		return 0, fmt.Errorf("virtio-net: reading %s: %w", b.f.Name(), rerr)
	case n == 0 && len(p) > 0:
		return 0, io.EOF
	}
	return n, nil
}

// writePacket writes one packet, waiting in Go's poller while the
// descriptor cannot take it if wait.
func (b *FileBackend) writePacket(bufs [][]byte, wait bool) (int, error) {
	if len(bufs) > iovMax {
		bufs = [][]byte{gathered(bufs)}
	}
	var n int
	var werr error
	err := b.rc.Write(func(fd uintptr) bool {
		n, werr = retryEINTR(func() (int, error) { return unix.Writev(int(fd), bufs) })
		return !wait || werr != unix.EAGAIN
	})
	switch {
	case err != nil:
		return 0, fmt.Errorf("virtio-net: writing %s: %w", b.f.Name(), err)
	case werr == unix.EAGAIN:
		return 0, errWouldBlock
	case werr != nil:
		return 0, fmt.Errorf("virtio-net: writing %s: %w", b.f.Name(), werr)
	case n != int(virtio.Len(bufs)):
		return n, fmt.Errorf("virtio-net: writing %s: %d of %d bytes: %w", b.f.Name(), n, virtio.Len(bufs), io.ErrShortWrite)
	}
	return n, nil
}

// fileBackend is pollable: the device serves a FileBackend, and a TAP,
// on a thread of its own that waits on the descriptor.
func (b *FileBackend) fileBackend() *FileBackend { return b }

// SetOffload does nothing: a plain descriptor has no offloads to set.
func (b *FileBackend) SetOffload(int) error { return nil }

// SetDeadline sets the read and write deadline of the descriptor.
func (b *FileBackend) SetDeadline(t time.Time) error { return b.f.SetDeadline(t) }

// Close closes the descriptor; a ReadPacket or WritePacket blocked on it
// returns an error.
func (b *FileBackend) Close() error { return b.f.Close() }

// control runs f on the descriptor, for an ioctl. (os.File.Fd would put the
// descriptor in blocking mode and stop deadlines working.)
func (b *FileBackend) control(f func(fd int) error) error {
	var ferr error
	if err := b.rc.Control(func(fd uintptr) { ferr = f(int(fd)) }); err != nil {
		return err
	}
	return ferr
}

// retryEINTR calls op until it is not interrupted by a signal.
func retryEINTR(op func() (int, error)) (int, error) {
	for {
		n, err := op()
		if !errors.Is(err, unix.EINTR) {
			return n, err
		}
	}
}

// gathered returns the concatenation of bufs.
func gathered(bufs [][]byte) []byte {
	out := make([]byte, virtio.Len(bufs))
	virtio.Gather(out, bufs)
	return out
}
