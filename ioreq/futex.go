package ioreq

import (
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Futex operations on words of shared memory (the request buffer, a client
// page): without FUTEX_PRIVATE_FLAG the kernel keys the wait on the page
// itself, so a thread of ember and one of a device model wait and wake on
// the same word through their own mappings. This is the futex hand-off
// (docs/ioreq-protocol.md, "Futex hand-off"): the sleeping side blocks in
// the kernel on the very word the other side changes, and is woken by it
// directly, with no eventfd, no poller thread and no goroutine in between.
const (
	futexWait = 0 // FUTEX_WAIT, shared
	futexWake = 1 // FUTEX_WAKE, shared
)

// FutexWait blocks the calling thread while *w still holds val, for at most
// timeout (which must be positive), or until a FutexWake on w. It returns
// at once if *w is no longer val. Spurious returns are allowed: the caller
// looks at the word again.
func FutexWait(w *atomic.Uint32, val uint32, timeout time.Duration) {
	ts := unix.NsecToTimespec(int64(timeout))
	unix.Syscall6(unix.SYS_FUTEX, uintptr(unsafe.Pointer(w)), futexWait, uintptr(val),
		uintptr(unsafe.Pointer(&ts)), 0, 0)
}

// FutexWake wakes every thread blocked in FutexWait on w.
func FutexWake(w *atomic.Uint32) {
	unix.Syscall6(unix.SYS_FUTEX, uintptr(unsafe.Pointer(w)), futexWake, uintptr(1<<31-1), 0, 0, 0)
}
