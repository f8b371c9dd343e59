package vtd

import (
	"log/slog"
	"sync"

	"ember/devices"
	"ember/layout"
)

// Where the unit is and how big its register page is.
const (
	// RegisterBase is the guest-physical address of the register page:
	// Q35's, where QEMU puts its intel-iommu and kvm-unit-tests looks.
	RegisterBase = layout.VTd
	// RegisterSize is the register page's size.
	RegisterSize = 0x1000
)

// Register offsets (VT-d specification, chapter 10).
const (
	regVER    = 0x00
	regCAP    = 0x08
	regECAP   = 0x10
	regGCMD   = 0x18
	regGSTS   = 0x1c
	regRTADDR = 0x20
	regCCMD   = 0x28
	regFSTS   = 0x34
	regFECTL  = 0x38
	regFEDATA = 0x3c
	regFEADDR = 0x40
	regFEUADR = 0x44
	regIQH    = 0x80
	regIQT    = 0x88
	regIQA    = 0x90
	regICS    = 0x9c
	regIECTL  = 0xa0
	regIEDATA = 0xa4
	regIEADDR = 0xa8
	regIEUADR = 0xac
	regIRTA   = 0xb8
	regIVA    = 0x200
	regIOTLB  = 0x208
	regFRCD   = 0x220 // the one fault recording register, 16 bytes
)

// Global command and status bits (GCMD and GSTS share positions).
const (
	gcmdCFI   = 1 << 23 // compatibility format interrupts (CFIS)
	gcmdSIRTP = 1 << 24 // set interrupt remap table pointer (IRTPS)
	gcmdIRE   = 1 << 25 // interrupt remapping enable (IRES)
	gcmdQIE   = 1 << 26 // queued invalidation enable (QIES)
	gcmdTE    = 1 << 31 // translation enable (TES)
	gstsRTPS  = 1 << 30 // root table pointer status
)

// Fault status, fault and invalidation event control bits.
const (
	fstsPFO  = 1 << 0 // primary fault overflow
	fstsPPF  = 1 << 1 // primary pending fault
	fstsIQE  = 1 << 4 // invalidation queue error
	fstsW1C  = fstsPFO | fstsIQE | 1<<5 | 1<<6
	ctlIM    = 1 << 31 // interrupt mask
	ctlIP    = 1 << 30 // interrupt pending
	icsIWC   = 1 << 0  // invalidation wait descriptor complete
	frcdF    = 1 << 63 // fault recording: fault (high quad)
	ccmdICC  = 1 << 63 // context command: invalidate
	iotlbIVT = 1 << 63 // IOTLB: invalidate
)

// Capabilities (see the package documentation).
const (
	capND     = 2              // 8-bit domain IDs
	capSAGAW  = 0x6 << 8       // 39-bit (3-level) and 48-bit (4-level)
	capMGAW   = (48 - 1) << 16 // maximum guest address width 48
	capZLR    = 1 << 22
	capFRO    = (regFRCD / 16) << 24
	capSLLPS  = 0x3 << 34 // 2 MiB and 1 GiB pages
	capPSI    = 1 << 39
	capMAMV   = 18 << 48
	capValue  = capND | capSAGAW | capMGAW | capZLR | capFRO | capSLLPS | capPSI | capMAMV
	ecapQI    = 1 << 1
	ecapIR    = 1 << 3
	ecapPT    = 1 << 6
	ecapIRO   = (regIVA / 16) << 8
	ecapMHMV  = 0xf << 20
	ecapValue = ecapQI | ecapIR | ecapPT | ecapIRO | ecapMHMV
	version   = 0x10 // 1.0
)

// Memory is guest RAM as the unit reads its tables from it and writes
// invalidation wait status into it: the checked accessor (memory.Guest),
// which fails an access that is not wholly RAM.
type Memory interface {
	ReadAt(p []byte, off int64) (int, error)
	WriteAt(p []byte, off int64) (int, error)
}

// Message is an MSI: the address and data a device (or the unit) writes.
type Message struct {
	Addr uint64
	Data uint32
}

// Config configures a Unit.
type Config struct {
	// Mem is guest RAM.
	Mem Memory
	// Interrupt sends the unit's own interrupts (fault events and
	// invalidation completion events): compatibility-format messages,
	// which are never remapped. It is called with no lock of the unit
	// held. Nil drops them.
	Interrupt func(Message)
	// Logger receives the anomalies; nil means slog.Default().
	Logger *slog.Logger
}

// Unit is one remapping hardware unit. Its methods are safe for concurrent
// use: vCPUs access the registers while devices translate.
type Unit struct {
	cfg       Config
	anomalies *devices.Anomalies

	mu sync.Mutex
	state
}

