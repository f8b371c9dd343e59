// Package rtc models the PC's CMOS real-time clock, a Motorola MC146818
// (as integrated in every PC chipset), at ports 0x70 (index) and 0x71
// (data), with no knowledge of KVM or of how port accesses reach it.
//
// What the guest sees:
//
//   - The index register at 0x70: bits 0-6 select one of 128 CMOS bytes;
//     bit 7 is the chipset's NMI-disable bit, which is recorded (NMIDisabled)
//     and masked off the index. The index port is write-only and reads as
//     0xff.
//   - The time and date registers 0x00 (seconds), 0x02 (minutes), 0x04
//     (hours), 0x06 (day of week, 1 = Sunday), 0x07 (day of month), 0x08
//     (month), 0x09 (year in the century) and 0x32 (century), computed on
//     every read from a clock the owner supplies (time.Now in UTC by
//     default) plus an offset the guest sets by writing them, so a guest
//     sets its own clock without touching the host's. Register B chooses
//     BCD or binary (DM, bit 2) and 24- or 12-hour (bit 1; in 12-hour mode
//     bit 7 of the hours is PM), and values are converted on every access.
//   - Register A: bit 7 is the update-in-progress flag, set from 244 µs
//     before each second boundary until the 1984 µs update cycle is over,
//     so a guest that waits for UIP=0 and then reads the time (or that reads
//     the seconds twice around the time, as Linux does) gets a consistent
//     time. The divider and rate bits are stored.
//   - Register B: SET (bit 7) stops the clock for the guest to write the
//     time registers one by one: reads then return what was written and
//     clearing SET starts the clock from there. Setting SET clears UIE, as
//     the datasheet says. Without SET every time-register write takes effect
//     at once (a write that makes an impossible date, such as day 31 while
//     the month is February, is normalized by the calendar, so set SET
//     while writing several fields, as Linux and BIOSes do).
//   - Register C: the periodic (PF), alarm (AF) and update-ended (UF) flags
//     are raised as the clock passes those events (brought up to date on
//     every access, and by a timer when IRQ 8 is connected), with IRQF set
//     while a raised flag's interrupt is enabled; reading C clears them. The
//     alarm registers 0x01/0x03/0x05 are compared in the mode register B
//     selects, 0xc0-0xff meaning "any". The divider-reset settings of
//     register A do not stop the clock.
//   - Register D: VRT (bit 7) is always set: the battery is good.
//   - The rest is battery-backed RAM, with the memory-size fields a BIOS or
//     OS reads filled in by New from the RAM sizes below and above 4 GiB,
//     as SeaBIOS and QEMU define them: 0x15/0x16 base memory in KiB (640),
//     0x17/0x18 and 0x30/0x31 KiB of extended memory above 1 MiB (capped at
//     0xffff), 0x34/0x35 memory between 16 MiB and 4 GiB in 64 KiB units,
//     and 0x5b-0x5d memory above 4 GiB in 64 KiB units. The standard
//     checksum of 0x10-0x2d is stored at 0x2e/0x2f.
//
// Accesses: both ports are one byte wide, at offsets 0 (0x70) and 1 (0x71).
// Reads of other sizes or offsets return all-ones and such writes are
// ignored; both are counted and logged, as are writes of out-of-range time
// values and writes to the read-only registers C and D.
//
// Interrupt: with Config.IRQ set, IRQ 8 is high while register C's IRQF is
// (an enabled periodic, alarm or update-ended event has happened) and drops
// when the guest reads C; a timer is armed only while such an event is
// enabled and not yet signalled.
//
// Alarm output: with Config.Alarm set, each time the alarm fires while AIE
// is set, Alarm is called — the chipset's RTC wake event (ACPI RTC_STS), which
// wakes a sleeping machine. The timer keeps watching for the alarm while
// IRQ 8 is already high for another event, since a sleeping guest reads no
// register C.
//
// Concurrency: an RTC is safe for concurrent use. Its mutex is held while it
// calls the clock function and the IRQLine (also from its timer's
// goroutine); neither may call back into the RTC. Alarm is called without
// it, from the timer's goroutine or a guest access, and may.
package rtc

import (
	"log/slog"
	"sync"
	"time"

	"ember/devices"
)

// Where a PC has the RTC, and the size of its port range.
const (
	IndexPort   = 0x70
	DataPort    = 0x71
	IRQ         = 8 // ISA IRQ of the RTC
	IndexOffset = 0
	DataOffset  = 1
	PortLen     = 2
	CMOSSize    = 128
)

