// Package threadname names the calling OS thread, so that ps -T, top -H,
// perf and the kernel's own reports tell ember's threads apart: a vCPU's
// (ember-vcpuN), a device's (ember-net).
package threadname

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// Max is the longest thread name Linux keeps (TASK_COMM_LEN, 16, with its
// NUL); Set cuts a longer one.
const Max = 15

// Cut returns name as the kernel keeps it: its first Max bytes.
func Cut(name string) string {
	if len(name) > Max {
		return name[:Max]
	}
	return name
}

// Set names the calling thread, through its comm file in /proc (the same
// as PR_SET_NAME, without a pointer handed to the kernel). Call it from a
// goroutine locked to its thread for good (runtime.LockOSThread, never
// undone): the name stays with the thread, and Go ends a thread whose
// locked goroutine returns, so no other goroutine inherits the name. The
// process's main thread, which a locked goroutine may happen to run on, is
// left alone: its name is the process's, which ps shows, and Go never ends
// that thread. An error (no /proc) leaves the thread unnamed; a name is
// only cosmetic.
func Set(name string) error {
	tid := unix.Gettid()
	if tid == unix.Getpid() {
		return nil
	}
	comm := fmt.Sprintf("/proc/self/task/%d/comm", tid)
	if err := os.WriteFile(comm, []byte(Cut(name)), 0); err != nil {
		return fmt.Errorf("naming thread %d %q: %w", tid, name, err)
	}
	return nil
}
