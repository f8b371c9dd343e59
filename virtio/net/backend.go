package net

import (
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"syscall"
	"time"
	"unsafe"

	"ember/virtio"

	"golang.org/x/sys/unix"
)

// Backend is the host side of a virtio-net device: it moves whole packets,
// each led by the HeaderSize-byte virtio-net header, as a TAP with
// IFF_VNET_HDR and TUNSETVNETHDRSZ 12 does. The device calls ReadPacket
// from its receive goroutine and WritePacket from its transmit goroutine,
// concurrently. (A FileBackend, and a TAP, are served otherwise: the
// device's thread reads and writes their descriptor itself.)
type Backend interface {
	// ReadPacket reads one packet into p and returns its length, blocking
	// until one arrives. A packet longer than p may be cut short or
	// refused, or returned cut short with its whole length, as a TAP
	// does (the device drops it); the device passes a buffer of
	// HeaderSize+MaxFrameSize bytes or more.
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
// non-blocking mode: a TAP, or a SOCK_SEQPACKET or SOCK_DGRAM socket whose
// peer sends and receives packets led by the virtio-net header. Each read
// is one packet, each write sends one. The device serves it on a thread of
// its own that waits on the descriptor in an epoll of its own; the
// descriptor stays out of Go's poller, whose thread would otherwise wake
// for every packet that arrives. ReadPacket, WritePacket and SetDeadline,
// which wait in Go's poller, put a duplicate of it there when first used.
// A type that embeds a *FileBackend is served as the FileBackend, its own
// ReadPacket and WritePacket unused; one that wraps the packets embeds the
// Backend interface instead.
type FileBackend struct {
	name string

	fdMu sync.RWMutex // held to use fd; Close holds it to close fd
	fd   int          // -1 once closed
	// The iovec lists of tryReadv and tryWrite, kept for the next packet:
	// only the device's thread calls them, one packet at a time.
	readIov, writeIov []unix.Iovec

	pollMu sync.Mutex
	polled *os.File        // the duplicate in Go's poller; nil until used
	rc     syscall.RawConn // polled's
}

// NewFileBackend returns a FileBackend on f, which must be in non-blocking
// mode (O_NONBLOCK before os.NewFile, or os.OpenFile with O_NONBLOCK) and
// pollable, so that a read can wait without holding a thread and a
// deadline can stop it. The backend owns f: it keeps f's descriptor (a
// duplicate of it) and closes f.
func NewFileBackend(f *os.File) (*FileBackend, error) {
	if err := f.SetDeadline(time.Time{}); err != nil {
		return nil, fmt.Errorf("virtio-net: %s is not pollable (open it non-blocking): %w", f.Name(), err)
	}
	rc, err := f.SyscallConn()
	if err != nil {
		return nil, fmt.Errorf("virtio-net: %s: %w", f.Name(), err)
	}
	fd, derr := -1, error(nil)
	if err := rc.Control(func(s uintptr) { fd, derr = unix.FcntlInt(s, unix.F_DUPFD_CLOEXEC, 0) }); err != nil || derr != nil {
		return nil, fmt.Errorf("virtio-net: %s: duplicating the descriptor: %w", f.Name(), errors.Join(err, derr))
	}
	name := f.Name()
	f.Close() // out of Go's poller; the duplicate keeps the file open
	return &FileBackend{name: name, fd: fd}, nil
}

// poller returns the descriptor's duplicate in Go's poller, made at the
// first call.
func (b *FileBackend) poller() (syscall.RawConn, error) {
	b.pollMu.Lock()
	defer b.pollMu.Unlock()
	if b.rc != nil {
		return b.rc, nil
	}
	var fd int
	err := b.control(func(s int) (err error) {
		fd, err = unix.FcntlInt(uintptr(s), unix.F_DUPFD_CLOEXEC, 0)
		return err
	})
	if err != nil {
		return nil, err
	}
	f := os.NewFile(uintptr(fd), b.name)
	rc, err := f.SyscallConn()
	if err != nil {
		f.Close()
		return nil, err
	}
	b.polled, b.rc = f, rc
	return rc, nil
}

// ReadPacket reads one packet. A read of 0 bytes is io.EOF: a socket
// whose peer has gone (a TAP never returns an empty packet).
func (b *FileBackend) ReadPacket(p []byte) (int, error) { return b.readPacket(p, true) }

// WritePacket writes bufs as one packet with writev, waiting while the
// descriptor cannot take it. More than IOV_MAX buffers are gathered into
// one first.
func (b *FileBackend) WritePacket(bufs [][]byte) (int, error) {
	if len(bufs) > iovMax {
		bufs = [][]byte{gathered(bufs)}
	}
	n, err := b.io(true, true, func(fd int) (int, error) { return unix.Writev(fd, bufs) })
	return b.wrote(bufs, n, err)
}

// tryRead is ReadPacket for the device's thread, which waits on the
// descriptor itself: errWouldBlock when no packet is there.
func (b *FileBackend) tryRead(p []byte) (int, error) { return b.readPacket(p, false) }

// tryWrite is WritePacket for the device's thread: errWouldBlock when the
// descriptor cannot take the packet now. It allocates nothing a packet
// (its iovec list is kept for the next), so only the device's thread may
// call it.
func (b *FileBackend) tryWrite(bufs [][]byte) (int, error) {
	if len(bufs) > iovMax {
		bufs = [][]byte{gathered(bufs)}
	}
	b.fdMu.RLock()
	n, err := b.vectored(unix.SYS_WRITEV, bufs, &b.writeIov)
	b.fdMu.RUnlock()
	if errors.Is(err, unix.EAGAIN) {
		return 0, errWouldBlock
	}
	return b.wrote(bufs, n, err)
}

// vectored makes one readv or writev (trap) of bufs through the iovec
// list *iov, which it keeps for the next call, until the call is not
// interrupted by a signal. fdMu is held.
func (b *FileBackend) vectored(trap uintptr, bufs [][]byte, iov *[]unix.Iovec) (int, error) {
	if b.fd < 0 {
		return 0, os.ErrClosed
	}
	v := (*iov)[:0]
	for _, p := range bufs {
		if len(p) > 0 {
			v = append(v, unix.Iovec{Base: &p[0], Len: uint64(len(p))})
		}
	}
	*iov = v
	for {
		n, _, errno := syscall.Syscall(trap, uintptr(b.fd), uintptr(unsafe.Pointer(unsafe.SliceData(v))), uintptr(len(v)))
		if errno == 0 {
			return int(n), nil
		}
		if errno != unix.EINTR {
			return 0, errno
		}
	}
}

// tryReadv is tryRead into bufs, taken as one buffer (readv): the
// device's thread reads a packet straight into the driver's buffers with
// it. Like read, it may return more than bufs hold: a TAP gives a
// packet's whole length when it had to cut it short.
func (b *FileBackend) tryReadv(bufs [][]byte) (int, error) {
	b.fdMu.RLock()
	n, err := b.vectored(unix.SYS_READV, bufs, &b.readIov)
	b.fdMu.RUnlock()
	switch {
	case errors.Is(err, unix.EAGAIN):
		return 0, errWouldBlock
	case err != nil:
		return 0, fmt.Errorf("virtio-net: reading %s: %w", b.name, err)
	case n == 0 && virtio.Len(bufs) > 0:
		return 0, io.EOF
	}
	return n, nil
}

// readPacket reads one packet, waiting for one in Go's poller if wait.
func (b *FileBackend) readPacket(p []byte, wait bool) (int, error) {
	return b.read(wait, uint64(len(p)), func(fd int) (int, error) { return unix.Read(fd, p) })
}

// read runs op, a read into buffers of room bytes: a read of nothing into
// some room is io.EOF. errWouldBlock comes back as it is, which the
// device's thread meets at the end of every burst.
func (b *FileBackend) read(wait bool, room uint64, op func(fd int) (int, error)) (int, error) {
	n, err := b.io(wait, false, op)
	switch {
	case err == errWouldBlock:
		return 0, err
	case err != nil:
		return 0, fmt.Errorf("virtio-net: reading %s: %w", b.name, err)
	case n == 0 && room > 0:
		return 0, io.EOF
	}
	return n, nil
}

// wrote is what a write of bufs that wrote n bytes returns: err, or a short
// write, with the backend's name.
func (b *FileBackend) wrote(bufs [][]byte, n int, err error) (int, error) {
	switch {
	case err != nil:
		return 0, fmt.Errorf("virtio-net: writing %s: %w", b.name, err)
	case n != int(virtio.Len(bufs)):
		return n, fmt.Errorf("virtio-net: writing %s: %d of %d bytes: %w", b.name, n, virtio.Len(bufs), io.ErrShortWrite)
	}
	return n, nil
}

// io runs op, a read or (write) a write, on the descriptor until it is not
// interrupted by a signal. With wait it waits in Go's poller while op
// would block; without, that is errWouldBlock (unwrapped, for the
// device's thread to tell apart cheaply).
func (b *FileBackend) io(wait, write bool, op func(fd int) (int, error)) (int, error) {
	var n int
	var operr error
	if !wait {
		err := b.control(func(fd int) error { n, operr = retryEINTR(func() (int, error) { return op(fd) }); return nil })
		if errors.Is(operr, unix.EAGAIN) {
			return 0, errWouldBlock
		}
		return n, errors.Join(err, operr)
	}
	rc, err := b.poller()
	if err != nil {
		return 0, err
	}
	attempt := func(fd uintptr) bool {
		n, operr = retryEINTR(func() (int, error) { return op(int(fd)) })
		return operr != unix.EAGAIN
	}
	if write {
		err = rc.Write(attempt)
	} else {
		err = rc.Read(attempt)
	}
	return n, errors.Join(err, operr)
}

// fileBackend is pollable: the device serves a FileBackend, and a TAP,
// on a thread of its own that waits on the descriptor.
func (b *FileBackend) fileBackend() *FileBackend { return b }

// SetOffload does nothing: a plain descriptor has no offloads to set.
func (b *FileBackend) SetOffload(int) error { return nil }

// SetDeadline sets the read and write deadline of ReadPacket and
// WritePacket.
func (b *FileBackend) SetDeadline(t time.Time) error {
	if _, err := b.poller(); err != nil {
		return err
	}
	return b.polled.SetDeadline(t)
}

// Close closes the descriptor; a ReadPacket or WritePacket blocked on it
// returns an error.
func (b *FileBackend) Close() error {
	b.pollMu.Lock()
	if b.polled != nil {
		b.polled.Close() // wakes a blocked ReadPacket or WritePacket
	}
	b.pollMu.Unlock()
	b.fdMu.Lock()
	defer b.fdMu.Unlock()
	if b.fd < 0 {
		return os.ErrClosed
	}
	err := unix.Close(b.fd)
	b.fd = -1
	return err
}

// control runs f on the descriptor: an ioctl, or a read or write that does
// not wait. It fails with os.ErrClosed after Close.
func (b *FileBackend) control(f func(fd int) error) error {
	b.fdMu.RLock()
	defer b.fdMu.RUnlock()
	if b.fd < 0 {
		return os.ErrClosed
	}
	return f(b.fd)
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
