package rtc_test

import (
	"bytes"
	"context"
	"sync"
	"testing"
	"time"

	"ember/devices/devicetest"
	"ember/devices/rtc"
)

// fakeClock is a host clock the test moves by hand.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// thursday is 2024-02-29 13:05:09.5 UTC, a Thursday afternoon in a leap
// year, half way between two updates.
var thursday = time.Date(2024, time.February, 29, 13, 5, 9, 500_000_000, time.UTC)

type guest struct {
	t     *testing.T
	r     *rtc.RTC
	clock *fakeClock
}

func newGuest(t *testing.T, below, above uint64) *guest {
	t.Helper()
	c := &fakeClock{t: thursday}
	return &guest{t: t, clock: c, r: rtc.New(rtc.Config{Clock: c.Now, MemBelow4G: below, MemAbove4G: above})}
}

// cmos reads CMOS byte i the way a guest does: index to 0x70, data from 0x71.
func (g *guest) cmos(i byte) byte {
	g.r.Write(rtc.IndexOffset, []byte{i})
	var b [1]byte
	g.r.Read(rtc.DataOffset, b[:])
	return b[0]
}

func (g *guest) setCMOS(i, v byte) {
	g.r.Write(rtc.IndexOffset, []byte{i})
	g.r.Write(rtc.DataOffset, []byte{v})
}

func (g *guest) expect(what string, i, want byte) {
	g.t.Helper()
	if got := g.cmos(i); got != want {
		g.t.Errorf("%s: CMOS[%#02x] = %#02x, want %#02x", what, i, got, want)
	}
}

func TestTimeRegisters(t *testing.T) {
	tests := []struct {
		name string
		regB byte
		reg  byte
		want byte
	}{
		{"seconds in BCD", rtc.B24Hour, rtc.RegSeconds, 0x09},
		{"minutes in BCD", rtc.B24Hour, rtc.RegMinutes, 0x05},
		{"hours in 24-hour BCD", rtc.B24Hour, rtc.RegHours, 0x13},
		{"day of week: Thursday is 5", rtc.B24Hour, rtc.RegDayOfWeek, 0x05},
		{"day of month in BCD", rtc.B24Hour, rtc.RegDayOfMonth, 0x29},
		{"month in BCD", rtc.B24Hour, rtc.RegMonth, 0x02},
		{"year in BCD", rtc.B24Hour, rtc.RegYear, 0x24},
		{"century in BCD", rtc.B24Hour, rtc.RegCentury, 0x20},
		{"seconds in binary", rtc.B24Hour | rtc.BBinary, rtc.RegSeconds, 9},
		{"day of month in binary", rtc.B24Hour | rtc.BBinary, rtc.RegDayOfMonth, 29},
		{"year in binary", rtc.B24Hour | rtc.BBinary, rtc.RegYear, 24},
		{"century in binary", rtc.B24Hour | rtc.BBinary, rtc.RegCentury, 20},
		{"hours in 24-hour binary", rtc.B24Hour | rtc.BBinary, rtc.RegHours, 13},
		{"1 PM in 12-hour BCD has the PM bit", 0, rtc.RegHours, 0x81},
		{"1 PM in 12-hour binary has the PM bit", rtc.BBinary, rtc.RegHours, 0x81},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := newGuest(t, 0, 0)
			g.setCMOS(rtc.RegB, tt.regB)
			g.expect(tt.name, tt.reg, tt.want)
		})
	}
}

func TestTwelveHourClock(t *testing.T) {
	tests := []struct {
		name   string
		hour   int
		bcd    byte
		binary byte
	}{
		{"midnight is 12 AM", 0, 0x12, 12},
		{"1 AM", 1, 0x01, 1},
		{"11 AM", 11, 0x11, 11},
		{"noon is 12 PM", 12, 0x92, 0x80 | 12},
		{"1 PM", 13, 0x81, 0x80 | 1},
		{"11 PM", 23, 0x91, 0x80 | 11},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := newGuest(t, 0, 0)
			g.clock.Set(time.Date(2024, 1, 1, tt.hour, 0, 0, 500_000_000, time.UTC))
			g.setCMOS(rtc.RegB, 0)
			g.expect("BCD", rtc.RegHours, tt.bcd)
			g.setCMOS(rtc.RegB, rtc.BBinary)
			g.expect("binary", rtc.RegHours, tt.binary)
			// Writing back what was read keeps the hour.
			g.setCMOS(rtc.RegHours, tt.binary)
			if got := g.r.Now().Hour(); got != tt.hour {
				t.Errorf("after writing %#02x back: hour %d, want %d", tt.binary, got, tt.hour)
			}
		})
	}
}

