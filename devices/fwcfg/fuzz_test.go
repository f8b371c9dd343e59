package fwcfg

import (
	"bytes"
	"encoding/binary"
	"testing"

	"ember/memory"
)

// FuzzDMA hands the DMA interface arbitrary access structures, placed
// anywhere (in RAM, straddling its end, far outside it), after the guest
// selected any key and read some of it through the ports. After each
// transfer it checks what a guest relies on and what must never happen:
//
//   - nothing panics, and the control word in RAM ends 0 or DMAError;
//   - no byte of guest RAM changes outside the buffer the access names and
//     the control word;
//   - a successful read put the item's bytes there, zeros past its end;
//   - a failed read or write changed no byte of the buffer;
//   - read-only items never change; the writable file changes only by a
//     successful write, and keeps its size.
//
// The input is the 16-byte structure, then a 2-byte placement (bit 15 set:
// an address from the next 8 bytes; else an offset in RAM), a 2-byte key
// selected first and a count of bytes read through the data register.
func FuzzDMA(f *testing.F) {
	seed := func(a DMAAccess, place uint16, key uint16, pre byte, wild uint64) {
		b := a.Bytes()
		b = binary.BigEndian.AppendUint16(b, place)
		b = binary.BigEndian.AppendUint16(b, key)
		b = append(b, pre)
		f.Add(binary.BigEndian.AppendUint64(b, wild))
	}
	seed(DMAAccess{sel(KeySignature) | DMARead, 4, bufGPA}, accessGPA, 0, 0, 0)
	seed(DMAAccess{sel(KeyFileDir) | DMARead, 200, bufGPA}, accessGPA, 0, 0, 0)
	seed(DMAAccess{sel(KeyFileFirst+1) | DMAWrite, 4, bufGPA}, accessGPA, 0, 0, 0)
	seed(DMAAccess{DMAWrite, 8, bufGPA}, accessGPA, KeyFileFirst+1, 2, 0)
	seed(DMAAccess{sel(KeyFileFirst) | DMASkip, 3, 0}, accessGPA, 0, 0, 0)
	seed(DMAAccess{DMARead, 16, ramSize - 8}, ramSize-4, KeySignature, 1, 0)
	seed(DMAAccess{DMARead | 1<<7, 4, bufGPA}, accessGPA, 0, 0, 0)
	seed(DMAAccess{sel(KeySignature) | DMARead, 4, bufGPA}, 0x8000, 0, 0, highRAM+0x40)
	seed(DMAAccess{sel(KeySignature) | DMARead, 8, accessGPA}, accessGPA, 0, 0, 0)

	g, err := memory.New([]memory.Range{{GPA: 0, Size: ramSize}, {GPA: highRAM, Size: ramSize}})
	if err != nil {
		f.Fatal(err)
	}
	defer g.Close()
	regions := g.Regions()
	f.Fuzz(func(t *testing.T, in []byte) {
		if len(in) < DMAAccessSize+5 {
			return
		}
		a, _ := ParseDMAAccess(in)
		place := binary.BigEndian.Uint16(in[16:])
		key := binary.BigEndian.Uint16(in[18:])
		pre := int(in[20])
		addr := uint64(place)
		if place&0x8000 != 0 {
			addr = 0
			if len(in) >= 29 {
				addr = binary.BigEndian.Uint64(in[21:])
			}
		}
		for _, r := range regions {
			for i := range r.Host {
				r.Host[i] = byte(i*7 + 1)
			}
		}
		dev := New(Config{Memory: g, Logger: quiet})
		if err := dev.AddFile("etc/ro", []byte("read-only")); err != nil {
			t.Fatal(err)
		}
		rwInit := []byte("writable")
		if err := dev.AddWritableFile("etc/rw", rwInit, nil); err != nil {
			t.Fatal(err)
		}
		// The structure goes in as far as it fits in RAM.
		n := uint64(DMAAccessSize)
		for n > 0 && !inRAM(g, addr, n) {
			n--
		}
		if n > 0 {
			g.WriteAt(in[:n], int64(addr))
		}
		// What the ports read of the item the access is to read from.
		itemKey, from := key, pre
		if a.Control&DMASelect != 0 {
			itemKey, from = a.Key(), 0
		}
		wantItem := read(dev, itemKey, from+int(a.Length&0xfff))[from:]
		read(dev, key, pre)
		before := snapshot(regions)

		dev.Write(DMAOffset, binary.BigEndian.AppendUint32(nil, uint32(addr>>32)))
		dev.Write(DMAOffset+4, binary.BigEndian.AppendUint32(nil, uint32(addr)))

		after := snapshot(regions)
		structInRAM := inRAM(g, addr, DMAAccessSize)
		var ctl uint32
		if structInRAM {
			ctl = control(t, g, addr)
			if ctl != 0 && ctl != DMAError {
				t.Fatalf("control word %#x after the transfer", ctl)
			}
		}
		bufInRAM := inRAM(g, a.Address, uint64(a.Length))
		isRead := a.Control&DMARead != 0 && a.Length > 0
		undefined := a.Control&0xffff&^dmaDefinedBits != 0
		ok := structInRAM && ctl == 0
		if structInRAM && isRead && !undefined && bufInRAM != ok {
			t.Fatalf("read into %#x+%#x (in RAM: %v) ended with control %#x", a.Address, a.Length, bufInRAM, ctl)
		}
		for i, r := range regions {
			for j := range r.Host {
				gpa := r.GPA + uint64(j)
				if before[i][j] == after[i][j] {
					continue
				}
				inCtl := structInRAM && gpa >= addr && gpa < addr+4
				inBuf := ok && a.Control&DMARead != 0 && gpa >= a.Address && gpa-a.Address < uint64(a.Length)
				if !inCtl && !inBuf {
					t.Fatalf("byte at %#x changed (control %#x, access %+v at %#x)", gpa, ctl, a, addr)
				}
			}
		}
		if ok && isRead && a.Length <= 0xfff {
			got := make([]byte, a.Length)
			g.ReadAt(got, int64(a.Address))
			want := wantItem
			for i := range got {
				if a.Address+uint64(i) >= addr && a.Address+uint64(i) < addr+4 {
					continue // the control word, written after the data
				}
				if got[i] != want[i] {
					t.Fatalf("read % x, want % x", got, want)
				}
			}
		}
		if sig := read(dev, KeySignature, 4); string(sig) != "QEMU" {
			t.Fatalf("signature now %q", sig)
		}
		if ro, _ := dev.File("etc/ro"); string(ro) != "read-only" {
			t.Fatalf("read-only file now %q", ro)
		}
		rw, _ := dev.File("etc/rw")
		wrote := ok && a.Control&(DMARead|DMAWrite) == DMAWrite
		if len(rw) != len(rwInit) || !bytes.Equal(rw, rwInit) && !wrote {
			t.Fatalf("writable file now %q after control %#x, access %+v", rw, ctl, a)
		}
	})
}

// snapshot copies every region's bytes.
func snapshot(rs []memory.Region) [][]byte {
	out := make([][]byte, len(rs))
	for i, r := range rs {
		out[i] = bytes.Clone(r.Host)
	}
	return out
}

// inRAM reports whether [gpa, gpa+n) is guest RAM.
func inRAM(g *memory.Guest, gpa, n uint64) bool {
	_, err := g.Slice(gpa, n)
	return err == nil
}
