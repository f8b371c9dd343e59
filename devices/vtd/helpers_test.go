package vtd

import (
	"encoding/binary"
	"errors"
	"log/slog"
	"testing"

	"ember/devices/devicetest"
)

// ram is guest RAM at guest-physical 0 for tests: accesses not wholly
// inside it fail, as memory.Guest's do.
type ram []byte

var errOutside = errors.New("outside test RAM")

func (r ram) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 || uint64(off) > uint64(len(r)) || uint64(len(p)) > uint64(len(r))-uint64(off) {
		return 0, errOutside
	}
	return copy(p, r[off:]), nil
}

func (r ram) WriteAt(p []byte, off int64) (int, error) {
	if off < 0 || uint64(off) > uint64(len(r)) || uint64(len(p)) > uint64(len(r))-uint64(off) {
		return 0, errOutside
	}
	return copy(r[off:], p), nil
}

func (r ram) put64(gpa, v uint64) { binary.LittleEndian.PutUint64(r[gpa:], v) }

func (r ram) get32(gpa uint64) uint32 { return binary.LittleEndian.Uint32(r[gpa:]) }

// testUnit is a unit on 4 MiB of RAM that records the interrupts it sends.
type testUnit struct {
	*Unit
	devicetest.Registers
	mem  ram
	sent []Message
	next uint64 // the next free page for a second-level table
}

func newTestUnit(t *testing.T) *testUnit {
	t.Helper()
	tu := &testUnit{mem: make(ram, 4<<20), next: l4Table + 0x1000}
	tu.Unit = New(Config{Mem: tu.mem, Interrupt: func(m Message) { tu.sent = append(tu.sent, m) }, Logger: slog.New(slog.DiscardHandler)})
	tu.Registers = devicetest.Registers{Dev: tu.Unit}
	return tu
}

// command sets one GCMD bit the way kvm-unit-tests and Linux do: the
// status read back, with the bit added.
func (tu *testUnit) command(bit uint32) {
	tu.W32(regGCMD, tu.R32(regGSTS)|bit)
}

// Table addresses of the tests' guest.
const (
	rootTable = 0x10000
	ctxTable  = 0x11000
	irTable   = 0x20000
	queue     = 0x30000
	l4Table   = 0x40000 // second-level tables from here, a page each
	dataPage  = 0x100000
	testSID   = 0x0108 // 01:01.0
)

// mapTables makes the root entry of testSID's bus and its context entry
// (address width aw: 1 is 3 levels, 2 is 4), with lo and hi quads ORed in,
// and latches the root table and turns translation on.
func (tu *testUnit) mapTables(aw, loExtra, hiExtra uint64) {
	tu.mem.put64(rootTable+uint64(testSID>>8)*16, ctxTable|entryP)
	tu.mem.put64(ctxTable+uint64(testSID&0xff)*16, l4Table|entryP|loExtra)
	tu.mem.put64(ctxTable+uint64(testSID&0xff)*16+8, aw|1<<8|hiExtra)
	tu.W64(regRTADDR, rootTable)
	tu.command(gstsRTPS)
	tu.command(gcmdTE)
}

// mapPage maps iova to gpa in levels levels of tables from l4Table, with
// the leaf at level leaf (1: 4 KiB, 2: 2 MiB, 3: 1 GiB) and perm its R/W
// bits.
func (tu *testUnit) mapPage(levels, leaf int, iova, gpa, perm uint64) {
	table := uint64(l4Table)
	for level := levels; level > leaf; level-- {
		e := table + (iova>>(12+9*(level-1))&0x1ff)*8
		if v := binary.LittleEndian.Uint64(tu.mem[e:]); v&3 != 0 {
			table = v & addrMask
			continue
		}
		tu.mem.put64(e, tu.next|pteR|pteW)
		table, tu.next = tu.next, tu.next+0x1000
	}
	e := table + (iova>>(12+9*(leaf-1))&0x1ff)*8
	v := gpa | perm
	if leaf > 1 {
		v |= ptePS
	}
	tu.mem.put64(e, v)
}