func TestMemorySizeFields(t *testing.T) {
	type want struct {
		base, ext, mid uint16
		high           uint32
	}
	tests := []struct {
		name         string
		below, above uint64
		want         want
	}{
		{"512 KiB: base memory only", 512 << 10, 0, want{512, 0, 0, 0}},
		{"16 MiB", 16 << 20, 0, want{640, 15 << 10, 0, 0}},
		{"64 MiB: 63 MiB of extended memory", 64 << 20, 0, want{640, 63 << 10, (48 << 20) >> 16, 0}},
		{"128 MiB: extended memory capped at 0xffff KiB", 128 << 20, 0, want{640, 0xffff, (112 << 20) >> 16, 0}},
		{"1 GiB", 1 << 30, 0, want{640, 0xffff, ((1 << 30) - (16 << 20)) >> 16, 0}},
		{"3 GiB below, 5 GiB above", 3 << 30, 5 << 30, want{640, 0xffff, ((3 << 30) - (16 << 20)) >> 16, (5 << 30) >> 16}},
		{"4 GiB below", 4 << 30, 0, want{640, 0xffff, ((4 << 30) - (16 << 20)) >> 16, 0}},
		{"1 TiB above 4 GiB: capped at what 3 bytes hold", 2 << 30, 1 << 40, want{640, 0xffff, ((2 << 30) - (16 << 20)) >> 16, 0xffffff}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := newGuest(t, tt.below, tt.above)
			word := func(lo, hi byte) uint16 { return uint16(g.cmos(lo)) | uint16(g.cmos(hi))<<8 }
			got := want{
				base: word(rtc.RegBaseMemLo, rtc.RegBaseMemHi),
				ext:  word(rtc.RegExtMemLo, rtc.RegExtMemHi),
				mid:  word(rtc.RegMem16MLo, rtc.RegMem16MHi),
				high: uint32(g.cmos(rtc.RegMem4GLo)) | uint32(g.cmos(rtc.RegMem4GMid))<<8 | uint32(g.cmos(rtc.RegMem4GHi))<<16,
			}
			if got != tt.want {
				t.Errorf("fields = %+v, want %+v", got, tt.want)
			}
			if ext2 := word(rtc.RegExtMem2Lo, rtc.RegExtMem2Hi); ext2 != got.ext {
				t.Errorf("0x30/0x31 = %d, 0x17/0x18 = %d; want equal", ext2, got.ext)
			}
			var sum uint16
			for i := byte(0x10); i < 0x2e; i++ {
				sum += uint16(g.cmos(i))
			}
			// 0x2e is the high byte of the checksum, 0x2f the low byte.
			if cs := word(rtc.RegChecksumLo, rtc.RegChecksumHi); cs != sum {
				t.Errorf("checksum bytes = %#04x, sum of 0x10-0x2d = %#04x", cs, sum)
			}
		})
	}
}

func TestIndexRegister(t *testing.T) {
	g := newGuest(t, 0, 0)
	g.setCMOS(0x40, 0x5a)
	g.r.Write(rtc.IndexOffset, []byte{0x80 | 0x40})
	if !g.r.NMIDisabled() {
		t.Errorf("index write with bit 7 set did not disable NMI")
	}
	var b [1]byte
	g.r.Read(rtc.DataOffset, b[:])
	if b[0] != 0x5a {
		t.Errorf("index 0xc0 read %#02x: NMI bit not masked off the index", b[0])
	}
	g.r.Write(rtc.IndexOffset, []byte{0x40})
	if g.r.NMIDisabled() {
		t.Errorf("index write with bit 7 clear left NMI disabled")
	}
	g.r.Read(rtc.IndexOffset, b[:])
	if b[0] != 0xff {
		t.Errorf("index port read %#02x, want 0xff (write-only)", b[0])
	}
}

