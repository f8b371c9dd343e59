package vcputhread

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// nameMax is the longest thread name Linux keeps (TASK_COMM_LEN, 16,
// with its NUL); a longer one is cut.
const nameMax = 15

// ThreadName is the name a vCPU's thread carries: what ps -T, top -H,
// perf and the kernel's own reports show for it, as Firecracker's
// "fc_vcpu 0" and QEMU's "CPU 0/KVM" (with -name debug-threads=on) are
// shown for theirs.
func ThreadName(vcpu int) string {
	name := fmt.Sprintf("ember-vcpu%d", vcpu)
	if len(name) > nameMax {
		name = name[:nameMax]
	}
	return name
}

// Name names the calling thread for vCPU vcpu, through its comm file in
// /proc (the same as PR_SET_NAME, without a pointer handed to the kernel).
// Call it on the vCPU's thread, locked to its goroutine for good: the name
// stays with the thread, which ends with the goroutine. The process's main
// thread, which a locked goroutine may happen to run on, is left alone: its
// name is the process's, which ps shows, and Go never ends that thread. An
// error (no /proc) leaves the thread unnamed; it is only cosmetic.
func Name(vcpu int) error {
	tid := unix.Gettid()
	if tid == unix.Getpid() {
		return nil
	}
	comm := fmt.Sprintf("/proc/self/task/%d/comm", tid)
	if err := os.WriteFile(comm, []byte(ThreadName(vcpu)), 0); err != nil {
		return fmt.Errorf("naming vCPU %d's thread: %w", vcpu, err)
	}
	return nil
}