// CMOS register indices.
const (
	RegSeconds      = 0x00
	RegSecondsAlarm = 0x01
	RegMinutes      = 0x02
	RegMinutesAlarm = 0x03
	RegHours        = 0x04
	RegHoursAlarm   = 0x05
	RegDayOfWeek    = 0x06
	RegDayOfMonth   = 0x07
	RegMonth        = 0x08
	RegYear         = 0x09
	RegA            = 0x0a
	RegB            = 0x0b
	RegC            = 0x0c
	RegD            = 0x0d
	RegBaseMemLo    = 0x15 // base memory in KiB, low byte
	RegBaseMemHi    = 0x16
	RegExtMemLo     = 0x17 // KiB above 1 MiB, low byte (capped at 0xffff)
	RegExtMemHi     = 0x18
	RegChecksumHi   = 0x2e // sum of 0x10-0x2d, high byte
	RegChecksumLo   = 0x2f
	RegExtMem2Lo    = 0x30 // copy of 0x17/0x18
	RegExtMem2Hi    = 0x31
	RegCentury      = 0x32
	RegMem16MLo     = 0x34 // 64 KiB units between 16 MiB and 4 GiB, low byte
	RegMem16MHi     = 0x35
	RegMem4GLo      = 0x5b // 64 KiB units above 4 GiB, bits 0-7
	RegMem4GMid     = 0x5c // bits 8-15
	RegMem4GHi      = 0x5d // bits 16-23
)

// Register A, B, C and D bits.
const (
	AUpdateInProgress = 0x80
	ADivider          = 0x70 // DV2-0; 010 is the normal 32.768 kHz time base
	ARate             = 0x0f // RS3-0, periodic interrupt rate

	BSet      = 0x80 // stop updates while the guest sets the time
	BPIE      = 0x40 // periodic interrupt enable
	BAIE      = 0x20 // alarm interrupt enable
	BUIE      = 0x10 // update-ended interrupt enable
	BSQWE     = 0x08 // square-wave enable
	BBinary   = 0x04 // DM: 1 = binary, 0 = BCD
	B24Hour   = 0x02 // 1 = 24-hour, 0 = 12-hour with bit 7 of hours = PM
	BDaylight = 0x01 // DSE, stored only
	hourPM    = 0x80

	CIRQF = 0x80
	CPF   = 0x40
	CAF   = 0x20
	CUF   = 0x10

	DValidRAM = 0x80 // VRT: battery good, RAM and time valid
)

// Reset values: A with the 32.768 kHz divider and 1024 Hz rate, B with
// 24-hour BCD as a BIOS leaves it.
const (
	resetA = 0x26
	resetB = B24Hour
)

// The update cycle, from the datasheet for a 32.768 kHz time base: UIP
// rises 244 µs before the update, which takes 1984 µs.
const (
	uipLead   = 244 * time.Microsecond
	uipUpdate = 1984 * time.Microsecond
)

const (
	kib = 1 << 10
	mib = 1 << 20
	gib = 1 << 30
)

// Config is what the owner supplies to New.
type Config struct {
	// Clock returns the host's idea of the time the guest's clock runs
	// from. Nil means time.Now in UTC. Its Location is used to build
	// times from what the guest writes. With IRQ connected, timers wait in
	// real time for the clock to reach the next event, so the clock must
	// advance at the real rate.
	Clock func() time.Time
	// MemBelow4G is the guest RAM size below 4 GiB in bytes (including the
	// first MiB), MemAbove4G the RAM size above 4 GiB.
	MemBelow4G, MemAbove4G uint64
	// IRQ is the RTC's interrupt line, IRQ 8: high while register C's
	// IRQF is set, until the guest reads C. Nil leaves it unconnected: no
	// timers run and the guest sees the events only by polling C.
	IRQ devices.IRQLine
	// Alarm, if set, is called each time the alarm fires with AIE set in
	// register B (without the RTC's lock held): the wake event of ACPI's
	// RTC_STS. Like IRQ, it makes timers run.
	Alarm func()
	// Logger receives reports of invalid guest accesses. Nil means
	// slog.Default().
	Logger *slog.Logger
}

// fields is a broken-down guest time, as the registers hold it, in binary
// and 24-hour form.
type fields struct {
	sec, min, hour, day, month, year, century int
}