// state is the unit's registers and what it latched, all under Unit.mu.
type state struct {
	gsts      uint32
	rtaddr    uint64 // as written
	rootTable uint64 // latched by SRTP
	ccmd      uint64
	iotlb     uint64
	iva       uint64
	fsts      uint32
	fectl     uint32
	fedata    uint32
	feaddr    uint64 // FEADDR and FEUADDR
	frcd      [2]uint64
	iqh, iqt  uint64
	iqa       uint64
	ics       uint32
	iectl     uint32
	iedata    uint32
	ieaddr    uint64 // IEADDR and IEUADDR
	irta      uint64 // as written
	irTable   uint64 // latched by SIRTP
	pending   []Message
}

// New returns a unit in its reset state: translation, queued invalidation
// and interrupt remapping off, fault and invalidation events masked.
func New(cfg Config) *Unit {
	u := &Unit{cfg: cfg, anomalies: devices.NewAnomalies(cfg.Logger, "vtd")}
	u.reset()
	return u
}

// Reset puts the unit back in its reset state, as a machine reset does.
func (u *Unit) Reset() {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.reset()
}

func (u *Unit) reset() {
	u.state = state{fectl: ctlIM, iectl: ctlIM}
}

// unlock releases the lock and sends the interrupts the locked section
// queued, so Config.Interrupt runs with no lock held.
func (u *Unit) unlock() {
	msgs := u.pending
	u.pending = nil
	u.mu.Unlock()
	if u.cfg.Interrupt == nil {
		return
	}
	for _, m := range msgs {
		u.cfg.Interrupt(m)
	}
}

// Read reads the register at off: 4-byte accesses at 4-byte aligned
// offsets, 8-byte ones at 8-byte aligned offsets (a 64-bit register, or two
// 32-bit ones). Other accesses read as all ones; offsets with no register
// read as zero.
func (u *Unit) Read(off uint64, data []byte) {
	u.mu.Lock()
	defer u.unlock()
	if !u.aligned(off, len(data), "read") {
		devices.FillOnes(data)
		return
	}
	q := u.readQuad(off &^ 7)
	devices.PutUint(data, q>>(8*(off&7)))
}

// Write writes the register at off, with the access sizes Read takes;
// writes elsewhere and to read-only registers are ignored.
func (u *Unit) Write(off uint64, data []byte) {
	u.mu.Lock()
	defer u.unlock()
	if !u.aligned(off, len(data), "write") {
		return
	}
	v := devices.Uint(data)
	if len(data) == 8 {
		u.write(off, v, 8)
		return
	}
	u.write(off, v, 4)
}

func (u *Unit) aligned(off uint64, size int, what string) bool {
	if (size == 4 || size == 8) && off%uint64(size) == 0 && off+uint64(size) <= RegisterSize {
		return true
	}
	u.anomalies.Report("unsupported register access", "op", what, "offset", off, "size", size)
	return false
}

// readQuad returns the 8 bytes of registers at the 8-aligned offset q.
func (u *Unit) readQuad(q uint64) uint64 {
	switch q {
	case regVER:
		return version
	case regCAP:
		return capValue
	case regECAP:
		return ecapValue
	case regGCMD:
		return uint64(u.gsts) << 32 // GCMD reads as zero
	case regRTADDR:
		return u.rtaddr
	case regCCMD:
		return u.ccmd
	case 0x30:
		return uint64(u.fsts|u.frcdIndexBits()) << 32
	case regFECTL:
		return uint64(u.fectl) | uint64(u.fedata)<<32
	case regFEADDR:
		return u.feaddr
	case regIQH:
		return u.iqh
	case regIQT:
		return u.iqt
	case regIQA:
		return u.iqa
	case 0x98:
		return uint64(u.ics) << 32
	case regIECTL:
		return uint64(u.iectl) | uint64(u.iedata)<<32
	case regIEADDR:
		return u.ieaddr
	case regIRTA:
		return u.irta
	case regIVA:
		return u.iva
	case regIOTLB:
		return u.iotlb
	case regFRCD:
		return u.frcd[0]
	case regFRCD + 8:
		return u.frcd[1]
	}
	return 0
}

// frcdIndexBits is FSTS's fault record index (always 0: one register) and
// PPF while that register holds a fault.
func (u *Unit) frcdIndexBits() uint32 {
	if u.frcd[1]&frcdF != 0 {
		return fstsPPF
	}
	return 0
}

// write applies a write of size bytes at off: an 8-byte write of a 64-bit
// register as one, of two 32-bit ones as two; a 4-byte write to half of a
// 64-bit register merges with the other half.
func (u *Unit) write(off, v uint64, size int) {
	q := off &^ 7
	switch {
	case size == 8 && quadRegister(q):
		u.writeQuad(q, v, true)
	case size == 8:
		u.writeLong(q, uint32(v))
		u.writeLong(q+4, uint32(v>>32))
	case quadRegister(q) && off == q:
		u.writeQuad(q, u.readQuad(q)&^0xffffffff|v, false)
	case quadRegister(q):
		u.writeQuad(q, u.readQuad(q)&0xffffffff|v<<32, true)
	default:
		u.writeLong(off, uint32(v))
	}
}

