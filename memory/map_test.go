package memory

import (
	"bytes"
	"errors"
	"sync"
	"testing"
)

// TestMapAndUnmap: memory lent by another owner becomes guest RAM at the
// address given, is refused where it would overlap or is not page-aligned,
// and leaves with Unmap or Close without being unmapped from its owner.
func TestMapAndUnmap(t *testing.T) {
	owner, err := New([]Range{{0, 4 * PageSize}})
	if err != nil {
		t.Fatal(err)
	}
	defer owner.Close()
	lent := owner.Regions()[0].Host
	copy(lent[PageSize:], "lent")

	g, err := New(nil)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		gpa  uint64
		host []byte
		ok   bool
	}{
		{"two pages at 1 MiB", 1 << 20, lent[:2*PageSize], true},
		{"a page at 0", 0, lent[2*PageSize : 3*PageSize], true},
		{"overlapping the first", 1<<20 + PageSize, lent[3*PageSize:], false},
		{"unaligned address", 0x800, lent[3*PageSize:], false},
		{"unaligned length", 2 << 20, lent[3*PageSize : 4*PageSize-1], false},
		{"empty", 2 << 20, nil, false},
	}
	for _, tt := range tests {
		if err := g.Map(tt.gpa, tt.host); (err == nil) != tt.ok {
			t.Errorf("%s: Map = %v, want ok=%v", tt.name, err, tt.ok)
		}
	}
	if rs := g.Regions(); len(rs) != 2 || rs[0].GPA != 0 || rs[1].GPA != 1<<20 || g.Size() != 3*PageSize {
		t.Fatalf("regions %+v, want two, sorted, 3 pages", rs)
	}
	b := make([]byte, 4)
	if _, err := g.ReadAt(b, 1<<20+PageSize); err != nil || string(b) != "lent" {
		t.Errorf("read through the mapping: %q %v", b, err)
	}
	if err := g.Unmap(1 << 20); err != nil {
		t.Fatal(err)
	}
	if _, err := g.ReadAt(b, 1<<20+PageSize); !errors.Is(err, ErrOutOfRange) {
		t.Errorf("read after Unmap: %v, want ErrOutOfRange", err)
	}
	if err := g.Unmap(1 << 20); err == nil {
		t.Error("a second Unmap succeeded")
	}
	if err := g.Close(); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(lent[PageSize:PageSize+4], []byte("lent")) {
		t.Error("the owner's memory changed")
	}
	if err := owner.Unmap(0); err == nil {
		t.Error("Unmap took away a guest's own RAM")
	}
}

// TestAccessWhileTheMapChanges reads through the accessor while another
// goroutine maps and unmaps a region: every access sees the map before or
// after a change, never a torn one (run with -race).
func TestAccessWhileTheMapChanges(t *testing.T) {
	g, err := New([]Range{{0, PageSize}})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	lent := make([]byte, PageSize)
	lent[0] = 7
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for range 1000 {
			if err := g.Map(1<<20, lent); err != nil {
				t.Error(err)
				return
			}
			if err := g.Unmap(1 << 20); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	b := make([]byte, 1)
	for range 1000 {
		if _, err := g.ReadAt(b, 1<<20); err == nil && b[0] != 7 {
			t.Fatalf("read %d through the mapping", b[0])
		}
		if _, err := g.ReadAt(b, 0); err != nil {
			t.Fatalf("own RAM unreadable while the map changes: %v", err)
		}
	}
	wg.Wait()
}
