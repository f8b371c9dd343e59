package vcputhread

import (
	"ember/internal/sysmon"
	"ember/kvm"
)

// How a vCPU thread keeps Go's sysmon from taking its P again and again.
//
// A vCPU loop is the locked loop package sysmon describes: it never blocks
// in Go, it enters KVM_RUN and comes back, so without a yield sysmon would
// take its P in nearly every KVM_RUN once it had run for 10 ms. So the
// loop goes through the scheduler at the first exit sysmon.EveryMs after
// it last did; a vCPU that stays in the guest makes no exits to check at,
// and sysmon takes its P once, not again and again.
//
// The yield's time is not the guest's: a yield takes about 200 µs in the
// lab and now and then more than the entry policy's 500 µs, and counted
// into the next run it made that run long and sent the vCPU back to the
// ordinary entry for a streak of 16 runs (entry.go): a fifth to a third of
// the exit benchmarks' KVM_RUN samples were on that path before (perf in
// the lab, bench_pio.rom and bench_mmio.rom). So the loop times its next
// run from the TSC sysmon.Pacer.Maybe returns.

// NewYield sizes the vCPU's yield interval from the TSC frequency KVM
// reports for it (the host's: ember sets no other). If KVM cannot say, the
// vCPU never yields.
func NewYield(c *kvm.VCPU) sysmon.Pacer {
	khz, err := c.TSCKHz()
	if err != nil {
		return sysmon.NewPacer(0)
	}
	return sysmon.NewPacer(int64(khz))
}
