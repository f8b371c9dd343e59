// Package fileio moves a request's buffers, scattered over guest memory,
// to and from a file at an offset: whole, retrying short transfers and
// EINTR, with pread or pwrite for a single buffer (the usual shape of a
// Linux guest's 4 KiB request: the kernel then builds no iovec array),
// and, for reads from the page cache alone, an iovec array on the stack.
// virtio-blk's raw disk and its qcow2 images share it.
package fileio

import (
	"unsafe"

	"golang.org/x/sys/unix"

	"ember/virtio"
)

// ReadAt fills bufs from the file fd at off and returns how many bytes it
// read: fewer than asked only at the file's end, or with an error.
func ReadAt(fd int, bufs [][]byte, off int64) (int, error) {
	return Transfer(bufs, off, func(b [][]byte, o int64) (int, error) {
		if len(b) == 1 {
			return unix.Pread(fd, b[0], o)
		}
		return unix.Preadv(fd, b, o)
	})
}

// WriteAt writes bufs to the file fd at off and returns how many bytes it
// wrote: all of them, or fewer with an error (or where the file system
// took nothing).
func WriteAt(fd int, bufs [][]byte, off int64) (int, error) {
	return Transfer(bufs, off, func(b [][]byte, o int64) (int, error) {
		if len(b) == 1 {
			return unix.Pwrite(fd, b[0], o)
		}
		return unix.Pwritev(fd, b, o)
	})
}

// ReadAtNoWait is ReadAt from the page cache alone (preadv2 with
// RWF_NOWAIT): EAGAIN once a buffer would wait for the disk; EOPNOTSUPP
// from a file system that cannot tell. Up to eight buffers go in an iovec
// array on the stack, so the read allocates nothing.
func ReadAtNoWait(fd int, bufs [][]byte, off int64) (int, error) {
	return Transfer(bufs, off, func(b [][]byte, o int64) (int, error) {
		if len(b) > 8 {
			return unix.Preadv2(fd, b, o, unix.RWF_NOWAIT)
		}
		var iov [8]unix.Iovec
		for i, buf := range b {
			if len(buf) > 0 {
				iov[i].Base = &buf[0]
			}
			iov[i].SetLen(len(buf))
		}
		// The offset's high half is for 32-bit kernels: a 64-bit one
		// takes the whole offset from the low argument (as x/sys passes it).
		n, _, errno := unix.Syscall6(unix.SYS_PREADV2, uintptr(fd), uintptr(unsafe.Pointer(&iov[0])), uintptr(len(b)),
			uintptr(o), 0, unix.RWF_NOWAIT)
		if errno != 0 {
			return 0, errno
		}
		return int(n), nil
	})
}

// Transfer calls op until bufs are done, op fails, or it moves nothing,
// and returns the bytes moved; EINTR is tried again.
func Transfer(bufs [][]byte, off int64, op func([][]byte, int64) (int, error)) (int, error) {
	done := 0
	for len(bufs) > 0 {
		n, err := op(bufs, off)
		if err == unix.EINTR {
			continue
		}
		if err != nil || n == 0 {
			return done, err
		}
		done += n
		off += int64(n)
		bufs = virtio.Skip(bufs, n) // a new list: the caller's stays as it was
		for len(bufs) > 0 && len(bufs[0]) == 0 {
			bufs = bufs[1:]
		}
	}
	return done, nil
}