// RTC is one MC146818 with its CMOS RAM. Create it with New; it implements
// devices.Device.
type RTC struct {
	mu        sync.Mutex
	clock     func() time.Time
	anomalies *devices.Anomalies

	index       byte
	nmiDisabled bool
	cmos        [CMOSSize]byte // RAM, alarms, and the stored bits of A and B

	offset   time.Duration // guest time = clock() + offset
	held     fields        // the time as written while B.SET stops the clock
	flags    byte          // CPF|CAF|CUF raised and not yet read from C
	lastEval time.Time     // guest time the flags were brought up to date

	irq      devices.IRQLine // nil: not connected, flags only polled
	irqHigh  bool
	alarm    func() // Config.Alarm
	alarmOut bool   // the alarm fired with AIE set; unlock calls alarm
	timer    *time.Timer
	closed   bool // Close was called: no more timers
}

var _ devices.Device = (*RTC)(nil)

// New returns an RTC whose clock reads cfg.Clock's time and whose CMOS
// holds the memory-size fields for the given RAM sizes.
func New(cfg Config) *RTC {
	r := &RTC{
		clock:     cfg.Clock,
		anomalies: devices.NewAnomalies(cfg.Logger, "rtc"),
		irq:       cfg.IRQ,
		alarm:     cfg.Alarm,
	}
	if r.clock == nil {
		r.clock = func() time.Time { return time.Now().UTC() }
	}
	r.cmos[RegA] = resetA
	r.cmos[RegB] = resetB
	r.cmos[RegD] = DValidRAM
	r.setMemory(cfg.MemBelow4G, cfg.MemAbove4G)
	r.lastEval = r.clock()
	return r
}

// setMemory fills the memory-size fields and the checksum.
func (r *RTC) setMemory(below, above uint64) {
	below = min(below, 4*gib)
	base := min(below/kib, 640)
	var ext, mid uint64
	if below > mib {
		ext = min((below-mib)/kib, 0xffff)
	}
	if below > 16*mib {
		mid = min((below-16*mib)/(64*kib), 0xffff)
	}
	high := min(above/(64*kib), 0xffffff)
	r.cmos[RegBaseMemLo], r.cmos[RegBaseMemHi] = byte(base), byte(base>>8)
	r.cmos[RegExtMemLo], r.cmos[RegExtMemHi] = byte(ext), byte(ext>>8)
	r.cmos[RegExtMem2Lo], r.cmos[RegExtMem2Hi] = byte(ext), byte(ext>>8)
	r.cmos[RegMem16MLo], r.cmos[RegMem16MHi] = byte(mid), byte(mid>>8)
	r.cmos[RegMem4GLo], r.cmos[RegMem4GMid], r.cmos[RegMem4GHi] = byte(high), byte(high>>8), byte(high>>16)
	var sum uint16
	for _, b := range r.cmos[0x10:0x2e] {
		sum += uint16(b)
	}
	r.cmos[RegChecksumHi], r.cmos[RegChecksumLo] = byte(sum>>8), byte(sum)
}

// Reset does what the chip's RESET pin does on a VM restart: it clears the
// interrupt enables and flags. The time and CMOS RAM are battery-backed and
// survive it.
func (r *RTC) Reset() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.cmos[RegB] &^= BPIE | BAIE | BUIE | BSQWE
	r.flags = 0
	r.alarmOut = false
	r.lastEval = r.now()
	r.finishLocked()
}

// Close stops the timer that drives IRQ 8, for when the VM is torn down.
// The RTC still answers port accesses afterwards, with the line no longer
// driven by time passing.
func (r *RTC) Close() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.closed = true
	if r.timer != nil {
		r.timer.Stop()
	}
}

// NMIDisabled reports bit 7 of the last index write: whether the guest has
// masked NMIs through the chipset.
func (r *RTC) NMIDisabled() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.nmiDisabled
}

// Now returns the guest's clock: the host clock plus the offset the guest
// set, or, while the guest holds register B's SET bit, the time it wrote.
func (r *RTC) Now() time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.cmos[RegB]&BSet != 0 {
		t, _ := r.build(r.held)
		return t
	}
	return r.now()
}

// Anomalies returns how many times each kind of invalid guest access has
// happened, for diagnostics and tests.
func (r *RTC) Anomalies() map[string]uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.anomalies.Counts()
}

