package memory

import (
	"bytes"
	"errors"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

// TestZeroClearsEveryBacking: after Zero, guest RAM reads zeros through the
// guest's own mapping and, for memfd-backed RAM, through the memfd another
// process would map; memory lent by another owner is left alone.
func TestZeroClearsEveryBacking(t *testing.T) {
	for _, tt := range []struct {
		name   string
		newMem func([]Range) (*Guest, error)
	}{
		{"anonymous", New},
		{"memfd", NewShared},
	} {
		t.Run(tt.name, func(t *testing.T) {
			g, err := tt.newMem([]Range{{GPA: 0, Size: 1 << 20}, {GPA: 2 << 20, Size: 64 << 10}})
			if err != nil {
				t.Fatal(err)
			}
			defer g.Close()
			lent := make([]byte, PageSize)
			lent[0] = 0x5a
			if err := g.Map(4<<20, lent); err != nil {
				t.Fatal(err)
			}
			data := bytes.Repeat([]byte{0xa5}, 8192)
			for _, gpa := range []int64{0x1000, 2<<20 + 0x3000} {
				if _, err := g.WriteAt(data, gpa); err != nil {
					t.Fatal(err)
				}
			}
			if err := g.Zero(); err != nil {
				t.Fatal(err)
			}
			got := make([]byte, len(data))
			for _, gpa := range []int64{0x1000, 2<<20 + 0x3000} {
				if _, err := g.ReadAt(got, gpa); err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(got, make([]byte, len(got))) {
					t.Errorf("GPA %#x reads %#x... after Zero, want zeros", gpa, got[:4])
				}
			}
			for _, r := range g.Regions() {
				if r.FD < 0 {
					continue
				}
				if _, err := unix.Pread(r.FD, got, 0x1000%int64(r.Size)); err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(got, make([]byte, len(got))) {
					t.Errorf("the memfd of the region at %#x still holds %#x... after Zero", r.GPA, got[:4])
				}
			}
			if lent[0] != 0x5a {
				t.Error("Zero cleared memory lent by another owner")
			}
		})
	}
}

// TestDiscardReleasesPages: Discard drops the pages of a range, which read
// as zeros afterwards and are no longer resident (mincore), through the
// guest's mapping and a memfd's file alike, and leaves the pages around it
// as they were.
func TestDiscardReleasesPages(t *testing.T) {
	for _, tt := range []struct {
		name   string
		newMem func([]Range) (*Guest, error)
	}{
		{"anonymous", New},
		{"memfd", NewShared},
	} {
		t.Run(tt.name, func(t *testing.T) {
			g, err := tt.newMem([]Range{{GPA: 0, Size: 1 << 20}})
			if err != nil {
				t.Fatal(err)
			}
			defer g.Close()
			data := bytes.Repeat([]byte{0xa5}, 4*PageSize)
			if _, err := g.WriteAt(data, 0x10000); err != nil {
				t.Fatal(err)
			}
			if err := g.Discard(0x11000, 2*PageSize); err != nil {
				t.Fatal(err)
			}
			got := make([]byte, len(data))
			if _, err := g.ReadAt(got, 0x10000); err != nil {
				t.Fatal(err)
			}
			want := bytes.Clone(data)
			clear(want[PageSize : 3*PageSize])
			if !bytes.Equal(got, want) {
				t.Errorf("after discarding the middle two of four pages, they read %x %x %x %x (first bytes), want a5 00 00 a5",
					got[0], got[PageSize], got[2*PageSize], got[3*PageSize])
			}
			// got's read faulted the discarded pages back in (as zero
			// pages); discard them again and ask mincore before touching.
			if err := g.Discard(0x11000, 2*PageSize); err != nil {
				t.Fatal(err)
			}
			r := g.Regions()[0]
			vec := make([]byte, 4)
			if err := mincore(r.Host[0x10000:0x14000], vec); err != nil {
				t.Fatal(err)
			}
			if vec[0]&1 == 0 || vec[1]&1 != 0 || vec[2]&1 != 0 || vec[3]&1 == 0 {
				t.Errorf("residency of the four pages %v, want resident, released, released, resident", vec)
			}
			if r.FD >= 0 {
				if _, err := unix.Pread(r.FD, got[:PageSize], 0x11000); err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(got[:PageSize], make([]byte, PageSize)) {
					t.Error("the memfd still holds a discarded page")
				}
			}
		})
	}
}

// TestDiscardRefusals: Discard refuses, and changes nothing for, a range
// that is not page-aligned, not RAM, spans two regions, or is memory lent
// by another owner; a size of 0 is nothing to do.
func TestDiscardRefusals(t *testing.T) {
	g, err := New([]Range{{GPA: 0, Size: 64 << 10}, {GPA: 64 << 10, Size: 64 << 10}})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	lent := bytes.Repeat([]byte{0x5a}, PageSize)
	if err := g.Map(1<<20, lent); err != nil {
		t.Fatal(err)
	}
	host := g.Regions()[0].Host
	host[0x1000], host[0xf000] = 1, 1
	for _, tt := range []struct {
		name      string
		gpa, size uint64
		is        error // nil: any error
	}{
		{"unaligned address", 0x1800, PageSize, nil},
		{"unaligned size", 0x1000, 0x800, nil},
		{"beyond RAM", 2 << 20, PageSize, ErrOutOfRange},
		{"across two regions", 0xf000, 2 * PageSize, ErrOutOfRange},
		{"wrapping around", 0xfffffffffffff000, 2 * PageSize, ErrOutOfRange},
		{"lent memory", 1 << 20, PageSize, ErrNotOwned},
	} {
		err := g.Discard(tt.gpa, tt.size)
		if err == nil || tt.is != nil && !errors.Is(err, tt.is) {
			t.Errorf("%s: Discard(%#x, %#x) = %v, want an error (%v)", tt.name, tt.gpa, tt.size, err, tt.is)
		}
	}
	if err := g.Discard(0x1000, 0); err != nil {
		t.Errorf("Discard of 0 bytes: %v", err)
	}
	if host[0x1000] != 1 || host[0xf000] != 1 || lent[0] != 0x5a {
		t.Error("a refused Discard changed memory")
	}
}

// mincore is mincore(2), which x/sys/unix does not wrap on Linux: one byte
// per page of b, bit 0 set for a resident page.
func mincore(b, vec []byte) error {
	_, _, errno := unix.Syscall(unix.SYS_MINCORE, uintptr(unsafe.Pointer(&b[0])), uintptr(len(b)), uintptr(unsafe.Pointer(&vec[0])))
	if errno != 0 {
		return errno
	}
	return nil
}