func TestStatusRegisters(t *testing.T) {
	g := newGuest(t, 0, 0)
	g.expect("register A after reset", rtc.RegA, 0x26)
	g.expect("register B after reset: 24-hour BCD", rtc.RegB, rtc.B24Hour)
	g.expect("register D: valid RAM and time", rtc.RegD, rtc.DValidRAM)
	g.setCMOS(rtc.RegD, 0)
	g.expect("register D is read-only", rtc.RegD, rtc.DValidRAM)
	g.setCMOS(rtc.RegA, 0xa6)
	g.expect("UIP is read-only", rtc.RegA, 0x26)
}

func TestUpdateInProgress(t *testing.T) {
	tests := []struct {
		name string
		frac time.Duration // past the second
		uip  bool
	}{
		{"mid-second: no update soon", 500 * time.Millisecond, false},
		{"just over 244 µs before the update", time.Second - 245*time.Microsecond, false},
		{"within 244 µs of the update", time.Second - 244*time.Microsecond, true},
		{"right at the update", 0, true},
		{"during the 1984 µs update cycle", 1983 * time.Microsecond, true},
		{"after the update cycle", 1984 * time.Microsecond, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := newGuest(t, 0, 0)
			g.clock.Set(thursday.Truncate(time.Second).Add(tt.frac))
			if got := g.cmos(rtc.RegA)&rtc.AUpdateInProgress != 0; got != tt.uip {
				t.Errorf("UIP = %v, want %v", got, tt.uip)
			}
		})
	}
	t.Run("no UIP while SET stops the clock", func(t *testing.T) {
		g := newGuest(t, 0, 0)
		g.clock.Set(thursday.Truncate(time.Second))
		g.setCMOS(rtc.RegB, rtc.BSet|rtc.B24Hour)
		if g.cmos(rtc.RegA)&rtc.AUpdateInProgress != 0 {
			t.Errorf("UIP set with SET")
		}
	})
}

func TestRegisterCFlags(t *testing.T) {
	g := newGuest(t, 0, 0)
	g.expect("nothing happened yet", rtc.RegC, 0)
	g.clock.Advance(time.Second)
	// Flags are set whether or not their interrupt is enabled; IRQF
	// only when it is. The default rate is 1024 Hz, so a second also
	// completed periods.
	g.expect("an update ended and periods passed, interrupts off", rtc.RegC, rtc.CUF|rtc.CPF)
	g.expect("reading C cleared it", rtc.RegC, 0)
	g.setCMOS(rtc.RegB, rtc.B24Hour|rtc.BUIE)
	g.clock.Advance(time.Second)
	g.expect("update ended with UIE", rtc.RegC, rtc.CUF|rtc.CPF|rtc.CIRQF)
	g.setCMOS(rtc.RegB, rtc.B24Hour|rtc.BPIE)
	g.clock.Advance(time.Millisecond) // 1024 Hz: one period has passed
	g.expect("periodic flag with PIE", rtc.RegC, rtc.CPF|rtc.CIRQF)
}

