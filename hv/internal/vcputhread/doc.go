// Package vcputhread is how a vCPU's OS thread shares Go's scheduler with
// the goroutines that serve the guest's devices. A thread in KVM_RUN is, to
// the runtime, a goroutine in a system call holding its P; left alone, guest
// code uses up the Ps Go code needs and sysmon wakes every 20 µs to take
// them back. So each running vCPU thread adds a P of its own to GOMAXPROCS
// (sysmon.Budget, which the device threads share), a vCPU that keeps
// exiting quickly enters KVM holding that P (Entry, entry.go), and a busy
// vCPU goes through the scheduler every 8 ms so sysmon never finds it due
// (NewYield, yield.go, a sysmon.Pacer).
//
// Package hv's vCPU loop is the one user; the policies are here, apart, so
// they can be tested against a fake budget without KVM.
package vcputhread
