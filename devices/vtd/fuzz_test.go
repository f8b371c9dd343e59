package vtd

import (
	"encoding/binary"
	"errors"
	"log/slog"
	"testing"

	"ember/devices/devicetest"
)

// fuzzUnit is a unit on 64 KiB of RAM, with translation and interrupt
// remapping on and both tables at address 0. tables is what RAM holds: a
// list of 10-byte records, a quad's index in RAM (16 bits, modulo its
// size) and its value, so a small input can describe tables a page apart.
func fuzzUnit(tables []byte, irtSize uint64, cfi bool) (*Unit, ram) {
	mem := make(ram, 64<<10)
	for ; len(tables) >= 10; tables = tables[10:] {
		i := uint64(binary.LittleEndian.Uint16(tables)) % uint64(len(mem)/8)
		mem.put64(i*8, binary.LittleEndian.Uint64(tables[2:]))
	}
	u := New(Config{Mem: mem, Logger: slog.New(slog.DiscardHandler)})
	tu := &testUnit{Unit: u, Registers: devicetest.Registers{Dev: u}, mem: mem}
	tu.W64(regRTADDR, 0)
	tu.W64(regIRTA, irtSize&0xf)
	tu.command(gstsRTPS)
	tu.command(gcmdSIRTP)
	tu.command(gcmdTE)
	if cfi {
		tu.command(gcmdCFI)
	}
	tu.command(gcmdIRE)
	return u, mem
}

// seedTables is a root table with bus 0's entry at 0x1000, a context table
// there with function 08's 3-level context, and tables mapping IOVA 0.
func seedTables() []byte {
	var b []byte
	for _, q := range []struct{ gpa, v uint64 }{
		{0, 0x1000 | entryP},
		{0x1000 + 8*16, 0x2000 | entryP},
		{0x1000 + 8*16 + 8, 1},
		{0x2000, 0x3000 | 3},
		{0x3000, 0x4000 | 3},
		{0x4000, 0x5000 | 3},
		{16, 0xed<<16 | 1}, // IRTE 1, in the root table's unused part
	} {
		b = binary.LittleEndian.AppendUint16(b, uint16(q.gpa/8))
		b = binary.LittleEndian.AppendUint64(b, q.v)
	}
	return b
}

func FuzzTranslate(f *testing.F) {
	f.Add(seedTables(), uint16(8), uint64(0), false)
	f.Add(seedTables(), uint16(8), uint64(0x1234), true)
	f.Add([]byte{1, 0x10, 0, 0, 0, 0, 0, 0, 0xff}, uint16(0), uint64(1<<47), true)
	f.Fuzz(func(t *testing.T, tables []byte, sid uint16, iova uint64, write bool) {
		u, _ := fuzzUnit(tables, 0, false)
		gpa, n, err := u.Translate(sid, iova, write)
		if err != nil {
			var fault *Fault
			if !errors.As(err, &fault) || fault.Reason == 0 || fault.Reason > ReasonTranslationType {
				t.Fatalf("translation error %v is not a DMA fault", err)
			}
			return
		}
		if n == 0 || n > 1<<30 || gpa&0xfff != iova&0xfff {
			t.Fatalf("Translate(%#x) = %#x, %#x", iova, gpa, n)
		}
		var p [8]byte
		if err := u.DMARead(sid, iova, p[:]); err != nil && !errors.Is(err, ErrNotRAM) {
			var fault *Fault
			if !errors.As(err, &fault) {
				t.Fatalf("DMARead: %v", err)
			}
		}
	})
}

func FuzzRemap(f *testing.F) {
	f.Add(seedTables(), uint64(msiAddr(1)), uint32(0), int32(8), uint8(7), false)
	f.Add([]byte{}, uint64(0xfee00000), uint32(0x30), int32(-1), uint8(0), true)
	f.Add([]byte{1, 0, 0xee}, uint64(0xed|1<<48|1<<49), uint32(0), int32(-1), uint8(0xff), false)
	f.Fuzz(func(t *testing.T, table []byte, addr uint64, data uint32, src int32, size uint8, cfi bool) {
		u, _ := fuzzUnit(table, uint64(size), cfi)
		m := Message{Addr: addr, Data: data}
		if size >= 0x80 { // also the IOAPIC's path: addr read as a redirection entry
			m = IOAPICMessage(addr)
		}
		out, remapped, err := u.RemapMSI(Source(max(src, -1)), m)
		if err != nil {
			var fault *Fault
			if !errors.As(err, &fault) || fault.Reason < ReasonIRRequestReserved || fault.Reason > ReasonIRSourceID {
				t.Fatalf("remapping error %v is not an interrupt fault", err)
			}
			return
		}
		if remapped && (out.Addr&msiAddrMask != msiAddrBase || out.Addr&msiRemappable != 0) {
			t.Fatalf("remapped to %#x: not a compatibility-format message", out)
		}
		if !remapped && out != m {
			t.Fatalf("passed through as %#x, not %#x", out, m)
		}
	})
}
