package memory

import (
	"bytes"
	"testing"

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
