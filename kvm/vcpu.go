package kvm

import (
	"fmt"
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"
)

// vCPU ioctl numbers (include/uapi/linux/kvm.h).
var (
	kvmRun           = io(0x80)
	kvmGetRegs       = ior(0x81, sizeof[Regs]())
	kvmSetRegs       = iow(0x82, sizeof[Regs]())
	kvmGetSRegs      = ior(0x83, sizeof[SRegs]())
	kvmSetSRegs      = iow(0x84, sizeof[SRegs]())
	kvmTranslate     = iowr(0x85, sizeof[Translation]())
	kvmInterrupt     = iow(0x86, 4)
	kvmGetMSRs       = iowr(0x88, 8)
	kvmSetMSRs       = iow(0x89, 8)
	kvmSetSignalMask = iow(0x8b, 4)
	kvmGetFPU        = ior(0x8c, sizeof[FPU]())
	kvmSetFPU        = iow(0x8d, sizeof[FPU]())
	kvmGetLAPIC      = ior(0x8e, sizeof[LAPICState]())
	kvmSetLAPIC      = iow(0x8f, sizeof[LAPICState]())
	kvmSetCPUID2     = iow(0x90, 8)
	kvmGetCPUID2     = iowr(0x91, 8)
	kvmGetMPState    = ior(0x98, 4)
	kvmSetMPState    = iow(0x99, 4)
	kvmSetGuestDebug = iow(0x9b, sizeof[GuestDebug]())
	kvmGetVCPUEvents = ior(0x9f, sizeof[VCPUEvents]())
	kvmSetVCPUEvents = iow(0xa0, sizeof[VCPUEvents]())
	kvmGetXSave      = ior(0xa4, sizeof[XSave]())
	kvmSetXSave      = iow(0xa5, sizeof[XSave]())
	kvmGetXCRs       = ior(0xa6, sizeof[XCRs]())
	kvmSetXCRs       = iow(0xa7, sizeof[XCRs]())
	kvmGetTSCKHz     = io(0xa3)
	kvmEnableCapVCPU = iow(0xa3, sizeof[EnableCap]())
	kvmKVMClockCtrl  = io(0xad)
)

// VCPU is a KVM virtual CPU: the handle for vCPU ioctls and its mmap'd kvm_run.
//
// KVM requires vCPU ioctls to come from the thread that runs the vCPU (other
// threads may issue them, but then the vCPU migrates its state between threads
// on every call); run a VCPU from one goroutine locked to its OS thread with
// runtime.LockOSThread. Kick is the one method meant for other goroutines.
type VCPU struct {
	fd  int
	id  int
	mem []byte // the mmap'd kvm_run region
	run *runStruct
	tid atomic.Int32 // OS thread of the last Run, for Kick
}

func newVCPU(fd, id int, mem []byte) *VCPU {
	return &VCPU{fd: fd, id: id, mem: mem, run: (*runStruct)(unsafe.Pointer(&mem[0]))}
}

// ID returns the vCPU id it was created with (its APIC id).
func (c *VCPU) ID() int { return c.id }

// Fd returns the vCPU's raw descriptor.
func (c *VCPU) Fd() int { return c.fd }

// Close unmaps kvm_run and closes the vCPU descriptor.
func (c *VCPU) Close() error {
	if c.fd < 0 {
		return ErrClosed
	}
	c.run = nil
	err := unix.Munmap(c.mem)
	if cerr := unix.Close(c.fd); err == nil {
		err = cerr
	}
	c.fd, c.mem = -1, nil
	return err
}

// GetRegs issues KVM_GET_REGS.
func (c *VCPU) GetRegs() (Regs, error) {
	var r Regs
	_, err := ioctl(c.fd, "KVM_GET_REGS", kvmGetRegs, ptr(&r))
	return r, err
}

// SetRegs issues KVM_SET_REGS.
func (c *VCPU) SetRegs(r Regs) error {
	_, err := ioctl(c.fd, "KVM_SET_REGS", kvmSetRegs, ptr(&r))
	return err
}

// GetSRegs issues KVM_GET_SREGS.
func (c *VCPU) GetSRegs() (SRegs, error) {
	var s SRegs
	_, err := ioctl(c.fd, "KVM_GET_SREGS", kvmGetSRegs, ptr(&s))
	return s, err
}

// SetSRegs issues KVM_SET_SREGS. KVM checks the combination (EINVAL for, e.g.,
// long mode without paging).
func (c *VCPU) SetSRegs(s SRegs) error {
	_, err := ioctl(c.fd, "KVM_SET_SREGS", kvmSetSRegs, ptr(&s))
	return err
}

// Translate issues KVM_TRANSLATE: walks the guest's page tables for a linear
// address as the vCPU would.
func (c *VCPU) Translate(linear uint64) (Translation, error) {
	t := Translation{LinearAddress: linear}
	_, err := ioctl(c.fd, "KVM_TRANSLATE", kvmTranslate, ptr(&t))
	return t, err
}

