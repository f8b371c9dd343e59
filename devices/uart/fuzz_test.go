package uart

import (
	"io"
	"log/slog"
	"testing"

	"ember/devices/devicetest"
)

// FuzzUART drives a UART with a random sequence of guest reads and writes
// (any offset, any size, any value), host input and resets, and checks after
// every step that nothing panicked and the invariants a guest relies on hold.
//
// Each step is three bytes: op, offset, value. op bits 0-1 choose read,
// write, enqueue (value&31 bytes) or, rarely, reset; bits 2-3 the size
// (1, 1, 2 or 4 bytes; 0 when op bit 4 is set too). Offsets with bit 7 set
// are made huge; otherwise they cover the 8 registers and 8 past the end.
func FuzzUART(f *testing.F) {
	f.Add([]byte{
		1, 3, 0x80, 1, 0, 1, 1, 1, 0, 1, 3, 0x03, // DLAB, divisor 1, 8N1
		1, 2, 0xc7, 1, 4, 0x0b, 1, 1, 0x0f, // FIFO trigger 14, OUT2, all interrupts
		1, 0, 'A', 0, 2, 0, 2, 0, 20, 0, 5, 0, 0, 0, 0, 0, 6, 0,
	})
	f.Add([]byte{1, 4, 0x1f, 1, 0, 'x', 0, 0, 0, 0, 6, 0, 4, 0, 0, 8, 0x85, 0})
	f.Add([]byte{1, 2, 0x01, 2, 0, 31, 1, 2, 0x03, 0, 2, 0, 3, 0, 0})
	f.Fuzz(func(t *testing.T, ops []byte) {
		irq := &devicetest.IRQ{}
		u := New(Config{IRQ: irq, Output: io.Discard, CharTimeout: -1, Logger: quiet})
		for i := 0; i+2 < len(ops); i += 3 {
			op, off, val := ops[i], ops[i+1], ops[i+2]
			offset := uint64(off & 0x0f)
			if off&0x80 != 0 {
				offset = uint64(off)<<56 | uint64(off)
			}
			size := [4]int{1, 1, 2, 4}[op>>2&3]
			if op&0x10 != 0 && op&0x0c == 0 {
				size = 0
			}
			data := make([]byte, size)
			for j := range data {
				data[j] = val
			}
			switch op & 3 {
			case 0:
				u.Read(offset, data)
			case 1:
				u.Write(offset, data)
			case 2:
				in := make([]byte, val&31)
				if n := u.Enqueue(in); n > len(in) {
					t.Fatalf("Enqueue(%d bytes) = %d", len(in), n)
				}
			case 3:
				if op&0xf0 == 0xf0 {
					u.Reset()
				}
			}
			checkInvariants(t, u, irq)
		}
	})
}

func checkInvariants(t *testing.T, u *UART, irq *devicetest.IRQ) {
	t.Helper()
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.rxLen < 0 || u.rxLen > u.capacity() || u.capacity() > FIFOSize {
		t.Fatalf("receiver holds %d bytes, capacity %d", u.rxLen, u.capacity())
	}
	if u.rxHead < 0 || u.rxHead >= FIFOSize {
		t.Fatalf("rxHead = %d", u.rxHead)
	}
	if u.ier&^ierMask != 0 || u.mcr&^mcrMask != 0 {
		t.Fatalf("reserved bits set: IER %#x MCR %#x", u.ier, u.mcr)
	}
	id := u.pending()
	want := id != IIRNoInterrupt && u.mcr&MCROut2 != 0 && u.mcr&MCRLoop == 0
	if u.irqHigh != want || irq.High() != want {
		t.Fatalf("IRQ line: device thinks %v, line is %v, IIR %#x and MCR %#x say %v",
			u.irqHigh, irq.High(), id, u.mcr, want)
	}
	if u.rxLen > 0 && u.rxLen >= u.trigger() && u.ier&IERRxData != 0 &&
		id != IIRRxData && id != IIRLineStatus {
		t.Fatalf("FIFO at trigger with ERBFI but IIR = %#x", id)
	}
	if u.mcr&MCRLoop == 0 && u.msrLines != msrIdle {
		t.Fatalf("modem inputs outside loopback = %#x", u.msrLines)
	}
}

// quiet discards the reports of the invalid accesses the fuzzer makes by
// the million.
var quiet = slog.New(slog.DiscardHandler)
