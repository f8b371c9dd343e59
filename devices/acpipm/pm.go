// Package acpipm models the ACPI fixed-hardware power-management registers a
// PC guest uses to turn itself off: the PM1a event block (PM1_STS, PM1_EN)
// and the PM1a control block (PM1_CNT), ACPI 6.x §4.8.3. Writing the S5
// sleep type with SLP_EN to PM1_CNT — what Linux's `poweroff` does through
// the FADT and the DSDT's \_S5 object — calls PowerOff.
//
// The machine is always in ACPI mode (the FADT has no SMI command port), so
// SCI_EN reads as set. Other sleep states are not supported: a request for
// one is logged and ignored, and the guest carries on.
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

// PM1_CNT bits (ACPI 6.x Table 4.14).
const (
	cntSCIEnable = 1 << 0  // SCI_EN: the machine is in ACPI mode
	cntSlpTyp    = 7 << 10 // SLP_TYP: the sleep state to enter
	cntSlpEnable = 1 << 13 // SLP_EN: enter it (write-only)
)

// SlpTypS5 is the SLP_TYP value of the soft-off state S5: the value the DSDT's
// \_S5 package hands the guest. Any value would do; 5 reads as what it means.
const SlpTypS5 = 5

// Config connects the block to its machine.
type Config struct {
	// PowerOff is called (without the device's lock held) when the guest
	// enters S5.
	PowerOff func()
	Logger   *slog.Logger
}

// PM is the register block. The zero value is not usable; use New.
type PM struct {
	mu       sync.Mutex
	status   uint16
	enable   uint16
	control  uint16
	powerOff func()
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
	return &PM{control: cntSCIEnable, powerOff: off, log: log, anomaly: devices.NewAnomalies(log, "acpi-pm")}
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
// type acts at once (S5 powers off) and reads back as zero.
func (p *PM) Write(off uint64, data []byte) {
	p.mu.Lock()
	regs := p.regs()
	for i, b := range data {
		if o := off + uint64(i); o < Len {
			regs[o] = b
		}
	}
	le := binary.LittleEndian
	p.status &^= le.Uint16(regs[offStatus:])
	p.enable = le.Uint16(regs[offEnable:])
	cnt := le.Uint16(regs[ControlOffset:])
	p.control = cnt&^cntSlpEnable | cntSCIEnable
	sleep := cnt&cntSlpEnable != 0 && off+uint64(len(data)) > ControlOffset
	typ := (cnt & cntSlpTyp) >> 10
	off5 := sleep && typ == SlpTypS5
	if sleep && !off5 {
		p.anomaly.Report("unsupported ACPI sleep state requested; ignored", "slp_typ", typ)
	}
	p.mu.Unlock()
	if off5 {
		p.log.Info("guest entered ACPI S5 (soft off)")
		p.powerOff()
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
