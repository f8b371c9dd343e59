// Command labinit is the init (PID 1) of the lab's QEMU machine. It loads the
// kernel modules packed into the initramfs (KVM for AMD SVM, virtio-9p,
// overlayfs), mounts the host's root filesystem read-only with a writable
// layer in memory, keeps one VM open for the machine's life, runs the job the
// host wrote, reports on the second serial port and powers off.
//
// It is built by `go run ./lab` as a static binary; it is not meant to be run
// anywhere else.
package main

import (
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"ember/kvm"
	"ember/lab/job"
)

// newRoot is where the host's root filesystem is assembled and chrooted into.
const newRoot = "/newroot"

func main() {
	status := run()
	fmt.Fprintf(out, "%s%s %d\n", job.Marker, job.EventExit, status)
	unix.Sync()
	// Leave a moment for the UART to drain before the machine goes away.
	time.Sleep(200 * time.Millisecond)
	unix.Reboot(unix.LINUX_REBOOT_CMD_POWER_OFF)
	select {}
}

// out is where job output and markers go: the second serial port, which the
// host reads; the kernel's own log stays on the first.
var out = &lineWriter{w: os.Stdout, bol: true}

func run() int {
	if err := mountEarly(); err != nil {
		fmt.Fprintln(os.Stderr, "labinit:", err)
		return 125
	}
	if f, err := openRaw("/dev/ttyS1"); err == nil {
		out = &lineWriter{w: f, bol: true}
	} else {
		fmt.Fprintln(os.Stderr, "labinit: /dev/ttyS1:", err)
	}
	if err := loadModules("/modules"); err != nil {
		fmt.Fprintln(out, "labinit:", err)
		return 125
	}
	path, err := jobPath()
	if err != nil {
		fmt.Fprintln(out, "labinit:", err)
		return 125
	}
	if err := mountHostRoot(); err != nil {
		fmt.Fprintln(out, "labinit:", err)
		return 125
	}
	tuneKernel()
	if err := keepOffCPU0(); err != nil {
		fmt.Fprintln(out, "labinit: warning:", err)
	}
	hold, err := holdVMs()
	if err != nil {
		fmt.Fprintln(out, "labinit:", err)
		return 125
	}
	defer hold.Close()
	j, err := job.Read(newRoot + path)
	if err != nil {
		fmt.Fprintln(out, "labinit:", err)
		return 125
	}
	fmt.Fprintf(out, "%s%s %.1f\n", job.Marker, job.EventReady, uptime())
	done := make(chan struct{})
	defer close(done)
	go heartbeat(out, done)
	return runJob(j)
}

// jobPath finds the job file's path on the kernel command line.
func jobPath() (string, error) {
	b, err := os.ReadFile("/proc/cmdline")
	if err != nil {
		return "", err
	}
	for _, f := range strings.Fields(string(b)) {
		if v, ok := strings.CutPrefix(f, job.CmdlineKey+"="); ok {
			return v, nil
		}
	}
	return "", fmt.Errorf("no %s= on the kernel command line", job.CmdlineKey)
}

// holdVMs keeps VMs open for the lab's life, so the lab kernel never patches
// KVM's static keys while tests run. KVM turns its preempt-notifier key on
// with the first VM and off with the last, its "vCPU without an in-kernel
// LAPIC" key on with the first such vCPU, and its "software-disabled APIC"
// key on with the first vCPU whose APIC is still off (every new one).
// Under software emulation the kernel's live patching of those keys, at
// every such transition, livelocked both lab CPUs when tests created and
// destroyed VMs in a loop. So: one VM with an in-kernel irqchip and a vCPU
// that never runs (its APIC stays software-disabled), one without an
// irqchip with a vCPU.
func holdVMs() (io.Closer, error) {
	sys, err := kvm.Open()
	if err != nil {
		return nil, fmt.Errorf("no usable /dev/kvm in the lab (did kvm-amd load?): %w", err)
	}
	defer sys.Close()
	var held closers
	for _, irqchip := range []bool{true, false} {
		vm, err := sys.CreateVM()
		if err != nil {
			held.Close()
			return nil, fmt.Errorf("creating the lab's resident VM: %w", err)
		}
		held = append(held, vm)
		if irqchip {
			if err := vm.CreateIRQChip(); err != nil {
				held.Close()
				return nil, fmt.Errorf("the lab's resident VM: %w", err)
			}
		}
		cpu, err := vm.CreateVCPU(0)
		if err != nil {
			held.Close()
			return nil, fmt.Errorf("the lab's resident vCPU: %w", err)
		}
		held = append(held, cpu)
	}
	return held, nil
}

// closers closes each of its members.
type closers []io.Closer

func (c closers) Close() error {
	for i := len(c) - 1; i >= 0; i-- {
		c[i].Close()
	}
	return nil
}

// tuneKernel turns transparent huge pages off: with them on, guests stalled
// for minutes after the lab kernel moved their RAM to huge pages.
func tuneKernel() {
	for _, f := range []string{"enabled", "defrag"} {
		p := "/sys/kernel/mm/transparent_hugepage/" + f
		if err := os.WriteFile(p, []byte("never"), 0); err != nil {
			fmt.Fprintln(out, "labinit: warning:", err)
		}
	}
}

// uptime is the seconds since the lab kernel started.
func uptime() float64 {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_BOOTTIME, &ts); err != nil {
		return 0
	}
	return float64(ts.Nano()) / 1e9
}
