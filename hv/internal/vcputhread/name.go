package vcputhread

import (
	"fmt"

	"ember/internal/threadname"
)

// ThreadName is the name a vCPU's thread carries: what ps -T, top -H,
// perf and the kernel's own reports show for it, as Firecracker's
// "fc_vcpu 0" and QEMU's "CPU 0/KVM" (with -name debug-threads=on) are
// shown for theirs.
func ThreadName(vcpu int) string { return threadname.Cut(fmt.Sprintf("ember-vcpu%d", vcpu)) }

// Name names the calling thread for vCPU vcpu (threadname.Set). Call it on
// the vCPU's thread, locked to its goroutine for good.
func Name(vcpu int) error {
	if err := threadname.Set(ThreadName(vcpu)); err != nil {
		return fmt.Errorf("naming vCPU %d's thread: %w", vcpu, err)
	}
	return nil
}