// Read performs a guest read of size len(data) at offset.
func (r *RTC) Read(offset uint64, data []byte) {
	r.mu.Lock()
	defer r.unlock()
	if len(data) != 1 || offset >= PortLen {
		devices.FillOnes(data)
		r.anomalies.Report("unsupported read", "offset", offset, "size", len(data))
		return
	}
	if offset == IndexOffset {
		data[0] = 0xff // write-only
		return
	}
	r.accumulate()
	data[0] = r.readReg(r.index)
	r.finishLocked()
}

// Write performs a guest write of size len(data) at offset.
func (r *RTC) Write(offset uint64, data []byte) {
	r.mu.Lock()
	defer r.unlock()
	if len(data) != 1 || offset >= PortLen {
		r.anomalies.Report("unsupported write", "offset", offset, "size", len(data))
		return
	}
	v := data[0]
	if offset == IndexOffset {
		r.nmiDisabled = v&0x80 != 0
		r.index = v & 0x7f
		return
	}
	r.accumulate()
	r.writeReg(r.index, v)
	r.finishLocked()
}

// unlock releases the mutex and then raises the alarm output if the alarm
// fired meanwhile, so Alarm may call back into the RTC.
func (r *RTC) unlock() {
	fire := r.alarmOut && r.alarm != nil
	r.alarmOut = false
	r.mu.Unlock()
	if fire {
		r.alarm()
	}
}

func (r *RTC) now() time.Time { return r.clock().Add(r.offset) }

func isTimeReg(i byte) bool {
	switch i {
	case RegSeconds, RegMinutes, RegHours, RegDayOfWeek, RegDayOfMonth, RegMonth, RegYear, RegCentury:
		return true
	}
	return false
}

func (r *RTC) readReg(i byte) byte {
	switch {
	case isTimeReg(i):
		var f fields
		var wday int
		if r.cmos[RegB]&BSet != 0 {
			f = r.held
			t, _ := r.build(f)
			wday = int(t.Weekday())
		} else {
			t := r.now()
			f, wday = split(t), int(t.Weekday())
		}
		return r.encode(i, f, wday)
	case i == RegA:
		v := r.cmos[RegA] &^ AUpdateInProgress
		if r.cmos[RegB]&BSet == 0 && inUpdate(r.now()) {
			v |= AUpdateInProgress
		}
		return v
	case i == RegC:
		return r.readC()
	case i == RegD:
		return DValidRAM
	}
	return r.cmos[i]
}

// inUpdate reports whether UIP reads 1 at guest time t.
func inUpdate(t time.Time) bool {
	frac := time.Duration(t.Nanosecond())
	return frac >= time.Second-uipLead || frac < uipUpdate
}

// accumulate raises the register C flags for what happened since they
// were last brought up to date: a periodic-interrupt period ended (PF), an
// update cycle ended (UF) or the alarm time passed (AF). While SET stops
// updates, only the divider runs, so only PF can be raised.
func (r *RTC) accumulate() {
	now := r.now()
	from := r.lastEval
	r.lastEval = now
	if p := int64(periodOf(r.cmos[RegA] & ARate)); p > 0 && floorDiv(now.UnixNano(), p) != floorDiv(from.UnixNano(), p) {
		r.flags |= CPF
	}
	if r.cmos[RegB]&BSet != 0 {
		return
	}
	if now.Unix() != from.Unix() {
		r.flags |= CUF
	}
	if r.alarmPassed(from, now) {
		r.flags |= CAF
		if r.cmos[RegB]&BAIE != 0 {
			r.alarmOut = true
		}
	}
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b < 0 {
		q--
	}
	return q
}

// irqf is register C's IRQF: a raised flag whose interrupt is enabled. The
// flags and their enables in register B share bit positions.
func (r *RTC) irqf() bool {
	return r.flags&r.cmos[RegB]&(CPF|CAF|CUF) != 0
}

// readC returns register C and clears it, as reading it does.
func (r *RTC) readC() byte {
	v := r.flags
	if r.irqf() {
		v |= CIRQF
	}
	r.flags = 0
	return v
}

// finishLocked drives IRQ 8 from IRQF and arms the timer for the next
// event that would raise it.
func (r *RTC) finishLocked() {
	if r.irq == nil && r.alarm == nil {
		return
	}
	if high := r.irqf(); high != r.irqHigh {
		r.irqHigh = high
		if r.irq != nil {
			r.irq.SetLevel(high)
		}
	}
	next, ok := r.nextEvent()
	if !ok || r.closed {
		if r.timer != nil {
			r.timer.Stop()
		}
		return
	}
	if r.timer == nil {
		r.timer = time.AfterFunc(next, r.tick)
	} else {
		r.timer.Reset(next)
	}
}

