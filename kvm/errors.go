package kvm

import (
	"errors"
	"fmt"

	"golang.org/x/sys/unix"
)

// Error is the failure of one KVM ioctl: the ioctl's name and the errno the
// kernel returned. It unwraps to the errno, so errors.Is(err, unix.EEXIST) works.
type Error struct {
	Op    string     // the ioctl, e.g. "KVM_SET_USER_MEMORY_REGION"
	Errno unix.Errno // what the kernel said
}

func (e *Error) Error() string { return fmt.Sprintf("kvm: %s: %v", e.Op, e.Errno) }

// Unwrap returns the errno so callers can compare it with errors.Is.
func (e *Error) Unwrap() error { return e.Errno }

// ErrAPIVersion is returned by Open when /dev/kvm speaks another API version than
// the stable one (12) this binding is written against.
var ErrAPIVersion = errors.New("kvm: unsupported KVM API version")

// ErrClosed is returned by methods called on a descriptor after Close.
var ErrClosed = errors.New("kvm: descriptor closed")