func TestGuestSetsItsClock(t *testing.T) {
	t.Run("a write moves the guest clock, not the host's", func(t *testing.T) {
		g := newGuest(t, 0, 0)
		host := time.Date(2024, time.March, 14, 13, 5, 9, 500_000_000, time.UTC)
		g.clock.Set(host)
		g.setCMOS(rtc.RegYear, 0x99)
		g.setCMOS(rtc.RegCentury, 0x19)
		g.setCMOS(rtc.RegHours, 0x07)
		want := time.Date(1999, time.March, 14, 7, 5, 9, 500_000_000, time.UTC)
		if got := g.r.Now(); !got.Equal(want) {
			t.Errorf("guest time = %v, want %v", got, want)
		}
		if g.clock.Now() != host {
			t.Errorf("host clock moved")
		}
		g.clock.Advance(time.Hour)
		g.expect("the clock keeps running from the set time", rtc.RegHours, 0x08)
		g.expect("year", rtc.RegYear, 0x99)
		g.expect("century", rtc.RegCentury, 0x19)
	})
	t.Run("SET holds the clock while fields are written", func(t *testing.T) {
		g := newGuest(t, 0, 0)
		g.setCMOS(rtc.RegB, rtc.BSet|rtc.B24Hour|rtc.BBinary)
		// Go from 29 February to 31 March: the day is written first,
		// which is impossible in February, then the month.
		for _, w := range [][2]byte{{rtc.RegSeconds, 0}, {rtc.RegMinutes, 30}, {rtc.RegHours, 8},
			{rtc.RegDayOfMonth, 31}, {rtc.RegMonth, 3}, {rtc.RegYear, 25}} {
			g.setCMOS(w[0], w[1])
		}
		g.clock.Advance(10 * time.Second)
		g.expect("held seconds while SET", rtc.RegSeconds, 0)
		g.setCMOS(rtc.RegB, rtc.B24Hour|rtc.BBinary)
		g.clock.Advance(3 * time.Second)
		want := time.Date(2025, time.March, 31, 8, 30, 3, 0, time.UTC)
		if got := g.r.Now(); !got.Equal(want) {
			t.Errorf("guest time %v, want %v", got, want)
		}
		g.expect("day of week of 2025-03-31, a Monday", rtc.RegDayOfWeek, 2)
	})
	t.Run("SET clears UIE", func(t *testing.T) {
		g := newGuest(t, 0, 0)
		g.setCMOS(rtc.RegB, rtc.BSet|rtc.BUIE|rtc.B24Hour)
		g.expect("register B", rtc.RegB, rtc.BSet|rtc.B24Hour)
	})
	t.Run("12-hour PM write", func(t *testing.T) {
		g := newGuest(t, 0, 0)
		g.setCMOS(rtc.RegB, 0)
		g.setCMOS(rtc.RegHours, 0x80|0x07)
		if got := g.r.Now().Hour(); got != 19 {
			t.Errorf("hour = %d, want 19", got)
		}
	})
	invalid := []struct {
		name string
		regB byte
		reg  byte
		v    byte
	}{
		{"BCD seconds 0x5a is not a number", rtc.B24Hour, rtc.RegSeconds, 0x5a},
		{"binary seconds 60", rtc.B24Hour | rtc.BBinary, rtc.RegSeconds, 60},
		{"BCD month 0x13", rtc.B24Hour, rtc.RegMonth, 0x13},
		{"BCD day 0x00", rtc.B24Hour, rtc.RegDayOfMonth, 0x00},
		{"12-hour hour 0", 0, rtc.RegHours, 0x00},
		{"24-hour hour 24", rtc.B24Hour | rtc.BBinary, rtc.RegHours, 24},
	}
	for _, tt := range invalid {
		t.Run("ignored: "+tt.name, func(t *testing.T) {
			g := newGuest(t, 0, 0)
			g.setCMOS(rtc.RegB, tt.regB)
			g.setCMOS(tt.reg, tt.v)
			if got := g.r.Now(); !got.Equal(thursday) {
				t.Errorf("guest time changed to %v", got)
			}
			if len(g.r.Anomalies()) != 1 {
				t.Errorf("anomalies = %v, want the bad write counted", g.r.Anomalies())
			}
		})
	}
}

func TestCMOSRAM(t *testing.T) {
	g := newGuest(t, 0, 0)
	for i := byte(0x0e); i < rtc.CMOSSize; i++ {
		if i == rtc.RegCentury {
			continue
		}
		g.setCMOS(i, i^0xa5)
	}
	for i := byte(0x0e); i < rtc.CMOSSize; i++ {
		if i == rtc.RegCentury {
			continue
		}
		g.expect("RAM byte", i, i^0xa5)
	}
	g.setCMOS(rtc.RegSecondsAlarm, 0x30)
	g.expect("alarm registers are stored", rtc.RegSecondsAlarm, 0x30)
}

func TestUnsupportedAccesses(t *testing.T) {
	tests := []struct {
		name string
		off  uint64
		size int
	}{
		{"2-byte read of the data port", rtc.DataOffset, 2},
		{"4-byte access to the index port", rtc.IndexOffset, 4},
		{"offset past the range", 2, 1},
		{"empty access", 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := newGuest(t, 0, 0)
			data := make([]byte, tt.size)
			g.r.Read(tt.off, data)
			if !bytes.Equal(data, bytes.Repeat([]byte{0xff}, tt.size)) {
				t.Errorf("read = % x, want all-ones", data)
			}
			g.r.Write(tt.off, bytes.Repeat([]byte{0x09}, tt.size))
			g.expect("seconds unchanged", rtc.RegSeconds, 0x09)
			var total uint64
			for _, n := range g.r.Anomalies() {
				total += n
			}
			if total != 2 {
				t.Errorf("anomalies = %v, want 2 counted", g.r.Anomalies())
			}
		})
	}
}