// Interrupt issues KVM_INTERRUPT: queues an external interrupt vector. Only
// valid without an in-kernel irqchip (KVM answers ENXIO otherwise).
func (c *VCPU) Interrupt(vector uint32) error {
	_, err := ioctl(c.fd, "KVM_INTERRUPT", kvmInterrupt, ptr(&vector))
	return err
}

// GetMSRs issues KVM_GET_MSRS for the MSRs whose Index is set in entries, fills
// in their Data, and returns how many were read: KVM stops at the first MSR it
// cannot read, so n < len(entries) names entries[n] as the refused one.
func (c *VCPU) GetMSRs(entries []MSREntry) (int, error) {
	m := msrsFrom(entries)
	n, err := ioctl(c.fd, "KVM_GET_MSRS", kvmGetMSRs, m.ptr())
	copy(entries, m.slice())
	return int(n), err
}

// SetMSRs issues KVM_SET_MSRS and returns how many MSRs were written; as with
// GetMSRs, n < len(entries) means entries[n] was refused. A refused MSR is data
// for the caller (a host may not support it), not a failure of the call.
func (c *VCPU) SetMSRs(entries []MSREntry) (int, error) {
	m := msrsFrom(entries)
	n, err := ioctl(c.fd, "KVM_SET_MSRS", kvmSetMSRs, m.ptr())
	return int(n), err
}

// SetCPUID2 issues KVM_SET_CPUID2: what CPUID answers in the guest. Call it
// before the first Run; later calls may be refused.
func (c *VCPU) SetCPUID2(entries []CPUIDEntry) error {
	b := cpuid2From(entries)
	_, err := ioctl(c.fd, "KVM_SET_CPUID2", kvmSetCPUID2, b.ptr())
	return err
}

// GetCPUID2 issues KVM_GET_CPUID2: the CPUID entries set on this vCPU.
//
// Kernels differ in telling how many entries they wrote: some write the
// count back into nent, others (6.1's SVM and VMX KVM among them) leave nent
// as the caller set it on success and do not report it on E2BIG either. So
// every entry of the buffer is first marked in its padding, which KVM
// overwrites with zeros for each entry it copies; the entries are the ones
// before the first still-marked slot.
func (c *VCPU) GetCPUID2() ([]CPUIDEntry, error) {
	for n := 64; ; n *= 2 {
		b := newCPUID2(n)
		slots := b.slice()
		for i := range slots {
			slots[i].padding = cpuidUnwritten
		}
		_, err := ioctl(c.fd, "KVM_GET_CPUID2", kvmGetCPUID2, b.ptr())
		if err == nil {
			got := b.slice()
			for i := range got {
				if got[i].padding == cpuidUnwritten {
					got = got[:i]
					break
				}
			}
			return append([]CPUIDEntry(nil), got...), nil
		}
		if e, ok := err.(*Error); !ok || e.Errno != unix.E2BIG || n >= maxCPUIDEntries {
			return nil, err
		}
	}
}

// cpuidUnwritten marks a CPUIDEntry slot KVM has not written: the padding of
// every entry KVM copies out is zero.
var cpuidUnwritten = [3]uint32{0xffffffff, 0xffffffff, 0xffffffff}

// SetSignalMask issues KVM_SET_SIGNAL_MASK: the signals blocked while the vCPU
// is in KVM_RUN (nil: run with the thread's own mask).
func (c *VCPU) SetSignalMask(set *unix.Sigset_t) error {
	if set == nil {
		_, err := ioctlValue(c.fd, "KVM_SET_SIGNAL_MASK", kvmSetSignalMask, 0)
		return err
	}
	// struct kvm_signal_mask { __u32 len; __u8 sigset[]; } with the kernel's
	// 8-byte sigset.
	var buf struct {
		Len uint32
		Set [8]byte
	}
	buf.Len = 8
	*(*uint64)(unsafe.Pointer(&buf.Set)) = set.Val[0]
	_, err := ioctl(c.fd, "KVM_SET_SIGNAL_MASK", kvmSetSignalMask, ptr(&buf))
	return err
}

// GetFPU issues KVM_GET_FPU.
func (c *VCPU) GetFPU() (FPU, error) {
	var f FPU
	_, err := ioctl(c.fd, "KVM_GET_FPU", kvmGetFPU, ptr(&f))
	return f, err
}

// SetFPU issues KVM_SET_FPU.
func (c *VCPU) SetFPU(f FPU) error {
	_, err := ioctl(c.fd, "KVM_SET_FPU", kvmSetFPU, ptr(&f))
	return err
}

// GetLAPIC issues KVM_GET_LAPIC (needs the in-kernel irqchip).
func (c *VCPU) GetLAPIC() (*LAPICState, error) {
	s := &LAPICState{}
	if _, err := ioctl(c.fd, "KVM_GET_LAPIC", kvmGetLAPIC, ptr(s)); err != nil {
		return nil, err
	}
	return s, nil
}

