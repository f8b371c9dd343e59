package kvm

import (
	"errors"
	"os"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"ember/kvm/kvmcap"

	"golang.org/x/sys/unix"
)

// requireEnv is the variable CI sets to turn "this host has no /dev/kvm" (or no
// C toolchain for the layout test) from a skip into a failure.
const requireEnv = "EMBER_REQUIRE_KVM"

// skipOrFail skips the test with why, unless EMBER_REQUIRE_KVM is set, in which
// case a missing prerequisite is an error.
func skipOrFail(t testing.TB, format string, args ...any) {
	t.Helper()
	if os.Getenv(requireEnv) != "" {
		t.Fatalf(requireEnv+" is set, so this is an error: "+format, args...)
	}
	t.Skipf("skipping: "+format, args...)
}

// openKVM opens /dev/kvm for one test and closes it when the test ends. Where
// there is no usable /dev/kvm the test is skipped, or fails when
// EMBER_REQUIRE_KVM is non-empty (CI sets it).
func openKVM(t testing.TB) *System {
	t.Helper()
	sys, err := Open()
	if err != nil {
		skipOrFail(t, "no /dev/kvm: %v; run the tests in the lab: go run ./lab test ./kvm", err)
	}
	t.Cleanup(func() { sys.Close() })
	return sys
}

// newTestVM creates a VM (with an in-kernel irqchip when irqchip is set, since
// that must precede every vCPU) and, when memSize > 0, memSize bytes of
// anonymous memory in slot 0 at guest-physical address 0.
func newTestVM(t testing.TB, memSize int, irqchip bool) (*VM, []byte) {
	t.Helper()
	sys := openKVM(t)
	vm, err := sys.CreateVM()
	if err != nil {
		t.Fatalf("CreateVM: %v", err)
	}
	t.Cleanup(func() { vm.Close() })
	if irqchip {
		if err := vm.CreateIRQChip(); err != nil {
			t.Fatalf("CreateIRQChip: %v", err)
		}
	}
	if memSize == 0 {
		return vm, nil
	}
	mem := mmapMemory(t, memSize)
	if err := vm.SetUserMemoryRegion(MemoryRegion{Slot: 0, Memory: mem}); err != nil {
		t.Fatalf("SetUserMemoryRegion(slot 0, %#x bytes at 0): %v", memSize, err)
	}
	return vm, mem
}

// mmapMemory maps size bytes of anonymous, page-aligned memory for a memory
// slot. It is unmapped after the test, and so after the VM is closed (cleanups
// run last-in first-out).
func mmapMemory(t testing.TB, size int) []byte {
	t.Helper()
	mem, err := unix.Mmap(-1, 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_ANONYMOUS)
	if err != nil {
		t.Fatalf("mmap %d bytes: %v", size, err)
	}
	t.Cleanup(func() { unix.Munmap(mem) })
	return mem
}

// newTestVCPU creates vCPU id and closes it after the test.
func newTestVCPU(t testing.TB, vm *VM, id int) *VCPU {
	t.Helper()
	cpu, err := vm.CreateVCPU(id)
	if err != nil {
		t.Fatalf("CreateVCPU(%d): %v", id, err)
	}
	t.Cleanup(func() { cpu.Close() })
	return cpu
}

// Where the test guests live: code at 0x1000 (CS base 0, IP 0x1000), data
// after it, the stack below 0x8000, all in the first 64 KiB.
const (
	guestCode  = 0x1000
	guestData  = 0x1100
	guestStack = 0x8000
	guestMem   = 0x10000
)

// realMode puts cpu in real mode at rip with every segment based at 0,
// interrupts off and the stack at guestStack.
func realMode(t testing.TB, cpu *VCPU, rip uint64) {
	t.Helper()
	s, err := cpu.GetSRegs()
	if err != nil {
		t.Fatalf("GetSRegs: %v", err)
	}
	for _, seg := range []*Segment{&s.CS, &s.DS, &s.ES, &s.FS, &s.GS, &s.SS} {
		seg.Base, seg.Selector = 0, 0
	}
	if err := cpu.SetSRegs(s); err != nil {
		t.Fatalf("SetSRegs: %v", err)
	}
	if err := cpu.SetRegs(Regs{RIP: rip, RFLAGS: 2, RSP: guestStack}); err != nil {
		t.Fatalf("SetRegs: %v", err)
	}
}

// newGuest builds the usual test machine: guestMem bytes at 0, code copied to
// guestCode, and vCPU 0 in real mode about to execute it.
func newGuest(t testing.TB, code []byte, irqchip bool) (*VM, *VCPU, []byte) {
	t.Helper()
	vm, mem := newTestVM(t, guestMem, irqchip)
	copy(mem[guestCode:], code)
	cpu := newTestVCPU(t, vm, 0)
	realMode(t, cpu, guestCode)
	return vm, cpu, mem
}

// runTimeout bounds one run of a test guest. The guests run a few dozen
// emulated instructions (under a millisecond here), so this only fires when a
// guest is stuck.
const runTimeout = 10 * time.Second

// run runs cpu until it exits for a reason other than a stray signal and
// returns that exit. It fails the test if KVM_RUN fails or the guest is still
// running after runTimeout (a watchdog kicks it out).
//
// Go's runtime preempts goroutines with SIGURG, which ends KVM_RUN with EINTR
// (ExitIntr) at any time; such an exit is not the guest's doing, so run simply
// enters the guest again.
func run(t testing.TB, cpu *VCPU) Exit {
	t.Helper()
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	cpu.BindThread()
	var timedOut atomic.Bool
	watchdog := time.AfterFunc(runTimeout, func() {
		timedOut.Store(true)
		cpu.Kick()
	})
	for {
		exit, err := cpu.Run()
		if err != nil {
			watchdog.Stop()
			t.Fatalf("Run: %v", err)
		}
		if exit.Reason == ExitIntr && !timedOut.Load() {
			continue
		}
		if !watchdog.Stop() || timedOut.Load() {
			cpu.SetImmediateExit(false)
			regs, _ := cpu.GetRegs()
			t.Fatalf("guest still running after %v (RIP %#x)", runTimeout, regs.RIP)
		}
		return exit
	}
}

// runExpect runs cpu and fails the test unless it exits with reason want.
func runExpect(t testing.TB, cpu *VCPU, want ExitReason) Exit {
	t.Helper()
	exit := run(t, cpu)
	if exit.Reason != want {
		regs, _ := cpu.GetRegs()
		t.Fatalf("exit = %v (RIP %#x), want %v", exit, regs.RIP, want)
	}
	return exit
}

// wantErrno fails the test unless err is an *Error for ioctl op carrying errno.
func wantErrno(t testing.TB, err error, op string, errno unix.Errno) {
	t.Helper()
	if err == nil {
		t.Fatalf("%s succeeded, want %v", op, errno)
	}
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("error %v (%T) is not a *kvm.Error", err, err)
	}
	if e.Op != op {
		t.Errorf("error names ioctl %q, want %q", e.Op, op)
	}
	if !errors.Is(err, errno) {
		t.Errorf("error is %v, want %v (%v)", e.Errno, errno, err)
	}
}

// mustCap skips the test when KVM lacks capability c.
func mustCap(t testing.TB, sys *System, c kvmcap.Cap) int {
	t.Helper()
	v, err := sys.CheckExtension(c)
	if err != nil {
		t.Fatalf("CheckExtension(%v): %v", c, err)
	}
	if v <= 0 {
		t.Skipf("skipping: KVM lacks %v", c)
	}
	return v
}
