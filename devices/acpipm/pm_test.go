package acpipm

import (
	"log/slog"
	"testing"
)

func newPM(t *testing.T) (*PM, *int) {
	t.Helper()
	offs := 0
	return New(Config{PowerOff: func() { offs++ }, Logger: slog.New(slog.DiscardHandler)}), &offs
}

func read16(p *PM, off uint64) uint16 {
	b := make([]byte, 2)
	p.Read(off, b)
	return uint16(b[0]) | uint16(b[1])<<8
}

func write16(p *PM, off uint64, v uint16) { p.Write(off, []byte{byte(v), byte(v >> 8)}) }

func TestSleepRequests(t *testing.T) {
	tests := []struct {
		name     string
		writes   []uint16 // to PM1_CNT, in order
		wantOffs int
	}{
		// Linux's acpi_hw_legacy_sleep writes SLP_TYP first, then SLP_EN.
		{"S5 as Linux enters it", []uint16{SlpTypS5 << 10, SlpTypS5<<10 | cntSlpEnable}, 1},
		{"S5 in one write", []uint16{SlpTypS5<<10 | cntSlpEnable}, 1},
		{"S5 type without SLP_EN", []uint16{SlpTypS5 << 10}, 0},
		{"S3 is not supported", []uint16{3<<10 | cntSlpEnable}, 0},
		{"SLP_EN with type 0", []uint16{cntSlpEnable}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, offs := newPM(t)
			for _, v := range tt.writes {
				write16(p, ControlOffset, v)
			}
			if *offs != tt.wantOffs {
				t.Errorf("PowerOff called %d times, want %d", *offs, tt.wantOffs)
			}
			if got := read16(p, ControlOffset); got&cntSlpEnable != 0 || got&cntSCIEnable == 0 {
				t.Errorf("PM1_CNT reads %#x: SLP_EN must read 0 and SCI_EN 1", got)
			}
		})
	}
}

func TestRegisters(t *testing.T) {
	p, offs := newPM(t)
	if got := read16(p, ControlOffset); got != cntSCIEnable {
		t.Errorf("PM1_CNT at reset = %#x, want SCI_EN only", got)
	}
	write16(p, offEnable, 0x0121)
	if got := read16(p, offEnable); got != 0x0121 {
		t.Errorf("PM1_EN = %#x after writing 0x121", got)
	}
	// SCI_EN cannot be cleared: the machine has no legacy mode.
	write16(p, ControlOffset, 0)
	if got := read16(p, ControlOffset); got != cntSCIEnable {
		t.Errorf("PM1_CNT = %#x after writing 0, want SCI_EN kept", got)
	}
	// Writing ones to PM1_STS clears, never sets.
	write16(p, offStatus, 0xffff)
	if got := read16(p, offStatus); got != 0 {
		t.Errorf("PM1_STS = %#x after a write of ones", got)
	}
	// One 4-byte access spanning PM1_STS and PM1_EN, and bytes past the block.
	p.Write(0, []byte{0, 0, 0x20, 0x00})
	if got := read16(p, offEnable); got != 0x20 {
		t.Errorf("PM1_EN = %#x after a dword write", got)
	}
	b := []byte{0, 0, 0, 0}
	p.Read(Len-2, b)
	if b[2] != 0xff || b[3] != 0xff {
		t.Errorf("bytes past the block read %#x, want all ones", b[2:])
	}
	// A stray write past the block does nothing.
	p.Write(Len, []byte{0xff, 0xff})
	if *offs != 0 {
		t.Errorf("PowerOff called by a write outside PM1_CNT")
	}
}