// tick runs on the timer's goroutine. Firing early or late is harmless:
// accumulate looks at the clock, and finishLocked re-arms for what is left.
func (r *RTC) tick() {
	r.mu.Lock()
	defer r.unlock()
	r.accumulate()
	r.finishLocked()
}

// nextEvent returns how long until the next event that would raise IRQF,
// if one is enabled and IRQF is not already set, or until the next alarm
// that would raise the alarm output.
func (r *RTC) nextEvent() (time.Duration, bool) {
	enabled := r.cmos[RegB] & (BPIE | BAIE | BUIE) &^ r.flags
	if r.irqHigh {
		enabled = 0
		if r.alarm != nil {
			enabled = r.cmos[RegB] & BAIE // AF set or not, the output fires again
		}
	}
	if enabled == 0 {
		return 0, false
	}
	now := r.now()
	var next time.Duration
	found := false
	pick := func(d time.Duration) {
		if !found || d < next {
			next, found = d, true
		}
	}
	if p := int64(periodOf(r.cmos[RegA] & ARate)); enabled&BPIE != 0 && p > 0 {
		pick(time.Duration(p - (now.UnixNano()%p+p)%p))
	}
	if r.cmos[RegB]&BSet == 0 {
		untilSecond := time.Second - time.Duration(now.Nanosecond())
		if enabled&BUIE != 0 {
			pick(untilSecond)
		}
		if enabled&BAIE != 0 {
			if k, ok := r.secondsToAlarm(now, 24*60*60); ok {
				pick(untilSecond + time.Duration(k-1)*time.Second)
			}
		}
	}
	return next, found
}

// alarmPassed reports whether the alarm registers matched the time at any
// update between from (exclusive) and to (inclusive). An alarm byte with
// its two top bits set (0xc0-0xff) matches any value; one that is out of
// range never matches. A day covers every pattern, so at most a day's
// seconds are checked.
func (r *RTC) alarmPassed(from, to time.Time) bool {
	n := to.Unix() - from.Unix()
	if n <= 0 {
		return false
	}
	_, ok := r.secondsToAlarm(from, n)
	return ok
}

// secondsToAlarm returns in how many whole updates (1 to limit, at most a
// day) after t the alarm registers next match, if they do.
func (r *RTC) secondsToAlarm(t time.Time, limit int64) (int64, bool) {
	match := func(reg byte, val byte) (int, bool) {
		if val&0xc0 == 0xc0 {
			return -1, true
		}
		return r.decode(reg, val)
	}
	as, okS := match(RegSeconds, r.cmos[RegSecondsAlarm])
	am, okM := match(RegMinutes, r.cmos[RegMinutesAlarm])
	ah, okH := match(RegHours, r.cmos[RegHoursAlarm])
	if !okS || !okM || !okH {
		return 0, false
	}
	h, m, sec := t.Hour(), t.Minute(), t.Second()
	for k := int64(1); k <= min(limit, 24*60*60); k++ {
		if sec++; sec == 60 {
			sec = 0
			if m++; m == 60 {
				m = 0
				h = (h + 1) % 24
			}
		}
		if (as < 0 || as == sec) && (am < 0 || am == m) && (ah < 0 || ah == h) {
			return k, true
		}
	}
	return 0, false
}

// periodOf returns the periodic interrupt period for rate bits rs with the
// 32.768 kHz time base: none for 0, 256 and 128 Hz for 1 and 2, and
// 65536 >> rs Hz for 3-15.
func periodOf(rs byte) time.Duration {
	switch {
	case rs == 0:
		return 0
	case rs < 3:
		return time.Second / time.Duration(65536>>(rs+7))
	}
	return time.Second / time.Duration(65536>>rs)
}

func (r *RTC) writeReg(i byte, v byte) {
	switch {
	case isTimeReg(i):
		r.writeTime(i, v)
	case i == RegA:
		r.cmos[RegA] = v &^ AUpdateInProgress
	case i == RegB:
		old := r.cmos[RegB]
		if v&BSet != 0 {
			v &^= BUIE // setting SET clears UIE
			if old&BSet == 0 {
				r.held = split(r.now())
			}
		}
		r.cmos[RegB] = v
		if v&BSet == 0 && old&BSet != 0 {
			r.setClock(r.held, 0)
		}
	case i == RegC, i == RegD:
		r.anomalies.Report("write to read-only register ignored", "register", i, "value", v)
	default:
		r.cmos[i] = v
	}
}