func TestAlarmFlag(t *testing.T) {
	tests := []struct {
		name           string
		sec, min, hour byte // alarm registers, BCD 24-hour
		advance        time.Duration
		want           bool
	}{
		{"alarm at 13:05:10 passes a second later", 0x10, 0x05, 0x13, time.Second, true},
		{"alarm at 13:05:30 not reached after a second", 0x30, 0x05, 0x13, time.Second, false},
		{"alarm at 13:05:30 reached after 21 s", 0x30, 0x05, 0x13, 21 * time.Second, true},
		{"any hour, any minute, second 00: once a minute", 0x00, 0xff, 0xc0, time.Minute, true},
		{"all don't-care: every second", 0xc0, 0xc0, 0xc0, time.Second, true},
		{"tomorrow's alarm at 09:00:00", 0x00, 0x00, 0x09, 20 * time.Hour, true},
		{"out-of-range hour never matches", 0x00, 0x00, 0x25, 48 * time.Hour, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := newGuest(t, 0, 0)
			g.setCMOS(rtc.RegSecondsAlarm, tt.sec)
			g.setCMOS(rtc.RegMinutesAlarm, tt.min)
			g.setCMOS(rtc.RegHoursAlarm, tt.hour)
			g.setCMOS(rtc.RegB, rtc.B24Hour|rtc.BAIE)
			g.cmos(rtc.RegC)
			g.clock.Advance(tt.advance)
			c := g.cmos(rtc.RegC)
			if got := c&rtc.CAF != 0; got != tt.want {
				t.Errorf("AF = %v, want %v (C = %#02x)", got, tt.want, c)
			}
			if got := c&rtc.CIRQF != 0; got != tt.want {
				t.Errorf("IRQF = %v with AIE, want %v", got, tt.want)
			}
		})
	}
}

func TestIRQ8(t *testing.T) {
	tests := []struct {
		name string
		regA byte
		regB byte
		want byte // register C when the line rises
	}{
		{"periodic interrupt at 8192 Hz", 0x23, rtc.B24Hour | rtc.BPIE, rtc.CPF | rtc.CIRQF},
		{"update-ended interrupt", 0x20, rtc.B24Hour | rtc.BUIE, rtc.CUF | rtc.CIRQF},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			irq := &devicetest.IRQ{}
			r := rtc.New(rtc.Config{IRQ: irq})
			defer r.Close()
			g := &guest{t: t, r: r}
			g.setCMOS(rtc.RegA, tt.regA)
			g.setCMOS(rtc.RegB, tt.regB)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			for i := range 2 {
				if err := irq.Wait(ctx, true); err != nil {
					t.Fatalf("interrupt %d never came: %v", i, err)
				}
				if c := g.cmos(rtc.RegC); c&tt.want != tt.want {
					t.Errorf("register C = %#02x, want %#02x set", c, tt.want)
				}
				if irq.High() {
					t.Errorf("line still high after reading C")
				}
			}
			g.setCMOS(rtc.RegB, rtc.B24Hour)
			g.cmos(rtc.RegC)
			if irq.High() {
				t.Errorf("line high with interrupts disabled")
			}
		})
	}
	t.Run("flags without enables leave the line low", func(t *testing.T) {
		irq := &devicetest.IRQ{}
		c := &fakeClock{t: thursday}
		g := &guest{t: t, clock: c, r: rtc.New(rtc.Config{IRQ: irq, Clock: c.Now})}
		defer g.r.Close()
		c.Advance(2 * time.Second)
		g.expect("UF and PF raised", rtc.RegC, rtc.CUF|rtc.CPF)
		if len(irq.History()) != 0 {
			t.Errorf("line moved: %v", irq.History())
		}
	})
	t.Run("enabling an interrupt whose flag is raised raises the line", func(t *testing.T) {
		irq := &devicetest.IRQ{}
		c := &fakeClock{t: thursday}
		g := &guest{t: t, clock: c, r: rtc.New(rtc.Config{IRQ: irq, Clock: c.Now})}
		defer g.r.Close()
		c.Advance(time.Second)
		g.setCMOS(rtc.RegB, rtc.B24Hour|rtc.BUIE)
		if !irq.High() {
			t.Errorf("line low with UF raised and UIE set")
		}
		g.cmos(rtc.RegC)
		if irq.High() {
			t.Errorf("line high after reading C")
		}
	})
}

