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

func io(nr uintptr) uintptr                { return ioc(iocNone, nr, 0) }
func ior(nr, size uintptr) uintptr         { return ioc(iocRead, nr, size) }
func iow(nr, size uintptr) uintptr         { return ioc(iocWrite, nr, size) }
func iowr(nr, size uintptr) uintptr        { return ioc(iocRead|iocWrite, nr, size) }
func ptr[T any](v *T) unsafe.Pointer       { return unsafe.Pointer(v) }
func sliceptr[T any](s []T) unsafe.Pointer { return unsafe.Pointer(unsafe.SliceData(s)) }
func sizeof[T any]() uintptr               { var v T; return unsafe.Sizeof(v) }

// ioctl issues one ioctl whose argument points at memory (a struct the
// kernel reads or fills) and names it in the error. The argument stays an
// unsafe.Pointer until it is converted inside the system call's argument
// list: converted earlier, a uintptr is only a number to Go, and if the
// goroutine's stack moved (it grows at any call) before the kernel read it,
// the kernel would read wherever a stack variable used to be. That happened:
// a KVM_IRQFD built on the stack bound the wrong eventfd in some builds.
//
// KVM documents that an ioctl interrupted by a signal before it did
// anything returns EINTR and may simply be issued again, so every ioctl
// except KVM_RUN (see VCPU.Run) is retried on EINTR.
func ioctl(fd int, name string, req uintptr, arg unsafe.Pointer) (uintptr, error) {
	for {
		r, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), req, uintptr(arg))
		if again, err := ioctlResult(name, errno); !again {
			return r, err
		}
	}
}

// ioctlValue issues one ioctl whose argument is a number (a vCPU id, a
// capability), as ioctl does.
func ioctlValue(fd int, name string, req, arg uintptr) (uintptr, error) {
	for {
		r, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), req, arg)
		if again, err := ioctlResult(name, errno); !again {
			return r, err
		}
	}
}

// ioctlResult says whether an ioctl that returned errno is to be issued
// again (EINTR), and otherwise its error.
func ioctlResult(name string, errno unix.Errno) (bool, error) {
	switch errno {
	case 0:
		return false, nil
	case unix.EINTR:
		return true, nil
	}
	return false, &Error{Op: name, Errno: errno}
}
