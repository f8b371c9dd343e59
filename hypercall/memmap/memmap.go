// Package memmap is the memory map of a VM whose RAM is lent to it: regions
// of host memory that another owner keeps (a Service VM's RAM, for ACRN's
// HC_VM_SET_MEMORY_REGIONS) placed at guest-physical addresses, each
// writable or read-only, with single pages write-protected (read-only to the
// guest, whose writes to them then exit for the VMM to see:
// HC_VM_WRITE_PROTECT_PAGE). A Map keeps the VM's own map (KVM memory slots,
// hv.VM.MapMemory) the same as its regions as they change.
//
// The caller checks what its ABI asks of a region (alignment, bounds, the
// meaning of its attributes); a Map checks only that regions do not overlap.
package memmap

import (
	"errors"
	"fmt"
	"log/slog"
)

// PageSize is the granule of regions and write-protected pages.
const PageSize = 4096

// VM is what a Map needs of the VM whose map it keeps; *hv.VM has it.
type VM interface {
	// MapMemory maps host at gpa, read-only if readOnly, and returns the
	// mapping's slot; UnmapMemory removes it.
	MapMemory(gpa uint64, host []byte, readOnly bool) (slot uint32, err error)
	UnmapMemory(slot uint32) error
	// SetWriteProtected turns the guest's writes to the (read-only mapped)
	// page at gpa into exits the VMM handles, or stops doing so.
	SetWriteProtected(gpa uint64, on bool)
	Logger() *slog.Logger
}

// Errors of a Map's changes.
var (
	// ErrOverlap: a new region overlaps one the map has.
	ErrOverlap = errors.New("memmap: region overlaps another")
	// ErrNoRegion: no region is at the address (and size) given, or the
	// page to write-protect is not in a writable one.
	ErrNoRegion = errors.New("memmap: no such region")
)

// Region is one region of the map.
type Region struct {
	GPA, Size uint64
	ReadOnly  bool
	// Attr is the caller's description of the region (ACRN's prot bits:
	// access rights and memory type), kept, not interpreted.
	Attr  uint32
	host  []byte
	slots []uint32
	wp    map[uint64]bool // GPAs of write-protected pages
}

// contains reports whether gpa is in r.
func (r *Region) contains(gpa uint64) bool { return gpa >= r.GPA && gpa-r.GPA < r.Size }

// Map is the memory map of one VM. Its methods must not run concurrently
// (the caller serialises changes to a VM's configuration).
type Map struct {
	vm      VM
	regions []*Region
	// Quiesce, if set, is called before the VM's mappings of a region are
	// remade, and the function it returns after: a caller whose VM may be
	// running pauses it there, so that no vCPU sees the range unmapped.
	Quiesce func() (resume func())
}

// New returns an empty map of vm.
func New(vm VM) *Map { return &Map{vm: vm} }

// Overlaps reports whether [gpa, gpa+size) overlaps a region of the map.
func (m *Map) Overlaps(gpa, size uint64) bool {
	for _, r := range m.regions {
		if gpa < r.GPA+r.Size && r.GPA < gpa+size {
			return true
		}
	}
	return false
}

// Find returns the region mapped exactly at gpa with size, or, when size is
// 0, the one containing gpa; nil if there is none.
func (m *Map) Find(gpa, size uint64) *Region {
	_, r := m.find(gpa, size)
	return r
}

func (m *Map) find(gpa, size uint64) (int, *Region) {
	for i, r := range m.regions {
		if (size == 0 && r.contains(gpa)) || (r.GPA == gpa && r.Size == size) {
			return i, r
		}
	}
	return -1, nil
}

// Add maps host (page-aligned, a whole number of pages) at gpa in the VM.
func (m *Map) Add(gpa uint64, host []byte, readOnly bool, attr uint32) error {
	size := uint64(len(host))
	if m.Overlaps(gpa, size) {
		return fmt.Errorf("%w: %#x+%#x", ErrOverlap, gpa, size)
	}
	r := &Region{GPA: gpa, Size: size, ReadOnly: readOnly, Attr: attr, host: host, wp: map[uint64]bool{}}
	if err := m.remap(r, nil); err != nil {
		return err
	}
	m.regions = append(m.regions, r)
	return nil
}

// Remove unmaps the region mapped exactly at gpa with size.
func (m *Map) Remove(gpa, size uint64) error {
	i, r := m.find(gpa, size)
	if r == nil {
		return fmt.Errorf("%w at %#x+%#x", ErrNoRegion, gpa, size)
	}
	m.unmap(r)
	m.regions = append(m.regions[:i], m.regions[i+1:]...)
	return nil
}

// Modify changes the protection and attributes of the region mapped exactly
// at gpa with size.
func (m *Map) Modify(gpa, size uint64, readOnly bool, attr uint32) error {
	r := m.Find(gpa, size)
	if r == nil {
		return fmt.Errorf("%w at %#x+%#x", ErrNoRegion, gpa, size)
	}
	return m.remap(r, func() { r.ReadOnly, r.Attr = readOnly, attr })
}

// WriteProtect makes the page at gpa (page-aligned, in a writable region)
// read-only to the guest with its writes handed to the VMM (on), or
// writable again.
func (m *Map) WriteProtect(gpa uint64, on bool) error {
	r := m.Find(gpa, 0)
	if r == nil || r.ReadOnly {
		return fmt.Errorf("%w: no writable region at %#x", ErrNoRegion, gpa)
	}
	if on == r.wp[gpa] {
		return nil
	}
	return m.remap(r, func() {
		if on {
			r.wp[gpa] = true
		} else {
			delete(r.wp, gpa)
		}
	})
}

// remap remakes r's mappings, after change (if any) has changed r while
// they are gone: runs of ordinary pages with the region's protection, and
// each write-protected page as a read-only slot whose writes exit. On an
// error r is left unmapped.
func (m *Map) remap(r *Region, change func()) error {
	if m.Quiesce != nil {
		defer m.Quiesce()()
	}
	m.unmap(r) // with the old write-protected set, so its handlers go
	if change != nil {
		change()
	}
	for off := uint64(0); off < r.Size; {
		wp := r.wp[r.GPA+off]
		end := off + PageSize
		for !wp && end < r.Size && !r.wp[r.GPA+end] {
			end += PageSize
		}
		s, err := m.vm.MapMemory(r.GPA+off, r.host[off:end], r.ReadOnly || wp)
		if err != nil {
			m.unmap(r)
			return fmt.Errorf("memmap: mapping %#x+%#x: %w", r.GPA+off, end-off, err)
		}
		r.slots = append(r.slots, s)
		if wp {
			m.vm.SetWriteProtected(r.GPA+off, true)
		}
		off = end
	}
	return nil
}

// unmap removes r's mappings and its pages' write protection.
func (m *Map) unmap(r *Region) {
	for _, s := range r.slots {
		if err := m.vm.UnmapMemory(s); err != nil {
			m.vm.Logger().Warn("unmapping a memory region", "slot", s, "err", err)
		}
	}
	r.slots = nil
	for p := range r.wp {
		m.vm.SetWriteProtected(p, false)
	}
}
