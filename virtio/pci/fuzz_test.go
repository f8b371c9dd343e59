package pci

import (
	"encoding/binary"
	"testing"
)

// FuzzRegisters drives a function with BAR1 through any sequence of
// configuration-space, BAR0 and BAR1 accesses a hostile driver could make
// (any offset, width and value: MSI-X tables, queue addresses, device
// status, BAR sizing and moves). The function must not panic, and its
// BARs must always read as a BAR can: the size mask while sized, else an
// address aligned to the size, with an I/O BAR's low bit set; each move it
// reports must be to such an address.
func FuzzRegisters(f *testing.F) {
	f.Add([]byte{})
	// Size BAR1, then move it; activate the device with queue 0.
	f.Add([]byte{1, 0x14, 0, 4, 0xff, 0xff, 0xff, 0xff, 1, 0x14, 0, 4, 0x33, 0xd2, 0, 0,
		3, 0x16, 0, 2, 0, 0, 0, 0, 3, 0x1c, 0, 2, 1, 0, 0, 0, 3, 0x14, 0, 1, 0x0f, 0, 0, 0, 4, 0, 0, 2, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, data []byte) {
		var memMoves, portMoves []uint32 // the new addresses reported
		r := newRigWith(t, func(c *Config) {
			c.PortBAR = 0xc100
			c.MoveBAR = func(_, n uint32) error { memMoves = append(memMoves, n); return nil }
			c.MovePortBAR = func(_, n uint32) error { portMoves = append(portMoves, n); return nil }
		})
		for len(data) >= 8 {
			op, off, n := data[0]%6, uint64(binary.LittleEndian.Uint16(data[1:])), 1<<(data[3]%4)
			v := data[4:8]
			data = data[8:]
			buf := make([]byte, n)
			copy(buf, v)
			switch op {
			case 0:
				r.f.ConfigRead(0, 1, 0, uint16(off), buf)
			case 1:
				r.f.ConfigWrite(0, 1, 0, uint16(off), buf)
			case 2:
				r.f.Read(off, buf)
			case 3:
				r.f.Write(off, buf)
			case 4:
				r.f.Ports().Write(off, buf)
			case 5:
				r.f.Ports().Read(off, buf)
			}
			checkBAR(t, r.cfg32(regBAR0), BARSize, 0)
			checkBAR(t, r.cfg32(regBAR1), PortBARSize, ioSpaceBAR)
		}
		for _, m := range []struct {
			moves []uint32
			size  uint32
		}{{memMoves, BARSize}, {portMoves, PortBARSize}} {
			for _, n := range m.moves {
				if n%m.size != 0 {
					t.Fatalf("a %#x-byte BAR moved to %#x, not aligned", m.size, n)
				}
			}
		}
		r.f.Reset()
		r.f.Close()
	})
}

// checkBAR fails t unless v is what a BAR of size bytes with low bits flags
// can read: its size mask, or an address aligned to its size.
func checkBAR(t *testing.T, v, size, flags uint32) {
	t.Helper()
	if v == ^(size-1)|flags {
		return
	}
	if v&(size-1) != flags {
		t.Fatalf("BAR reads %#x: not a %#x-byte BAR's address or size", v, size)
	}
}
