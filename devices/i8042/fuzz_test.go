package i8042

import (
	"log/slog"
	"testing"

	"ember/devices/devicetest"
)

// FuzzController drives the controller with a random sequence of guest reads
// and writes (any offset, any size, any value), key presses and resets, and
// checks after every step that nothing panicked and the invariants a guest
// relies on hold: the output queues stay bounded, IRQ 1 follows "output
// buffer full and keyboard interrupt enabled", IBF never sticks, and only
// writes can reset the CPU.
//
// Each step is three bytes: op, offset, value. op bits 0-1 choose read,
// write, key press or (rarely) reset; bits 2-3 the size (1, 1, 2 or 4).
// Offsets with bit 7 set are made huge; otherwise they cover 0-7.
func FuzzController(f *testing.F) {
	f.Add([]byte{1, 4, 0xaa, 0, 4, 0, 0, 0, 0, 1, 4, 0x20, 0, 0, 0})
	f.Add([]byte{1, 4, 0x60, 1, 0, 0x74, 1, 4, 0xd3, 1, 0, 0x5a, 0, 4, 0, 0, 0, 0})
	f.Add([]byte{1, 0, 0xf2, 0, 0, 0, 0, 0, 0, 2, 0, 0x1e, 1, 4, 0xad, 1, 4, 0xae, 0, 0, 0})
	f.Add([]byte{1, 4, 0xfe, 1, 4, 0xd1, 1, 0, 0xce, 1, 0, 0xed, 1, 0, 0x07})
	f.Fuzz(func(t *testing.T, ops []byte) {
		irq := &devicetest.IRQ{}
		resets := 0
		c := New(Config{IRQ: irq, Reset: func() { resets++ }, Logger: quiet})
		for i := 0; i+2 < len(ops); i += 3 {
			op, off, val := ops[i], ops[i+1], ops[i+2]
			offset := uint64(off & 0x07)
			if off&0x80 != 0 {
				offset = uint64(off)<<56 | uint64(off)
			}
			data := make([]byte, [4]int{1, 1, 2, 4}[op>>2&3])
			for j := range data {
				data[j] = val
			}
			before := resets
			switch op & 3 {
			case 0:
				c.Read(offset, data)
			case 1:
				c.Write(offset, data)
			case 2:
				c.Key(make([]byte, val&31)...)
			case 3:
				if op&0xf0 == 0xf0 {
					c.Reset()
				}
			}
			if op&3 != 1 && resets != before {
				t.Fatalf("op %#x reset the CPU", op)
			}
			if resets > before+1 {
				t.Fatalf("one write reset the CPU %d times", resets-before)
			}
			checkInvariants(t, c, irq)
		}
	})
}

func checkInvariants(t *testing.T, c *Controller, irq *devicetest.IRQ) {
	t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.ctlQueue) > outQueueLen || len(c.kbdQueue) > outQueueLen {
		t.Fatalf("queues hold %d and %d bytes", len(c.ctlQueue), len(c.kbdQueue))
	}
	want := c.obf && c.ram[0]&CmdByteKbdInt != 0
	if c.irqHigh != want || irq.High() != want {
		t.Fatalf("IRQ 1: device thinks %v, line is %v, OBF %v and command byte %#x say %v",
			c.irqHigh, irq.High(), c.obf, c.ram[0], want)
	}
	if !c.obf && (len(c.ctlQueue) > 0 || len(c.kbdQueue) > 0 && c.ram[0]&CmdByteKbdDisable == 0) {
		t.Fatalf("output buffer empty with bytes waiting")
	}
	s := c.status()
	if s&StatusInputFull != 0 || s&StatusAuxData != 0 {
		t.Fatalf("status %#x", s)
	}
	if c.outPort&OutPortReset == 0 {
		t.Fatalf("output port holds the CPU in reset: %#x", c.outPort)
	}
}

// quiet discards the reports of the invalid accesses the fuzzer makes by
// the million.
var quiet = slog.New(slog.DiscardHandler)
