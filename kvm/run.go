package kvm

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// runStruct is struct kvm_run, the page KVM shares with user space per vCPU.
type runStruct struct {
	RequestInterruptWindow     uint8
	ImmediateExit              uint8
	_                          [6]uint8
	ExitReason                 uint32
	ReadyForInterruptInjection uint8
	IFFlag                     uint8
	Flags                      uint16
	CR8                        uint64
	APICBase                   uint64
	Exit                       [256]byte // the exit-reason union
	ValidRegs                  uint64    // kvm_valid_regs
	DirtyRegs                  uint64    // kvm_dirty_regs
	S                          [2048]byte
}

// kickSignal is the signal Kick sends to a vCPU thread to force it out of
// KVM_RUN. SIGURG is the signal the Go runtime already uses for goroutine
// preemption, so its handler is installed and harmless; KVM_RUN returns EINTR
// for it (the Go runtime sends it on its own too, which is why Run treats
// ExitIntr as an ordinary exit).
const kickSignal = unix.SIGURG

// Run issues KVM_RUN and returns why the vCPU stopped. A signal or a Kick ends
// KVM_RUN with EINTR; that is reported as an exit with reason ExitIntr and no
// error, since the vCPU state is consistent and the caller decides whether to
// run again. EAGAIN (a transient state of the vCPU) is retried.
//
// The returned Exit reads from the shared kvm_run page: use it before the next Run.
func (c *VCPU) Run() (Exit, error) {
	for {
		_, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(c.fd), kvmRun, 0)
		if exit, again, err := c.ran(errno); !again {
			return exit, err
		}
	}
}

// RunHoldingP is Run without telling Go's scheduler that the thread is in a
// system call: the goroutine keeps its P (the runtime's processor) while the
// guest runs. That skips the runtime's system-call bracket (entersyscall,
// exitsyscall), which under nested virtualization, where every instruction
// is emulated, costs a tenth of an exit's round trip or more.
//
// The price is the P: no other goroutine can use it until KVM_RUN returns.
// Go's preemption signal (SIGURG, sent by sysmon to a goroutine that has run
// 10 ms and by the garbage collector to stop the world) ends KVM_RUN with
// EINTR, so neither waits on a guest for long; but with asynchronous
// preemption off (GODEBUG=asyncpreemptoff=1) nothing would, so a caller uses
// this only while the guest exits often and preemption is on.
func (c *VCPU) RunHoldingP() (Exit, error) {
	for {
		_, _, errno := unix.RawSyscall(unix.SYS_IOCTL, uintptr(c.fd), kvmRun, 0)
		if exit, again, err := c.ran(errno); !again {
			return exit, err
		}
	}
}

// ran turns KVM_RUN's errno into Run's result, or says to issue it again
// (EAGAIN). Run and RunHoldingP call the system call themselves, each
// directly: on the exit path a call through a function value costs more
// than this repetition.
func (c *VCPU) ran(errno unix.Errno) (exit Exit, again bool, err error) {
	switch errno {
	case 0:
		return Exit{Reason: ExitReason(c.run.ExitReason), c: c}, false, nil
	case unix.EINTR:
		return Exit{Reason: ExitIntr, c: c}, false, nil
	case unix.EAGAIN:
		return Exit{}, true, nil
	}
	return Exit{}, false, &Error{Op: "KVM_RUN", Errno: errno}
}

// BindThread records the calling OS thread as the one that runs this vCPU, so
// Kick knows whom to signal. Call it after runtime.LockOSThread, before Run,
// and again before the next Run if the vCPU is run from another thread (a
// caller whose goroutine is not locked for good). The store is an atomic
// exchange, a full barrier on x86: the thread is recorded before the next
// KVM_RUN reads immediate_exit.
func (c *VCPU) BindThread() { c.tid.Store(int32(unix.Gettid())) }

// Kick forces the vCPU out of KVM_RUN, now or at its next entry: it sets
// kvm_run.immediate_exit and signals the vCPU's thread. It is safe to call from
// any goroutine. The vCPU's owner clears the request with SetImmediateExit(false).
//
// The thread is read with a locked add, not a plain load, so that the
// immediate_exit store before it cannot be ordered after it (x86 lets a
// load pass an earlier store). A vCPU bound to another thread since then
// either is found on its new thread (BindThread's store came first) or
// finds immediate_exit set when it enters KVM_RUN there; it cannot miss
// both.
func (c *VCPU) Kick() error {
	c.SetImmediateExit(true)
	tid := c.tid.Add(0)
	if tid == 0 {
		return nil // never ran: immediate_exit alone stops the first entry
	}
	err := unix.Tgkill(unix.Getpid(), int(tid), kickSignal)
	if err == unix.ESRCH {
		return nil // the thread is gone: so is the vCPU's run
	}
	return err
}

// SetImmediateExit sets or clears kvm_run.immediate_exit: while set, KVM_RUN
// returns EINTR at once instead of entering the guest.
func (c *VCPU) SetImmediateExit(on bool) {
	if r := c.run; r != nil {
		// A plain byte store: KVM reads the field on entry to KVM_RUN, after
		// the signal that Kick sends has been taken.
		*(*uint8)(unsafe.Pointer(&r.ImmediateExit)) = uint8(b2u(on))
	}
}

// RequestInterruptWindow asks KVM (without an in-kernel irqchip) to exit with
// ExitIRQWindowOpen as soon as the guest can take an interrupt.
func (c *VCPU) RequestInterruptWindow(on bool) { c.run.RequestInterruptWindow = uint8(b2u(on)) }

// ReadyForInterruptInjection reports kvm_run.ready_for_interrupt_injection.
func (c *VCPU) ReadyForInterruptInjection() bool { return c.run.ReadyForInterruptInjection != 0 }

// IFFlag reports the guest's RFLAGS.IF at the last exit.
func (c *VCPU) IFFlag() bool { return c.run.IFFlag != 0 }

// CR8 returns kvm_run.cr8 at the last exit.
func (c *VCPU) CR8() uint64 { return c.run.CR8 }

// APICBase returns kvm_run.apic_base at the last exit.
func (c *VCPU) APICBase() uint64 { return c.run.APICBase }

// SyncRegs returns the sync_regs area of kvm_run (KVM_CAP_SYNC_REGS). Set
// SetSyncValid(mask) to have KVM fill it on every exit, and SetSyncDirty(mask)
// after changing it to have KVM load it on the next entry.
func (c *VCPU) SyncRegs() *SyncRegs { return (*SyncRegs)(unsafe.Pointer(&c.run.S[0])) }

// SetSyncValid sets kvm_run.kvm_valid_regs (SyncRegs* bits).
func (c *VCPU) SetSyncValid(mask uint64) { c.run.ValidRegs = mask }

// SetSyncDirty sets kvm_run.kvm_dirty_regs (SyncRegs* bits).
func (c *VCPU) SetSyncDirty(mask uint64) { c.run.DirtyRegs = mask }
