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
		{"S3 without a Suspend callback is ignored", []uint16{SlpTypS3<<10 | cntSlpEnable}, 0},
		{"S4 is not supported", []uint16{4<<10 | cntSlpEnable}, 0},
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

// sleepPM is a PM whose Suspend and Resume count their calls.
type sleepPM struct {
	*PM
	suspends, resumes int
}

func newSleepPM() *sleepPM {
	s := &sleepPM{}
	s.PM = New(Config{
		Suspend: func() { s.suspends++ },
		Resume:  func() { s.resumes++ },
		Logger:  slog.New(slog.DiscardHandler),
	})
	return s
}

// TestS3 drives the PM through sleeps and wake events as a guest, the RTC
// and the host would, and checks what the platform is told and what the
// guest reads back.
func TestS3(t *testing.T) {
	sleep := func(p *sleepPM) { write16(p.PM, ControlOffset, SlpTypS3<<10|cntSlpEnable) }
	enableRTC := func(p *sleepPM) { write16(p.PM, offEnable, StsRTC) }
	alarm := func(p *sleepPM) { p.RTCAlarm() }
	hostWake := func(p *sleepPM) { p.Wake() }
	tests := []struct {
		name              string
		ops               []func(*sleepPM)
		suspends, resumes int
		sleeping          bool
		status, enable    uint16
	}{
		{"S3 suspends", []func(*sleepPM){sleep}, 1, 0, true, 0, 0},
		{"RTC alarm with RTC_EN wakes", []func(*sleepPM){enableRTC, sleep, alarm}, 1, 1, false, StsWake | StsRTC, StsRTC},
		{"RTC alarm without RTC_EN only sets RTC_STS", []func(*sleepPM){sleep, alarm}, 1, 0, true, StsRTC, 0},
		{"host wakes", []func(*sleepPM){sleep, hostWake}, 1, 1, false, StsWake, 0},
		{"host wake of an awake machine does nothing", []func(*sleepPM){hostWake}, 0, 0, false, 0, 0},
		{"an enabled wake event pending at the request wakes at once", []func(*sleepPM){enableRTC, alarm, sleep}, 1, 1, false, StsWake | StsRTC, StsRTC},
		{"a cleared wake event does not", []func(*sleepPM){enableRTC, alarm, func(p *sleepPM) { write16(p.PM, offStatus, StsRTC) }, sleep}, 1, 0, true, 0, StsRTC},
		{"a second request while asleep is one sleep", []func(*sleepPM){sleep, sleep}, 1, 0, true, 0, 0},
		{"S3 type without SLP_EN", []func(*sleepPM){func(p *sleepPM) { write16(p.PM, ControlOffset, SlpTypS3<<10) }}, 0, 0, false, 0, 0},
		{"sleep after a wake", []func(*sleepPM){enableRTC, sleep, alarm, func(p *sleepPM) { write16(p.PM, offStatus, 0xffff) }, sleep}, 2, 1, true, 0, StsRTC},
		{"a machine reset ends a sleep and clears the registers", []func(*sleepPM){enableRTC, sleep, func(p *sleepPM) { p.Reset() }, alarm}, 1, 0, false, StsRTC, 0},
		{"writing PM1_EN or PM1_CNT leaves PM1_STS", []func(*sleepPM){alarm, enableRTC, func(p *sleepPM) { write16(p.PM, ControlOffset, 0) }}, 0, 0, false, StsRTC, StsRTC},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := newSleepPM()
			for _, op := range tt.ops {
				op(p)
			}
			if p.suspends != tt.suspends || p.resumes != tt.resumes || p.Sleeping() != tt.sleeping {
				t.Errorf("Suspend %d, Resume %d, sleeping %v; want %d, %d, %v",
					p.suspends, p.resumes, p.Sleeping(), tt.suspends, tt.resumes, tt.sleeping)
			}
			if sts, en := read16(p.PM, offStatus), read16(p.PM, offEnable); sts != tt.status || en != tt.enable {
				t.Errorf("PM1_STS %#x, PM1_EN %#x; want %#x, %#x", sts, en, tt.status, tt.enable)
			}
			if cnt := read16(p.PM, ControlOffset); cnt&cntSlpEnable != 0 {
				t.Errorf("PM1_CNT reads %#x: SLP_EN must read 0", cnt)
			}
		})
	}
}