// quadRegister reports whether q is a 64-bit register's offset.
func quadRegister(q uint64) bool {
	switch q {
	case regVER, regCAP, regECAP, regRTADDR, regCCMD, regIQH, regIQT, regIQA, regIRTA, regIVA, regIOTLB, regFRCD, regFRCD + 8, regFEADDR, regIEADDR:
		return true
	}
	return false
}

// writeQuad writes the 64-bit register at q; high says the write covered
// its high half, where CCMD's, the IOTLB's and the fault record's command
// bits are.
func (u *Unit) writeQuad(q, v uint64, high bool) {
	switch q {
	case regRTADDR:
		u.rtaddr = v &^ 0x3ff // TTM (bits 11:10) other than legacy is ignored below
	case regCCMD:
		u.ccmd = v
		if high && v&ccmdICC != 0 {
			// Done at once; CAIG (60:59) reports CIRG (62:61).
			u.ccmd = v&^ccmdICC&^(3<<59) | (v>>61&3)<<59
		}
	case regIVA:
		u.iva = v
	case regIOTLB:
		u.iotlb = v
		if high && v&iotlbIVT != 0 {
			// Done at once; IAIG (58:57) reports IIRG (61:60).
			u.iotlb = v&^iotlbIVT&^(3<<57) | (v>>60&3)<<57
		}
	case regIQT:
		u.iqt = v & 0x7fff0
		if u.gsts&gcmdQIE != 0 {
			u.runQueue()
		}
	case regIQA:
		u.iqa = v &^ 0xff8 // base and queue size; DW (256-bit descriptors) is not offered
	case regIRTA:
		u.irta = v &^ 0xff0 // base, size; EIME is not offered
	case regFEADDR:
		u.feaddr = v &^ 3
	case regIEADDR:
		u.ieaddr = v &^ 3
	case regFRCD + 8:
		if high && v&frcdF != 0 {
			u.frcd = [2]uint64{} // F is write-1-to-clear: the record is free again
		}
	default:
		u.anomalies.Report("write to a read-only register", "offset", q)
	}
}

// writeLong writes the 32-bit register at off.
func (u *Unit) writeLong(off uint64, v uint32) {
	switch off {
	case regGCMD:
		u.command(v)
	case regFSTS:
		u.fsts &^= v & fstsW1C
	case regFECTL:
		u.fectl = v&ctlIM | u.fectl&ctlIP
		if u.fectl&ctlIM == 0 && u.fectlPending() {
			u.send(u.feaddr, u.fedata)
		}
	case regFEDATA:
		u.fedata = v
	case regICS:
		if v&icsIWC != 0 {
			u.ics = 0
			u.iectl &^= ctlIP
		}
	case regIECTL:
		u.iectl = v&ctlIM | u.iectl&ctlIP
		if v&ctlIM == 0 && u.iectl&ctlIP != 0 {
			u.iectl &^= ctlIP
			u.send(u.ieaddr, u.iedata)
		}
	case regIEDATA:
		u.iedata = v
	default:
		u.anomalies.Report("write to a read-only register", "offset", off)
	}
}

// fectlPending reports and clears a masked fault event's pending bit.
func (u *Unit) fectlPending() bool {
	p := u.fectl&ctlIP != 0
	u.fectl &^= ctlIP
	return p
}

// command applies a write of GCMD: each bit that differs from GSTS turns
// its function on or off; SRTP and SIRTP latch their table pointers.
func (u *Unit) command(v uint32) {
	changed := v ^ u.gsts
	for _, bit := range []uint32{gcmdTE, gcmdQIE, gcmdIRE, gcmdCFI} {
		if changed&bit == 0 {
			continue
		}
		u.gsts ^= bit
		if bit == gcmdQIE && v&bit != 0 {
			u.iqh = 0 // the queue starts at its first descriptor
		}
	}
	if v&gstsRTPS != 0 { // SRTP
		u.rootTable = u.rtaddr
		u.gsts |= gstsRTPS
	}
	if v&gcmdSIRTP != 0 {
		u.irTable = u.irta
		u.gsts |= gcmdSIRTP
	}
}

// send queues a compatibility-format message of the unit's own.
func (u *Unit) send(addr uint64, data uint32) {
	u.pending = append(u.pending, Message{Addr: addr, Data: data})
}

// faultEvent raises a fault event: sent now, or pending while masked.
func (u *Unit) faultEvent() {
	if u.fectl&ctlIM != 0 {
		u.fectl |= ctlIP
		return
	}
	u.send(u.feaddr, u.fedata)
}