// SetLAPIC issues KVM_SET_LAPIC.
func (c *VCPU) SetLAPIC(s *LAPICState) error {
	_, err := ioctl(c.fd, "KVM_SET_LAPIC", kvmSetLAPIC, ptr(s))
	return err
}

// GetMPState issues KVM_GET_MP_STATE.
func (c *VCPU) GetMPState() (MPState, error) {
	var s MPState
	_, err := ioctl(c.fd, "KVM_GET_MP_STATE", kvmGetMPState, ptr(&s))
	return s, err
}

// SetMPState issues KVM_SET_MP_STATE: e.g. MPStateUninitialized parks an AP
// until the guest's INIT/SIPI wakes it.
func (c *VCPU) SetMPState(s MPState) error {
	_, err := ioctl(c.fd, "KVM_SET_MP_STATE", kvmSetMPState, ptr(&s))
	return err
}

// GetXSave issues KVM_GET_XSAVE.
func (c *VCPU) GetXSave() (*XSave, error) {
	x := &XSave{}
	if _, err := ioctl(c.fd, "KVM_GET_XSAVE", kvmGetXSave, ptr(x)); err != nil {
		return nil, err
	}
	return x, nil
}

// SetXSave issues KVM_SET_XSAVE.
func (c *VCPU) SetXSave(x *XSave) error {
	_, err := ioctl(c.fd, "KVM_SET_XSAVE", kvmSetXSave, ptr(x))
	return err
}

// GetXCRs issues KVM_GET_XCRS.
func (c *VCPU) GetXCRs() (XCRs, error) {
	var x XCRs
	_, err := ioctl(c.fd, "KVM_GET_XCRS", kvmGetXCRs, ptr(&x))
	return x, err
}

// SetXCRs issues KVM_SET_XCRS.
func (c *VCPU) SetXCRs(x XCRs) error {
	_, err := ioctl(c.fd, "KVM_SET_XCRS", kvmSetXCRs, ptr(&x))
	return err
}

// GetVCPUEvents issues KVM_GET_VCPU_EVENTS.
func (c *VCPU) GetVCPUEvents() (VCPUEvents, error) {
	var e VCPUEvents
	_, err := ioctl(c.fd, "KVM_GET_VCPU_EVENTS", kvmGetVCPUEvents, ptr(&e))
	return e, err
}

// SetVCPUEvents issues KVM_SET_VCPU_EVENTS: how a VMM injects an exception
// (Exception.Injected=1 with Nr and an error code) into the guest.
func (c *VCPU) SetVCPUEvents(e VCPUEvents) error {
	_, err := ioctl(c.fd, "KVM_SET_VCPU_EVENTS", kvmSetVCPUEvents, ptr(&e))
	return err
}

// InjectException queues exception vector nr (with an error code when hasCode)
// for delivery on the next Run, through KVM_GET/SET_VCPU_EVENTS.
func (c *VCPU) InjectException(nr uint8, hasCode bool, code uint32) error {
	e, err := c.GetVCPUEvents()
	if err != nil {
		return err
	}
	// "Injected" is the classic form, which KVM delivers on the next entry.
	// "Pending" exists only with KVM_CAP_EXCEPTION_PAYLOAD enabled and
	// KVM_VCPUEVENT_VALID_PAYLOAD set; without them KVM silently clears it,
	// so the exception would be dropped without an error.
	e.Exception.Injected = 1
	e.Exception.Pending = 0
	e.Exception.Nr = nr
	e.Exception.HasErrorCode = uint8(b2u(hasCode))
	e.Exception.ErrorCode = code
	e.Flags = 0
	return c.SetVCPUEvents(e)
}

// SetGuestDebug issues KVM_SET_GUEST_DEBUG: single-stepping and breakpoints
// that exit with ExitDebug.
func (c *VCPU) SetGuestDebug(d GuestDebug) error {
	_, err := ioctl(c.fd, "KVM_SET_GUEST_DEBUG", kvmSetGuestDebug, ptr(&d))
	return err
}

// TSCKHz issues KVM_GET_TSC_KHZ: the guest TSC frequency.
func (c *VCPU) TSCKHz() (int, error) {
	r, err := ioctlValue(c.fd, "KVM_GET_TSC_KHZ", kvmGetTSCKHz, 0)
	return int(r), err
}

// EnableCap issues KVM_ENABLE_CAP on the vCPU.
func (c *VCPU) EnableCap(e EnableCap) error {
	_, err := ioctl(c.fd, "KVM_ENABLE_CAP", kvmEnableCapVCPU, ptr(&e))
	return err
}

// KVMClockCtrl issues KVM_KVMCLOCK_CTRL: tells the guest's kvmclock that the
// vCPU was paused by the host, so its soft-lockup watchdog does not fire.
func (c *VCPU) KVMClockCtrl() error {
	_, err := ioctlValue(c.fd, "KVM_KVMCLOCK_CTRL", kvmKVMClockCtrl, 0)
	return err
}

func (c *VCPU) String() string { return fmt.Sprintf("vcpu%d", c.id) }
