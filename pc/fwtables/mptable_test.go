package fwtables

import (
	"bytes"
	"encoding/binary"
	"testing"

	"ember/layout"
)

// memBuf is guest memory for tests: a byte slice addressed from 0.
type memBuf []byte

func (m memBuf) WriteAt(p []byte, off int64) (int, error) { return copy(m[off:], p), nil }

func sum(b []byte) byte {
	var s byte
	for _, c := range b {
		s += c
	}
	return s
}

// TestMPTableAsAGuestReadsIt parses the table the way Linux's mpparse does:
// find "_MP_", check both checksums, follow the pointer, count processors.
func TestMPTableAsAGuestReadsIt(t *testing.T) {
	for _, ncpus := range []int{1, 2, 8, MPMaxCPUs} {
		mem := make(memBuf, 1<<20)
		if err := WriteMPTable(mem, ncpus); err != nil {
			t.Fatal(err)
		}
		fp := mem[layout.MPTable : layout.MPTable+16]
		if !bytes.Equal(fp[:4], []byte("_MP_")) || sum(fp) != 0 || fp[8] != 1 || fp[9] != 4 {
			t.Fatalf("%d cpus: bad floating pointer % x", ncpus, fp)
		}
		addr := binary.LittleEndian.Uint32(fp[4:])
		hdr := mem[addr:]
		length := binary.LittleEndian.Uint16(hdr[4:])
		if !bytes.Equal(hdr[:4], []byte("PCMP")) || sum(hdr[:length]) != 0 {
			t.Fatalf("%d cpus: bad config table header", ncpus)
		}
		if addr+uint32(length) > layout.MPTable+mpTableMaxLen {
			t.Fatalf("%d cpus: table ends at %#x, past its KiB", ncpus, addr+uint32(length))
		}
		count := binary.LittleEndian.Uint16(hdr[34:])
		cpus, bsp, ioapics, ints := 0, -1, 0, 0
		sizes := map[byte]int{0: 20, 1: 8, 2: 8, 3: 8, 4: 8}
		for off, i := mpHeaderLen, 0; i < int(count); i++ {
			e := hdr[off:]
			switch e[0] {
			case 0:
				if e[3]&mpCPUEnabled != 0 {
					cpus++
				}
				if e[3]&mpCPUBootstrap != 0 {
					bsp = int(e[1])
				}
			case 2:
				ioapics++
				if binary.LittleEndian.Uint32(e[4:]) != layout.IOAPIC {
					t.Errorf("IOAPIC at %#x", binary.LittleEndian.Uint32(e[4:]))
				}
			case 3:
				ints++
			}
			off += sizes[e[0]]
		}
		if cpus != ncpus || bsp != 0 || ioapics != 1 || ints != 16 {
			t.Errorf("%d cpus: table lists %d cpus, BSP %d, %d IOAPICs, %d ISA interrupts", ncpus, cpus, bsp, ioapics, ints)
		}
	}
	if err := WriteMPTable(make(memBuf, 1<<20), MPMaxCPUs+1); err == nil {
		t.Error("an MP table for more vCPUs than fit was written")
	}
}
