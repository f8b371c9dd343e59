package bootcost

import (
	"strconv"
	"strings"
	"time"

	"ember/internal/threadstat"
)

// The rows a Sampler reports from /proc: how the VMM's CPU time splits
// between running the guest, the vCPU threads' own work (their exits, the
// VMM's code between runs, the kernel's on their behalf) and the VMM's
// other threads (devices, runtime), and how often each kind of thread
// switched. A vCPU thread is one that ran the guest (guest time above
// zero), whatever the VMM names it.
const (
	GuestCPUMeasure   = "vmm guest cpu (s)"
	VCPUOwnCPUMeasure = "vmm vcpu threads' own cpu (s)"
	// Of the vCPU threads' own CPU, the part in the kernel (KVM's work
	// around the runs); the rest is the VMM's code.
	VCPUSystemCPUMeasure = "vmm vcpu threads' system cpu (s)"
	OtherCPUMeasure      = "vmm other threads' cpu (s)"
	VCPUSwitchesMeasure  = "vmm vcpu threads' ctx switches (k)"
	OtherSwitchesMeasure = "vmm other threads' ctx switches (k)"
	// The busiest of the other threads (by switches), per VMM process: a
	// device's thread or QEMU's main loop, told apart from the rest
	// (Go's scheduler, QEMU's workers).
	BusiestCPUMeasure      = "vmm busiest other thread's cpu (s)"
	BusiestSwitchesMeasure = "vmm busiest other thread's ctx switches (k)"
)

// procMeasures are the /proc rows in the order the table shows them.
var procMeasures = []string{GuestCPUMeasure, VCPUOwnCPUMeasure, VCPUSystemCPUMeasure, OtherCPUMeasure, VCPUSwitchesMeasure, OtherSwitchesMeasure,
	BusiestCPUMeasure, BusiestSwitchesMeasure}

// vmPID is the process a VM's debugfs directory ("TID-FD") belongs to,
// as the /proc under proc says. KVM names the directory after the thread
// that created the VM, which is not the process's main one in a Go VMM
// (ember creates its VMs on whatever thread the goroutine runs on), so
// the thread's group is looked up: counted from that thread's id, the
// "first thread after the main one" was the main thread itself, parked,
// and read 0 switches where Go's sysmon switched hundreds of times a
// second (docs/performance-log.md, 2026-12-05).
func vmPID(proc, vmDir string) (int, bool) {
	tid, _, ok := strings.Cut(vmDir, "-")
	n, err := strconv.Atoi(tid)
	if !ok || err != nil {
		return 0, false
	}
	return threadstat.ThreadGroup(proc, n), true
}

// procCounts sums the last readings of every thread seen into the /proc
// rows, in seconds and thousands.
func procCounts(threads map[int]map[int]threadstat.Times) map[string]float64 {
	m := map[string]float64{}
	for _, byTID := range threads {
		var busiest threadstat.Times
		for _, t := range byTID {
			m[GuestCPUMeasure] += t.Guest.Seconds()
			if t.Guest > 0 {
				m[VCPUOwnCPUMeasure] += max(t.CPU-t.Guest, time.Duration(0)).Seconds()
				m[VCPUSystemCPUMeasure] += t.System.Seconds()
				m[VCPUSwitchesMeasure] += float64(t.Switches) / 1000
				continue
			}
			m[OtherCPUMeasure] += t.CPU.Seconds()
			m[OtherSwitchesMeasure] += float64(t.Switches) / 1000
			if t.Switches > busiest.Switches {
				busiest = t
			}
		}
		m[BusiestCPUMeasure] += busiest.CPU.Seconds()
		m[BusiestSwitchesMeasure] += float64(busiest.Switches) / 1000
	}
	return m
}
