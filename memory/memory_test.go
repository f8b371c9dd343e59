package memory

import (
	"bytes"
	"errors"
	"testing"

	"golang.org/x/sys/unix"
)

func newTestGuest(t *testing.T, rs ...Range) *Guest {
	t.Helper()
	g, err := New(rs)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { g.Close() })
	return g
}

func TestAccessorBounds(t *testing.T) {
	g := newTestGuest(t, Range{0, 2 * PageSize}, Range{4 * PageSize, PageSize})
	tests := []struct {
		name string
		gpa  uint64
		n    uint64
		ok   bool
	}{
		{"first byte", 0, 1, true},
		{"whole first region", 0, 2 * PageSize, true},
		{"last byte of first region", 2*PageSize - 1, 1, true},
		{"empty access at region end", 2 * PageSize, 0, true},
		{"one past first region", 2*PageSize - 1, 2, false},
		{"in the gap", 3 * PageSize, 1, false},
		{"spans the gap", PageSize, 4 * PageSize, false},
		{"second region", 4 * PageSize, PageSize, true},
		{"past the end", 5 * PageSize, 1, false},
		{"wrapping length", PageSize, ^uint64(0), false},
		{"wrapping address", ^uint64(0), 2, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := g.Slice(tt.gpa, tt.n)
			if tt.ok != (err == nil) {
				t.Fatalf("Slice(%#x, %#x) err = %v, want ok=%v", tt.gpa, tt.n, err, tt.ok)
			}
			if err != nil && !errors.Is(err, ErrOutOfRange) {
				t.Fatalf("error %v is not ErrOutOfRange", err)
			}
			if err == nil && uint64(len(s)) != tt.n {
				t.Fatalf("len = %d, want %d", len(s), tt.n)
			}
		})
	}
}

func TestReadWriteRoundTrip(t *testing.T) {
	g := newTestGuest(t, Range{0, PageSize}, Range{PageSize * 2, PageSize})
	msg := []byte("hello guest")
	if _, err := g.WriteAt(msg, 2*PageSize+100); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, len(msg))
	if _, err := g.ReadAt(got, 2*PageSize+100); err != nil || !bytes.Equal(got, msg) {
		t.Fatalf("ReadAt = %q, %v", got, err)
	}
	if _, err := g.WriteAt(msg, PageSize-2); !errors.Is(err, ErrOutOfRange) {
		t.Fatalf("write across a region end: err = %v", err)
	}
	if _, err := g.ReadAt(got, -1); !errors.Is(err, ErrOutOfRange) {
		t.Fatalf("negative address: err = %v", err)
	}
	if g.Size() != 2*PageSize {
		t.Fatalf("Size = %d", g.Size())
	}
}

func TestNewRejectsBadRanges(t *testing.T) {
	for _, rs := range [][]Range{
		{{0, 0}},
		{{1, PageSize}},
		{{0, 100}},
		{{0, 2 * PageSize}, {PageSize, PageSize}},
	} {
		if g, err := New(rs); err == nil {
			g.Close()
			t.Errorf("New(%v) succeeded", rs)
		}
	}
}

func TestPCLayout(t *testing.T) {
	if got := PCLayout(512 << 20); len(got) != 1 || got[0] != (Range{0, 512 << 20}) {
		t.Errorf("512 MiB: %v", got)
	}
	got := PCLayout(5 << 30)
	want := []Range{{0, 3 << 30}, {4 << 30, 2 << 30}}
	if len(got) != 2 || got[0] != want[0] || got[1] != want[1] {
		t.Errorf("5 GiB: %v, want %v", got, want)
	}
}

func FuzzSlice(f *testing.F) {
	f.Add(uint64(0), uint64(1))
	f.Add(uint64(PageSize-1), uint64(2))
	f.Add(^uint64(0), ^uint64(0))
	g, err := New([]Range{{0, PageSize}, {2 * PageSize, PageSize}})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, gpa, n uint64) {
		s, err := g.Slice(gpa, n)
		if err != nil {
			return
		}
		inside := (gpa+n <= PageSize && gpa+n >= gpa) || (gpa >= 2*PageSize && gpa+n <= 3*PageSize && gpa+n >= gpa)
		if !inside || uint64(len(s)) != n {
			t.Fatalf("Slice(%#x, %#x) returned %d bytes outside RAM", gpa, n, len(s))
		}
	})
}

// TestSharedMemoryIsVisibleThroughItsMemfd maps a shared guest's memfd a
// second time, as a device model process would, and sees the guest's bytes.
func TestSharedMemoryIsVisibleThroughItsMemfd(t *testing.T) {
	g, err := NewShared([]Range{{0, PageSize}, {4 * PageSize, 2 * PageSize}})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	if _, err := g.WriteAt([]byte("seen elsewhere"), 5*PageSize+8); err != nil {
		t.Fatal(err)
	}
	r := g.Regions()[1]
	if r.FD < 0 {
		t.Fatal("shared region has no memfd")
	}
	other, err := unix.Mmap(r.FD, 0, int(r.Size), unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Munmap(other)
	if got := string(other[PageSize+8 : PageSize+22]); got != "seen elsewhere" {
		t.Errorf("second mapping reads %q", got)
	}
	anon, err := New([]Range{{0, PageSize}})
	if err != nil {
		t.Fatal(err)
	}
	defer anon.Close()
	if fd := anon.Regions()[0].FD; fd != -1 {
		t.Errorf("anonymous memory has fd %d", fd)
	}
}
