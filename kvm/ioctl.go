package kvm

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// kvmio is the ioctl type byte KVM uses for all its requests (KVMIO in kvm.h).
const kvmio = 0xAE

// Direction bits of an ioctl request number, from asm-generic/ioctl.h.
const (
	iocNone  = 0
	iocWrite = 1
	iocRead  = 2
)

// ioc builds an ioctl request number: direction, argument size, type and number.
func ioc(dir, nr, size uintptr) uintptr {
	return dir<<30 | size<<16 | kvmio<<8 | nr
}

func io(nr uintptr) uintptr         { return ioc(iocNone, nr, 0) }
func ior(nr, size uintptr) uintptr  { return ioc(iocRead, nr, size) }
func iow(nr, size uintptr) uintptr  { return ioc(iocWrite, nr, size) }
func iowr(nr, size uintptr) uintptr { return ioc(iocRead|iocWrite, nr, size) }
func ptr[T any](v *T) uintptr       { return uintptr(unsafe.Pointer(v)) }
func sliceptr[T any](s []T) uintptr { return uintptr(unsafe.Pointer(unsafe.SliceData(s))) }
func sizeof[T any]() uintptr        { var v T; return unsafe.Sizeof(v) }

// ioctl issues one ioctl and names it in the error. KVM documents that an
// ioctl interrupted by a signal before it did anything returns EINTR and may
// simply be issued again, so every ioctl except KVM_RUN (see VCPU.Run) is
// retried on EINTR.
func ioctl(fd int, name string, req, arg uintptr) (uintptr, error) {
	for {
		r, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), req, arg)
		if errno == unix.EINTR {
			continue
		}
		if errno != 0 {
			return 0, &Error{Op: name, Errno: errno}
		}
		return r, nil
	}
}