// writeTime sets one time register from a guest value in the current mode.
func (r *RTC) writeTime(i byte, v byte) {
	if i == RegDayOfWeek {
		return // derived from the date here; the write has nothing to change
	}
	n, ok := r.decode(i, v)
	if !ok {
		r.anomalies.Report("out-of-range time value ignored", "register", i, "value", v, "registerB", r.cmos[RegB])
		return
	}
	f, nsec := r.held, 0
	if r.cmos[RegB]&BSet == 0 {
		now := r.now()
		f, nsec = split(now), now.Nanosecond()
	}
	switch i {
	case RegSeconds:
		f.sec = n
	case RegMinutes:
		f.min = n
	case RegHours:
		f.hour = n
	case RegDayOfMonth:
		f.day = n
	case RegMonth:
		f.month = n
	case RegYear:
		f.year = n
	case RegCentury:
		f.century = n
	}
	if r.cmos[RegB]&BSet != 0 {
		r.held = f
		return
	}
	r.setClock(f, nsec)
}

// setClock makes the guest clock read f and nsec nanoseconds now. A single
// register write keeps the fraction of the second (the divider chain runs
// on); releasing SET starts the written second afresh.
func (r *RTC) setClock(f fields, nsec int) {
	t, exact := r.build(f)
	t = t.Add(time.Duration(nsec))
	if !exact {
		r.anomalies.Report("impossible date normalized", "year", f.century*100+f.year, "month", f.month, "day", f.day)
	}
	r.offset = t.Sub(r.clock())
	r.lastEval = r.now() // events are counted on the new timeline from here
}

// build turns register fields into a time, reporting whether the calendar
// had to normalize them (day 31 of a 30-day month and the like).
func (r *RTC) build(f fields) (time.Time, bool) {
	t := time.Date(f.century*100+f.year, time.Month(f.month), f.day, f.hour, f.min, f.sec, 0, r.clock().Location())
	return t, split(t) == f
}

func split(t time.Time) fields {
	return fields{
		sec: t.Second(), min: t.Minute(), hour: t.Hour(),
		day: t.Day(), month: int(t.Month()),
		year: t.Year() % 100, century: t.Year() / 100,
	}
}

// encode gives register i's value for time f in the mode register B sets.
func (r *RTC) encode(i byte, f fields, wday int) byte {
	var n int
	switch i {
	case RegSeconds:
		n = f.sec
	case RegMinutes:
		n = f.min
	case RegHours:
		if r.cmos[RegB]&B24Hour == 0 {
			h := f.hour % 12
			if h == 0 {
				h = 12
			}
			v := r.toReg(h)
			if f.hour >= 12 {
				v |= hourPM
			}
			return v
		}
		n = f.hour
	case RegDayOfWeek:
		n = wday + 1
	case RegDayOfMonth:
		n = f.day
	case RegMonth:
		n = f.month
	case RegYear:
		n = f.year
	case RegCentury:
		n = f.century
	}
	return r.toReg(n)
}

// toReg encodes 0 <= n <= 99 as BCD or binary per register B.
func (r *RTC) toReg(n int) byte {
	if r.cmos[RegB]&BBinary != 0 {
		return byte(n)
	}
	n = ((n % 100) + 100) % 100
	return byte(n/10<<4 | n%10)
}

// fromReg decodes a BCD or binary value per register B.
func (r *RTC) fromReg(v byte) (int, bool) {
	if r.cmos[RegB]&BBinary != 0 {
		return int(v), true
	}
	hi, lo := int(v>>4), int(v&0x0f)
	return hi*10 + lo, hi <= 9 && lo <= 9
}

// decode turns a guest value for time register i into a binary field value,
// checking its range.
func (r *RTC) decode(i byte, v byte) (int, bool) {
	if i == RegHours && r.cmos[RegB]&B24Hour == 0 {
		h, ok := r.fromReg(v &^ hourPM)
		if !ok || h < 1 || h > 12 {
			return 0, false
		}
		h %= 12
		if v&hourPM != 0 {
			h += 12
		}
		return h, true
	}
	n, ok := r.fromReg(v)
	if !ok {
		return 0, false
	}
	lo, hi := 0, 99
	switch i {
	case RegSeconds, RegMinutes:
		hi = 59
	case RegHours:
		hi = 23
	case RegDayOfMonth:
		lo, hi = 1, 31
	case RegMonth:
		lo, hi = 1, 12
	}
	return n, n >= lo && n <= hi
}
