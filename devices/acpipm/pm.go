// Package acpipm models the ACPI fixed-hardware power-management registers a
// PC guest uses to turn itself off and to sleep: the PM1a event block
// (PM1_STS, PM1_EN) and the PM1a control block (PM1_CNT), ACPI 6.x §4.8.3.
//
//   - Writing the S5 sleep type with SLP_EN to PM1_CNT — what Linux's
//     `poweroff` does through the FADT and the DSDT's \_S5 object — calls
//     PowerOff.
//   - Writing the S3 sleep type (suspend to RAM; the DSDT's \_S3) with
//     SLP_EN calls Suspend: the machine stops running guest code and keeps
//     its memory. A wake event then calls Resume, after which the platform
//     enters the OSPM's waking vector (package pc). The wake events are the
//     RTC alarm (RTCAlarm) while PM1_EN's RTC_EN is set, and the host's
//     Wake, as a power button would. On a wake PM1_STS gets WAK_STS, and
//     RTC_STS for the alarm; RTC_STS is set by every alarm, asleep or
//     not, as the chipset does. A request for S3 while an enabled wake
//     event is already pending in PM1_STS wakes at once, as on hardware.
//   - PM1_EN, in the always-powered well, keeps its value across a sleep.
//
// The machine is always in ACPI mode (the FADT has no SMI command port), so
// SCI_EN reads as set. No SCI is raised: status bits are seen by reading
// PM1_STS. Other sleep states (S1, S2, S4), and S3 without a Suspend
// callback, are not supported: a request for one is logged and ignored, and
// the guest carries on.
package acpipm

import (
	"encoding/binary"
	"log/slog"
	"sync"

	"ember/devices"
)

// Register block layout: the event block's two 16-bit registers followed by
// the control block, as one 6-port range.
const (
	// EventLen and ControlLen are the FADT's PM1_EVT_LEN and PM1_CNT_LEN.
	EventLen   = 4
	ControlLen = 2
	// Len is the size of the whole block; ControlOffset is where PM1_CNT
	// starts within it.
	Len           = EventLen + ControlLen
	ControlOffset = EventLen

	offStatus = 0 // PM1_STS
	offEnable = 2 // PM1_EN
)

// PM1_STS and PM1_EN bits (ACPI 6.x Tables 4.11 and 4.12).
const (
	// StsRTC is RTC_STS in PM1_STS, and RTC_EN at the same position in
	// PM1_EN: the RTC alarm fired; enabled, it wakes the machine.
	StsRTC = 1 << 10
	// StsWake is WAK_STS: set when the machine wakes from a sleeping state.
	StsWake = 1 << 15
)

// PM1_CNT bits (ACPI 6.x Table 4.14).
const (
	cntSCIEnable = 1 << 0  // SCI_EN: the machine is in ACPI mode
	cntSlpTyp    = 7 << 10 // SLP_TYP: the sleep state to enter
	cntSlpEnable = 1 << 13 // SLP_EN: enter it (write-only)
)

// SLP_TYP values: what the DSDT's \_S3 and \_S5 packages hand the guest.
// Any values would do; S3's is QEMU's (kvm-unit-tests' s3 test writes it
// without reading the DSDT), S5's reads as what it means.
const (
	SlpTypS3 = 1
	SlpTypS5 = 5
)

// Config connects the block to its machine.
type Config struct {
	// PowerOff is called (without the device's lock held) when the guest
	// enters S5.
	PowerOff func()
	// Suspend is called when the guest enters S3: every vCPU must stop
	// running guest code before its next instruction. Nil leaves S3 out.
	// Resume is called when a wake event ends S3: the platform resets the
	// machine but its RAM and enters the waking vector. Both are called
	// with the device's lock held (so a wake never overtakes the sleep it
	// ends): they must return promptly and not call back into the PM.
	Suspend, Resume func()
	Logger          *slog.Logger
}

// PM is the register block. The zero value is not usable; use New.
type PM struct {
	mu       sync.Mutex
	status   uint16
	enable   uint16
	control  uint16
	sleeping bool // in S3, between Suspend and Resume
	powerOff func()
	suspend  func()
	resume   func()
	log      *slog.Logger
	anomaly  *devices.Anomalies // guarded by mu
}

