package memmap

import (
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"testing"
)

// fakeVM records its mappings as "gpa+size ro|rw" and its write-protected
// pages.
type fakeVM struct {
	next    uint32
	slots   map[uint32]string
	wp      map[uint64]bool
	fail    bool // MapMemory fails
	quiesce int  // Quiesce calls not yet resumed
}

func newFakeVM() *fakeVM { return &fakeVM{slots: map[uint32]string{}, wp: map[uint64]bool{}} }

func (v *fakeVM) MapMemory(gpa uint64, host []byte, readOnly bool) (uint32, error) {
	if v.fail {
		return 0, errors.New("no slot")
	}
	mode := "rw"
	if readOnly {
		mode = "ro"
	}
	v.next++
	v.slots[v.next] = fmt.Sprintf("%#x+%#x %s", gpa, len(host), mode)
	return v.next, nil
}

func (v *fakeVM) UnmapMemory(slot uint32) error {
	delete(v.slots, slot)
	return nil
}

func (v *fakeVM) SetWriteProtected(gpa uint64, on bool) {
	if on {
		v.wp[gpa] = true
	} else {
		delete(v.wp, gpa)
	}
}

func (v *fakeVM) Logger() *slog.Logger { return slog.Default() }

func (v *fakeVM) mappings() string {
	var m []string
	for _, s := range v.slots {
		m = append(m, s)
	}
	for p := range v.wp {
		m = append(m, fmt.Sprintf("wp %#x", p))
	}
	sort.Strings(m)
	return strings.Join(m, ", ")
}

// TestMap: each change leaves the VM's mappings what the regions say.
func TestMap(t *testing.T) {
	v := newFakeVM()
	m := New(v)
	m.Quiesce = func() func() {
		v.quiesce++
		return func() { v.quiesce-- }
	}
	host := make([]byte, 4*PageSize)
	for _, tt := range []struct {
		name string
		do   func() error
		err  error
		maps string
	}{
		{"add 4 pages", func() error { return m.Add(0x10000, host, false, 7) }, nil, "0x10000+0x4000 rw"},
		{"overlapping add", func() error { return m.Add(0x13000, host[:PageSize*2], false, 0) }, ErrOverlap, "0x10000+0x4000 rw"},
		{"write-protect page 2", func() error { return m.WriteProtect(0x12000, true) }, nil,
			"0x10000+0x2000 rw, 0x12000+0x1000 ro, 0x13000+0x1000 rw, wp 0x12000"},
		{"write-protect it again: nothing changes", func() error { return m.WriteProtect(0x12000, true) }, nil,
			"0x10000+0x2000 rw, 0x12000+0x1000 ro, 0x13000+0x1000 rw, wp 0x12000"},
		{"make it read-only: the page stays protected", func() error { return m.Modify(0x10000, 4*PageSize, true, 1) }, nil,
			"0x10000+0x2000 ro, 0x12000+0x1000 ro, 0x13000+0x1000 ro, wp 0x12000"},
		{"write-protect in a read-only region", func() error { return m.WriteProtect(0x13000, true) }, ErrNoRegion,
			"0x10000+0x2000 ro, 0x12000+0x1000 ro, 0x13000+0x1000 ro, wp 0x12000"},
		{"writable again, protection off", func() error {
			if err := m.Modify(0x10000, 4*PageSize, false, 7); err != nil {
				return err
			}
			return m.WriteProtect(0x12000, false)
		}, nil, "0x10000+0x4000 rw"},
		{"modify a range that is no region", func() error { return m.Modify(0x10000, PageSize, false, 0) }, ErrNoRegion, "0x10000+0x4000 rw"},
		{"write-protect outside every region", func() error { return m.WriteProtect(0x20000, true) }, ErrNoRegion, "0x10000+0x4000 rw"},
		{"a failed add leaves nothing", func() error {
			v.fail = true
			defer func() { v.fail = false }()
			if err := m.Add(0x20000, host[:PageSize], false, 0); err == nil || m.Find(0x20000, 0) != nil {
				return fmt.Errorf("add with no slot: %v, region %v", err, m.Find(0x20000, 0))
			}
			return nil
		}, nil, "0x10000+0x4000 rw"},
		{"remove", func() error { return m.Remove(0x10000, 4*PageSize) }, nil, ""},
		{"remove again", func() error { return m.Remove(0x10000, 4*PageSize) }, ErrNoRegion, ""},
	} {
		if err := tt.do(); !errors.Is(err, tt.err) {
			t.Errorf("%s: %v, want %v", tt.name, err, tt.err)
		}
		if got := v.mappings(); got != tt.maps {
			t.Errorf("%s: mappings %q, want %q", tt.name, got, tt.maps)
		}
		if v.quiesce != 0 {
			t.Errorf("%s: %d quiesced, not resumed", tt.name, v.quiesce)
		}
	}
	if len(m.regions) != 0 {
		t.Errorf("regions left: %v", m.regions)
	}
}
