package pc

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync"

	"ember/hv"
	"ember/pc/fwtables"
	"ember/x86"
)

// ACPI S3 (suspend to RAM) on a machine without firmware. A PC's firmware
// resumes the machine on a wake event: it resets the processors and the
// chipset, leaves RAM alone, and jumps to the waking vector the OSPM left in
// the FACS (ACPI 6.x §16.3, §5.2.10). ember is that firmware: package acpipm
// sees the sleep request and the wake event, and the Platform does the rest
// with hv.VM's Sleep and Wake.

// FACS fields (ACPI 6.x Table 5.14).
const (
	facsSignature     = 0  // "FACS"
	facsWakingVector  = 12 // Firmware_Waking_Vector: real-mode entry, 32 bits
	facsXWakingVector = 24 // X_Firmware_Waking_Vector: 64 bits, version >= 1
	facsVersion       = 32
	facsReadLen       = 40
)

// bootVCPU is the vCPU a wake starts, the BSP (APIC ID 0); the others wait
// for INIT/SIPI, as after a reset.
const bootVCPU = 0

// ErrNoWakingVector is returned by wakingEntry when the guest set neither
// waking vector: a PC's firmware then boots afresh.
var ErrNoWakingVector = errors.New("pc: the FACS holds no waking vector")

// wakingEntry reads the FACS at fwtables.FACSAddr, which the guest may have
// written anything into, and returns where a wake enters the guest:
//
//   - X_Firmware_Waking_Vector, if non-zero (it takes precedence): 32-bit
//     protected mode, flat segments, paging off, EIP = the vector. The FACS
//     does not set 64BIT_WAKE_SUPPORTED_F, so the OSPM's 64BIT_WAKE_F is
//     not honoured and the entry is always 32-bit. The vector must lie
//     below 4 GiB.
//   - else Firmware_Waking_Vector: real mode with CS = vector>>4 and
//     IP = vector&0xf, which needs the vector below 1 MiB.
func wakingEntry(mem io.ReaderAt) (x86.Entry, error) {
	b := make([]byte, facsReadLen)
	if _, err := mem.ReadAt(b, fwtables.FACSAddr); err != nil {
		return x86.Entry{}, fmt.Errorf("pc: reading the FACS: %w", err)
	}
	if string(b[facsSignature:facsSignature+4]) != "FACS" {
		return x86.Entry{}, fmt.Errorf("pc: the FACS at %#x has lost its signature (%q)", fwtables.FACSAddr, b[:4])
	}
	le := binary.LittleEndian
	if x := le.Uint64(b[facsXWakingVector:]); b[facsVersion] >= 1 && x != 0 {
		if x > 0xffffffff {
			return x86.Entry{}, fmt.Errorf("pc: X_Firmware_Waking_Vector %#x is above 4 GiB", x)
		}
		return x86.Entry{Mode: x86.ProtectedMode, RIP: x, NoTables: true}, nil
	}
	v := le.Uint32(b[facsWakingVector:])
	switch {
	case v == 0:
		return x86.Entry{}, ErrNoWakingVector
	case v >= 1<<20:
		return x86.Entry{}, fmt.Errorf("pc: Firmware_Waking_Vector %#x is not below 1 MiB", v)
	}
	return x86.Entry{Mode: x86.RealMode, RIP: uint64(v), CS: uint16(v >> 4)}, nil
}

// suspend is acpipm's Suspend: the guest entered S3.
func (p *Platform) suspend(vm *hv.VM) { vm.Sleep() }

// startResume is acpipm's Resume: a wake event ended S3. The PM's lock is
// held and a vCPU may be the caller, while Wake waits for every vCPU to
// leave the guest: the resume runs on its own goroutine, which the VM's
// Close waits for.
func (p *Platform) startResume(vm *hv.VM) { p.resumes.start(func() { p.resume(vm) }) }

// resumeGroup runs resumes in the background until it is closed.
type resumeGroup struct {
	mu     sync.Mutex
	closed bool
	wg     sync.WaitGroup
}

// start runs f on a goroutine of its own, unless the group is closed.
func (g *resumeGroup) start(f func()) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return
	}
	g.wg.Add(1)
	go func() {
		defer g.wg.Done()
		f()
	}()
}

// close starts no more and waits for those under way.
func (g *resumeGroup) close() {
	g.mu.Lock()
	g.closed = true
	g.mu.Unlock()
	g.wg.Wait()
}

// resume does what a PC's firmware does on a wake: every vCPU and the
// interrupt controllers and PIT back to their power-on state, the devices
// reset as a machine reset resets them (RAM and the RTC's battery-backed
// time and CMOS excepted), and the BSP started at the waking vector. A
// guest that left no usable waking vector is reset instead, as firmware
// would boot afresh.
func (p *Platform) resume(vm *hv.VM) {
	log := vm.Logger()
	entry, err := wakingEntry(vm.Memory())
	if err == nil {
		err = vm.Wake(bootVCPU, entry, p.resetForWake)
	}
	switch {
	case errors.Is(err, hv.ErrNotSleeping), errors.Is(err, hv.ErrClosed):
		return // the VM was reset or closed meanwhile
	case err != nil:
		log.Warn("resume from ACPI S3 failed; resetting the machine", "err", err)
		vm.StopWith(hv.Result{Reason: hv.StopReset})
		return
	}
	log.Info("guest resumed from ACPI S3", "mode", entry.Mode, "vector", fmt.Sprintf("%#x", entry.RIP))
}

// resetForWake resets the devices a machine reset resets; it runs inside
// hv.VM.Wake, with every vCPU stopped.
func (p *Platform) resetForWake() {
	p.resetVirtio()
	p.COM1.Reset()
	p.I8042.Reset()
	p.RTC.Reset()
}

// Wake wakes a guest asleep in ACPI S3 from the host, as a press of the
// power button (or QEMU's system_wakeup) does; it reports whether the guest
// was asleep. The wake itself completes in the background, as on a wake
// event; hv.VM.Sleeping turns false when the vCPUs run again.
func (p *Platform) Wake() bool { return p.PM.Wake() }