// New returns a PM block with every register at its reset value.
func New(c Config) *PM {
	log := c.Logger
	if log == nil {
		log = slog.Default()
	}
	off := c.PowerOff
	if off == nil {
		off = func() {}
	}
	return &PM{control: cntSCIEnable, powerOff: off, suspend: c.Suspend, resume: c.Resume,
		log: log, anomaly: devices.NewAnomalies(log, "acpi-pm")}
}

// Reset returns the registers to their power-on values, as a machine
// reset does (a wake from S3 does not: PM1_EN and the status it sets
// survive it); a sleep ends without a wake.
func (p *PM) Reset() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.status, p.enable, p.control, p.sleeping = 0, 0, cntSCIEnable, false
}

// Sleeping reports whether the machine is in S3.
func (p *PM) Sleeping() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.sleeping
}

// RTCAlarm is the RTC's alarm output (an alarm with its interrupt
// enabled): it sets RTC_STS and, in S3 with RTC_EN set, wakes the machine.
func (p *PM) RTCAlarm() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.status |= StsRTC
	if p.sleeping && p.enable&StsRTC != 0 {
		p.wakeLocked("rtc alarm")
	}
}

// Wake wakes the machine from S3 at the host's request, as a press of the
// power button would (QEMU's system_wakeup); it reports whether the machine
// was asleep.
func (p *PM) Wake() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.sleeping {
		return false
	}
	p.wakeLocked("host")
	return true
}

// wakeLocked ends S3: WAK_STS is set and the platform resumes. The caller
// holds mu and has checked that the machine sleeps.
func (p *PM) wakeLocked(cause string) {
	p.sleeping = false
	p.status |= StsWake
	p.log.Info("ACPI wake event", "cause", cause)
	p.resume()
}

// Read reads the registers at off (0 to Len-1); bytes past the block read as
// all ones, as an unclaimed port does.
func (p *PM) Read(off uint64, data []byte) {
	p.mu.Lock()
	regs := p.regs()
	p.mu.Unlock()
	for i := range data {
		if o := off + uint64(i); o < Len {
			data[i] = regs[o]
		} else {
			data[i] = 0xff
		}
	}
}

// Write writes the registers at off. PM1_STS bits are cleared by writing
// ones; PM1_EN is kept; PM1_CNT keeps SCI_EN set, and SLP_EN with a sleep
// type acts at once (S5 powers off, S3 suspends) and reads back as zero.
func (p *PM) Write(off uint64, data []byte) {
	p.mu.Lock()
	regs := p.regs()
	var clear [Len]byte // the ones written to PM1_STS, and only those
	for i, b := range data {
		if o := off + uint64(i); o < Len {
			regs[o], clear[o] = b, b
		}
	}
	le := binary.LittleEndian
	p.status &^= le.Uint16(clear[offStatus:])
	p.enable = le.Uint16(regs[offEnable:])
	cnt := le.Uint16(regs[ControlOffset:])
	p.control = cnt&^cntSlpEnable | cntSCIEnable
	sleep := cnt&cntSlpEnable != 0 && off+uint64(len(data)) > ControlOffset
	typ := (cnt & cntSlpTyp) >> 10
	off5 := sleep && typ == SlpTypS5
	switch {
	case sleep && typ == SlpTypS3 && p.suspend != nil && p.resume != nil:
		p.enterS3Locked()
	case sleep && !off5:
		p.anomaly.Report("unsupported ACPI sleep state requested; ignored", "slp_typ", typ)
	}
	p.mu.Unlock()
	if off5 {
		p.log.Info("guest entered ACPI S5 (soft off)")
		p.powerOff()
	}
}

// enterS3Locked suspends the machine, and wakes it at once if an enabled
// wake event is pending. The caller holds mu.
func (p *PM) enterS3Locked() {
	if p.sleeping {
		return // a second request from another vCPU before it stopped
	}
	p.sleeping = true
	p.log.Info("guest entered ACPI S3 (suspend to RAM)")
	p.suspend()
	if p.status&p.enable&StsRTC != 0 {
		p.wakeLocked("rtc alarm pending")
	}
}

// regs is the block's bytes as the guest reads them. Call with mu held.
func (p *PM) regs() [Len]byte {
	var b [Len]byte
	le := binary.LittleEndian
	le.PutUint16(b[offStatus:], p.status)
	le.PutUint16(b[offEnable:], p.enable)
	le.PutUint16(b[ControlOffset:], p.control)
	return b
}

var _ devices.Device = (*PM)(nil)