// TestAlarmOutput checks the alarm output a chipset takes its RTC wake
// event from (Config.Alarm): it fires when the alarm time passes with AIE
// set, each time it passes, and not otherwise.
func TestAlarmOutput(t *testing.T) {
	tests := []struct {
		name           string
		sec, min, hour byte // alarm registers, BCD 24-hour
		regB           byte
		reset          bool            // a machine reset after programming
		advances       []time.Duration // each followed by a guest access
		want           int
	}{
		{"every second, AIE set", 0xc0, 0xc0, 0xc0, rtc.B24Hour | rtc.BAIE, false, []time.Duration{time.Second}, 1},
		{"AF without AIE is no wake event", 0xc0, 0xc0, 0xc0, rtc.B24Hour, false, []time.Duration{time.Second}, 0},
		{"alarm time not reached", 0x30, 0x05, 0x13, rtc.B24Hour | rtc.BAIE, false, []time.Duration{time.Second}, 0},
		{"alarm at 13:05:30 after 21 s", 0x30, 0x05, 0x13, rtc.B24Hour | rtc.BAIE, false, []time.Duration{21 * time.Second}, 1},
		{"fires at each match while AF is unread", 0xc0, 0xc0, 0xc0, rtc.B24Hour | rtc.BAIE, false, []time.Duration{time.Second, time.Second}, 2},
		{"a reset clears AIE", 0xc0, 0xc0, 0xc0, rtc.B24Hour | rtc.BAIE, true, []time.Duration{time.Second}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := &fakeClock{t: thursday}
			fired := 0
			r := rtc.New(rtc.Config{Clock: c.Now, Alarm: func() { fired++ }})
			defer r.Close()
			g := &guest{t: t, clock: c, r: r}
			g.setCMOS(rtc.RegSecondsAlarm, tt.sec)
			g.setCMOS(rtc.RegMinutesAlarm, tt.min)
			g.setCMOS(rtc.RegHoursAlarm, tt.hour)
			g.setCMOS(rtc.RegB, tt.regB)
			if tt.reset {
				r.Reset()
			}
			for _, d := range tt.advances {
				c.Advance(d)
				g.cmos(rtc.RegA)
			}
			if fired != tt.want {
				t.Errorf("Alarm called %d times, want %d", fired, tt.want)
			}
		})
	}
}

// TestAlarmWakesWithNobodyReading checks that the timer raises the alarm
// output on its own, as a sleeping guest reads no register, also while IRQ 8
// is already high for another event, and that Alarm may call into the RTC.
func TestAlarmWakesWithNobodyReading(t *testing.T) {
	tests := []struct {
		name    string
		highFor bool // the update-ended interrupt raises IRQ 8 first, unacknowledged
	}{
		{"alarm alone", false},
		{"IRQ 8 already high for the update-ended flag", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			woke := make(chan time.Time, 8)
			irq := &devicetest.IRQ{}
			var r *rtc.RTC
			r = rtc.New(rtc.Config{IRQ: irq, Alarm: func() { woke <- r.Now() }})
			defer r.Close()
			g := &guest{t: t, r: r}
			regB := byte(rtc.B24Hour)
			if tt.highFor {
				regB |= rtc.BUIE
				g.setCMOS(rtc.RegB, regB)
				if err := irq.Wait(ctx, true); err != nil {
					t.Fatalf("the update-ended interrupt never came: %v", err)
				}
			}
			g.setCMOS(rtc.RegSecondsAlarm, 0xc0)
			g.setCMOS(rtc.RegMinutesAlarm, 0xc0)
			g.setCMOS(rtc.RegHoursAlarm, 0xc0)
			g.setCMOS(rtc.RegB, regB|rtc.BAIE)
			select {
			case <-woke:
			case <-ctx.Done():
				t.Fatal("no alarm output within 5 s of an every-second alarm")
			}
		})
	}
}
