package rtc

import (
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"ember/devices/devicetest"
)

// FuzzRTC drives the RTC with a random sequence of guest reads and writes
// (any offset, any size, any value), clock steps and resets, and checks
// after every step that nothing panicked and that what a guest reads stays
// meaningful: register D reports valid RAM, the index stays within the 128
// CMOS bytes, and while the clock runs every time register holds a value in
// range for the mode register B selects, and IRQ 8 follows IRQF.
//
// Each step is three bytes: op, offset, value. op bits 0-1 choose read,
// write, advance the host clock by value*7919 µs, or (rarely) reset; bits
// 2-3 the size (1, 1, 2 or 4). Offsets with bit 7 set are made huge;
// otherwise they cover 0-3.
func FuzzRTC(f *testing.F) {
	f.Add([]byte{1, 0, 0x0b, 1, 1, 0x86, 1, 0, 0x04, 1, 1, 0x17, 1, 0, 0x0b, 1, 1, 0x06, 0, 1, 0})
	f.Add([]byte{1, 0, 0x0b, 1, 1, 0x80, 1, 0, 0x07, 1, 1, 0x31, 1, 0, 0x08, 1, 1, 0x02, 1, 0, 0x0b, 1, 1, 0x02})
	f.Add([]byte{1, 0, 0x8a, 0, 1, 0, 2, 0, 200, 1, 0, 0x0c, 0, 1, 0, 1, 0, 0x32, 1, 1, 0x19})
	f.Fuzz(func(t *testing.T, ops []byte) {
		irq := &devicetest.IRQ{}
		// The clock is read by the RTC's timer goroutine too.
		var now atomic.Int64
		now.Store(time.Date(2024, time.February, 29, 23, 59, 59, 999_900_000, time.UTC).UnixNano())
		r := New(Config{
			Clock:      func() time.Time { return time.Unix(0, now.Load()).UTC() },
			MemBelow4G: 3 << 30, MemAbove4G: 1 << 32,
			Logger: slog.New(slog.DiscardHandler),
			IRQ:    irq,
		})
		defer r.Close()
		for i := 0; i+2 < len(ops); i += 3 {
			op, off, val := ops[i], ops[i+1], ops[i+2]
			offset := uint64(off & 0x03)
			if off&0x80 != 0 {
				offset = uint64(off)<<56 | uint64(off)
			}
			data := make([]byte, [4]int{1, 1, 2, 4}[op>>2&3])
			for j := range data {
				data[j] = val
			}
			switch op & 3 {
			case 0:
				r.Read(offset, data)
			case 1:
				r.Write(offset, data)
			case 2:
				now.Add(int64(val) * int64(7919*time.Microsecond))
			case 3:
				if op&0xf0 == 0xf0 {
					r.Reset()
				}
			}
			checkInvariants(t, r, irq)
		}
	})
}

func checkInvariants(t *testing.T, r *RTC, irq *devicetest.IRQ) {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.irqHigh != r.irqf() || irq.High() != r.irqHigh {
		t.Fatalf("IRQ 8: device thinks %v, line is %v, flags %#x and register B %#x say %v",
			r.irqHigh, irq.High(), r.flags, r.cmos[RegB], r.irqf())
	}
	if r.index >= CMOSSize {
		t.Fatalf("index %#x", r.index)
	}
	if v := r.readReg(RegD); v != DValidRAM {
		t.Fatalf("register D = %#x", v)
	}
	if r.cmos[RegB]&BSet != 0 {
		return
	}
	for _, reg := range []byte{RegSeconds, RegMinutes, RegHours, RegDayOfMonth, RegMonth, RegYear, RegCentury} {
		v := r.readReg(reg)
		if _, ok := r.decode(reg, v); !ok {
			t.Fatalf("register %#x reads %#x, out of range with register B %#x", reg, v, r.cmos[RegB])
		}
	}
	if n, ok := r.fromReg(r.readReg(RegDayOfWeek)); !ok || n < 1 || n > 7 {
		t.Fatalf("day of week reads %d", n)
	}
}
