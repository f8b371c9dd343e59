package x86

import (
	"fmt"
	"io"

	"ember/boot"
	"ember/kvm"
	"ember/layout"
)

// Mode is a processor mode a vCPU can be started in. It is the boot
// package's CPUMode, so that what a loader asks for is what Setup provides.
type Mode = boot.CPUMode

// The modes Setup knows.
const (
	RealMode      = boot.RealMode      // 16-bit real mode: CS:IP from the entry address
	ProtectedMode = boot.ProtectedMode // 32-bit protected mode, flat segments, paging off
	LongMode      = boot.LongMode      // 64-bit long mode, identity-mapped low 4 GiB
)

// Entry is the CPU state a guest starts in.
type Entry struct {
	Mode Mode
	RIP  uint64
	RSP  uint64 // 0 means layout.StackTop
	// Ring3 starts the code at privilege level 3 (with flat user segments)
	// instead of 0; meaningful in protected and long mode.
	Ring3 bool
	// IOPL3 lets ring-3 code use IN and OUT.
	IOPL3 bool
	// CS, in real mode, is the code segment to enter with: base CS<<4 and
	// IP = RIP - CS<<4, which must fit in 16 bits (an ACPI waking vector
	// is entered with CS = vector>>4, IP = vector&0xf). Zero means RIP's
	// 64 KiB page, IP its low 16 bits.
	CS uint16
	// NoTables, in protected mode, writes no GDT or TSS into guest memory:
	// the segment registers' hidden parts alone carry the flat mode, and
	// GDTR and IDTR are empty until the code loads its own, as on a wake
	// from sleep, where every byte of RAM is the guest's. Long mode needs
	// page tables, so it cannot have NoTables.
	NoTables bool
	// Regs carries the general registers a boot protocol passes (RSI for the
	// Linux zero page, RBX for PVH start info); RIP, RSP and RFLAGS in it are
	// ignored.
	Regs kvm.Regs
}

// Setup writes the GDT, TSS and (for long mode) page tables into mem and sets
// vcpu's registers for e. mem is guest memory addressed by guest-physical
// address (memory.Guest satisfies it).
func Setup(mem io.WriterAt, vcpu *kvm.VCPU, e Entry) error {
	sregs, err := vcpu.GetSRegs()
	if err != nil {
		return fmt.Errorf("x86: setting up %v: %w", e.Mode, err)
	}
	if err := SRegsFor(mem, &sregs, e); err != nil {
		return err
	}
	if err := vcpu.SetSRegs(sregs); err != nil {
		return fmt.Errorf("x86: setting up %v: %w", e.Mode, err)
	}
	if err := vcpu.SetRegs(RegsFor(e)); err != nil {
		return fmt.Errorf("x86: setting up %v: %w", e.Mode, err)
	}
	return nil
}

// RegsFor returns the general registers for e.
func RegsFor(e Entry) kvm.Regs {
	r := e.Regs
	r.RIP, r.RSP, r.RFLAGS = e.RIP, e.RSP, RFLAGSReserved
	if r.RSP == 0 {
		r.RSP = layout.StackTop
	}
	if e.Mode == RealMode {
		r.RIP = (e.RIP - uint64(realCS(e))<<4) & 0xffff
	}
	if e.IOPL3 {
		r.RFLAGS |= RFLAGSIOPL3
	}
	return r
}

// SRegsFor writes the mode's tables into mem and fills the segment and control
// registers of s for e, keeping what e does not decide (the APIC base, the
// interrupt bitmap).
func SRegsFor(mem io.WriterAt, s *kvm.SRegs, e Entry) error {
	switch e.Mode {
	case RealMode:
		cs := realCS(e)
		if base := uint64(cs) << 4; e.RIP < base || e.RIP-base > 0xffff {
			return fmt.Errorf("x86: real-mode entry %#x is not reachable from CS %#x", e.RIP, cs)
		}
		realMode(s, cs)
		return nil
	case ProtectedMode, LongMode:
	default:
		return fmt.Errorf("x86: unknown mode %d", int(e.Mode))
	}
	long := e.Mode == LongMode
	if long && e.NoTables {
		return fmt.Errorf("x86: long mode needs page tables in guest memory")
	}
	set := segmentsFor(long)
	if !e.NoTables {
		if err := writeTables(mem, set, e); err != nil {
			return err
		}
	}
	code, data := set.code, set.data
	if e.Ring3 {
		code, data = set.user32, set.userData
		if long {
			code = set.user64
		}
	}
	s.CS = code.kvm()
	s.DS, s.ES, s.FS, s.GS, s.SS = data.kvm(), data.kvm(), data.kvm(), data.kvm(), data.kvm()
	s.TR = set.tss.kvm()
	s.LDT = kvm.Segment{Type: 2, Present: 1, Unusable: 1, Limit: 0xffff}
	s.GDT = kvm.DTable{Base: layout.GDT, Limit: GDTEntries*8 - 1}
	if e.NoTables {
		s.GDT = kvm.DTable{}
	}
	s.IDT = kvm.DTable{}
	s.CR0 = CR0PE | CR0ET | CR0NE
	s.CR4, s.EFER = 0, 0
	if long {
		s.CR0 |= CR0MP | CR0WP | CR0PG
		s.CR3 = layout.PML4
		s.CR4 = CR4PAE | CR4OSFXSR | CR4OSXMMEXCPT
		s.EFER = EFERLME | EFERLMA | EFERSCE
	}
	return nil
}

// writeTables writes the GDT, the TSS and, for long mode, the page tables.
func writeTables(mem io.WriterAt, set segmentSet, e Entry) error {
	rsp0 := e.RSP
	if rsp0 == 0 {
		rsp0 = layout.StackTop
	}
	writes := []struct {
		addr uint64
		b    []byte
	}{{layout.GDT, set.gdtBytes()}, {layout.TSS, tssBytes(rsp0)}}
	if e.Mode == LongMode {
		writes = append(writes, struct {
			addr uint64
			b    []byte
		}{layout.PML4, pageTables()})
	}
	for _, w := range writes {
		if _, err := mem.WriteAt(w.b, int64(w.addr)); err != nil {
			return fmt.Errorf("x86: writing %v tables at %#x: %w", e.Mode, w.addr, err)
		}
	}
	return nil
}

// realCS is the code segment a real-mode entry starts in: e.CS, or RIP's
// 64 KiB page.
func realCS(e Entry) uint16 {
	if e.CS != 0 {
		return e.CS
	}
	return uint16((e.RIP &^ 0xffff) >> 4)
}

// realMode sets real-mode segments: CS as given (base cs<<4), the data
// segments at 0.
func realMode(s *kvm.SRegs, cs uint16) {
	seg := func(sel uint16, typ uint8) kvm.Segment {
		return kvm.Segment{Base: uint64(sel) << 4, Limit: 0xffff, Selector: sel, Type: typ, Present: 1, S: 1}
	}
	s.CS = seg(cs, typeCodeER)
	s.DS, s.ES, s.FS, s.GS, s.SS = seg(0, typeDataRW), seg(0, typeDataRW), seg(0, typeDataRW), seg(0, typeDataRW), seg(0, typeDataRW)
	s.CR0 = CR0ET
	s.CR4, s.EFER = 0, 0
}
