// Package memory is guest-physical memory: host mappings that back a guest's
// RAM, and the one checked accessor every read or write by guest-physical
// address goes through.
//
// A guest hands ember addresses and lengths constantly (I/O buffers, descriptor
// tables, hypercall parameters); all of them are hostile. Guest.ReadAt,
// Guest.WriteAt and Guest.Slice check that the whole range lies inside one RAM
// region and return ErrOutOfRange otherwise, so no guest value can make ember
// touch host memory outside guest RAM. The package knows nothing of KVM: a
// caller registers the regions with the hypervisor itself.
package memory

import (
	"errors"
	"fmt"
	"sort"
	"sync"
	"sync/atomic"

	"ember/layout"

	"golang.org/x/sys/unix"
)

// ErrOutOfRange is returned for an access that is not wholly inside guest RAM.
var ErrOutOfRange = errors.New("memory: guest-physical range outside guest RAM")

// PageSize is the granularity of guest memory regions.
const PageSize = 4096

// Range is a span of guest-physical address space.
type Range struct {
	GPA  uint64
	Size uint64
}

// End returns the first address after the range.
func (r Range) End() uint64 { return r.GPA + r.Size }

// Region is one contiguous piece of guest RAM and the host memory behind it.
type Region struct {
	Range
	Host []byte // len(Host) == Size
	// FD is the memfd behind Host for shared memory (NewShared), so another
	// process can map the same RAM; -1 for anonymous memory (New) and for
	// memory lent by another owner (Map).
	FD int

	owned bool // mapped by New or NewShared: Close unmaps it
}

// Guest is a guest's RAM: non-overlapping regions sorted by address. The map
// can change while the guest runs (Map, Unmap: the hypercall service maps a
// Service VM's memory into the VMs it creates), so it is an immutable list
// swapped atomically, as rust-vmm's GuestMemoryAtomic is: an access looks at
// one list from start to end, and a change never makes it see half of one.
// Accesses to the bytes themselves are as concurrent as the guest's own.
type Guest struct {
	mu      sync.Mutex               // serialises Map, Unmap and Close
	regions atomic.Pointer[[]Region] // nil: no RAM
}

// list returns the current regions.
func (g *Guest) list() []Region {
	if p := g.regions.Load(); p != nil {
		return *p
	}
	return nil
}

// PCLayout splits size bytes of RAM around the 32-bit MMIO hole
// (layout.MMIOHoleStart to layout.MMIOHoleEnd): one range from 0, and a
// second from 4 GiB when size exceeds 3 GiB.
func PCLayout(size uint64) []Range {
	if size <= layout.MMIOHoleStart {
		return []Range{{0, size}}
	}
	return []Range{{0, layout.MMIOHoleStart}, {layout.MMIOHoleEnd, size - layout.MMIOHoleStart}}
}

// New maps anonymous, zeroed host memory for each range. Ranges must be
// page-aligned, non-empty and must not overlap.
func New(ranges []Range) (*Guest, error) { return newGuest(ranges, false) }

// NewShared is New with each range backed by a memfd mapped MAP_SHARED, whose
// descriptor (Region.FD) can be handed to another process, such as an
// out-of-process device model, to map the guest's RAM. Anonymous memory (New)
// stays the default: it gets transparent huge pages (mapHost), shmem usually
// does not.
func NewShared(ranges []Range) (*Guest, error) { return newGuest(ranges, true) }

func newGuest(ranges []Range, shared bool) (*Guest, error) {
	rs := append([]Range(nil), ranges...)
	sort.Slice(rs, func(i, j int) bool { return rs[i].GPA < rs[j].GPA })
	g := &Guest{}
	var regs []Region
	fail := func(err error) (*Guest, error) {
		g.regions.Store(&regs)
		g.Close()
		return nil, err
	}
	for i, r := range rs {
		if r.Size == 0 || r.GPA%PageSize != 0 || r.Size%PageSize != 0 || r.End() < r.GPA {
			return fail(fmt.Errorf("memory: range %#x+%#x: not a non-empty page-aligned range", r.GPA, r.Size))
		}
		if i > 0 && r.GPA < rs[i-1].End() {
			return fail(fmt.Errorf("memory: range %#x+%#x overlaps %#x+%#x", r.GPA, r.Size, rs[i-1].GPA, rs[i-1].Size))
		}
		reg, err := mapRange(r, shared)
		if err != nil {
			return fail(err)
		}
		regs = append(regs, reg)
	}
	g.regions.Store(&regs)
	return g, nil
}

// mapRange maps zeroed host memory for r: anonymous and private, or a memfd
// of r's size mapped shared.
func mapRange(r Range, shared bool) (Region, error) {
	// MAP_NORESERVE: guest RAM is touched lazily, so a 24 GiB guest on a
	// small host costs only what the guest uses (a memfd is sparse too).
	fd, flags := -1, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS|unix.MAP_NORESERVE
	if shared {
		var err error
		if fd, err = unix.MemfdCreate(fmt.Sprintf("ember-ram-%#x", r.GPA), unix.MFD_CLOEXEC); err != nil {
			return Region{}, fmt.Errorf("memory: memfd for %#x: %w", r.GPA, err)
		}
		if err := unix.Ftruncate(fd, int64(r.Size)); err != nil {
			unix.Close(fd)
			return Region{}, fmt.Errorf("memory: sizing memfd for %#x: %w", r.GPA, err)
		}
		flags = unix.MAP_SHARED | unix.MAP_NORESERVE
	}
	host, err := mapHost(fd, r.Size, r.GPA, flags)
	if err != nil {
		if fd >= 0 {
			unix.Close(fd)
		}
		return Region{}, fmt.Errorf("memory: mmap %d bytes for %#x: %w", r.Size, r.GPA, err)
	}
	return Region{Range: r, Host: host, FD: fd, owned: true}, nil
}

// Map adds [gpa, gpa+len(host)) to the guest's RAM, backed by host memory
// that another owner keeps mapped (a Service VM's RAM lent to a VM it
// created): Unmap and Close leave it mapped. The range must be page-aligned,
// non-empty and clear of every other region.
func (g *Guest) Map(gpa uint64, host []byte) error {
	r := Range{GPA: gpa, Size: uint64(len(host))}
	if r.Size == 0 || r.GPA%PageSize != 0 || r.Size%PageSize != 0 || r.End() < r.GPA {
		return fmt.Errorf("memory: range %#x+%#x: not a non-empty page-aligned range", r.GPA, r.Size)
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	old := g.list()
	i := sort.Search(len(old), func(i int) bool { return old[i].GPA >= gpa })
	if i > 0 && old[i-1].End() > gpa || i < len(old) && old[i].GPA < r.End() {
		return fmt.Errorf("memory: range %#x+%#x overlaps guest RAM", r.GPA, r.Size)
	}
	regs := make([]Region, 0, len(old)+1)
	regs = append(append(append(regs, old[:i]...), Region{Range: r, Host: host[:r.Size:r.Size], FD: -1}), old[i:]...)
	g.regions.Store(&regs)
	return nil
}

// Unmap removes the region Map added at gpa. An access that took the region
// before may still complete; the memory stays its owner's.
func (g *Guest) Unmap(gpa uint64) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	old := g.list()
	for i, r := range old {
		if r.GPA != gpa {
			continue
		}
		if r.owned {
			return fmt.Errorf("memory: the region at %#x is the guest's own RAM, not a mapping", gpa)
		}
		regs := append(append(make([]Region, 0, len(old)-1), old[:i]...), old[i+1:]...)
		g.regions.Store(&regs)
		return nil
	}
	return fmt.Errorf("memory: no region mapped at %#x", gpa)
}

// Close unmaps every region New or NewShared mapped and forgets the rest.
// The Guest has no RAM afterwards; the hypervisor must no longer map the
// regions, and no access may be in flight.
func (g *Guest) Close() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	var first error
	for _, r := range g.list() {
		if !r.owned {
			continue
		}
		if err := unmapHost(r.Host); err != nil && first == nil {
			first = fmt.Errorf("memory: munmap %#x: %w", r.GPA, err)
		}
		if r.FD >= 0 {
			unix.Close(r.FD)
		}
	}
	g.regions.Store(nil)
	return first
}

// Regions returns the RAM regions in address order: a snapshot, which Map
// and Unmap do not change.
func (g *Guest) Regions() []Region { return g.list() }

// Size returns the total amount of RAM in bytes.
func (g *Guest) Size() uint64 {
	var n uint64
	for _, r := range g.list() {
		n += r.Size
	}
	return n
}

// Slice returns the host bytes behind [gpa, gpa+n), which must lie inside one
// region. Writes through the slice are writes to guest memory. n may be 0.
func (g *Guest) Slice(gpa, n uint64) ([]byte, error) {
	regs := g.list()
	for i := range regs {
		r := &regs[i]
		if gpa >= r.GPA && gpa-r.GPA <= r.Size && n <= r.Size-(gpa-r.GPA) {
			off := gpa - r.GPA
			return r.Host[off : off+n : off+n], nil
		}
	}
	return nil, fmt.Errorf("%w: %#x+%#x", ErrOutOfRange, gpa, n)
}

// ReadAt copies len(p) bytes of guest memory at guest-physical address off into
// p (io.ReaderAt, with the offset as the address). A range that is not wholly
// RAM reads nothing and returns ErrOutOfRange.
func (g *Guest) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, fmt.Errorf("%w: negative address %d", ErrOutOfRange, off)
	}
	s, err := g.Slice(uint64(off), uint64(len(p)))
	if err != nil {
		return 0, err
	}
	return copy(p, s), nil
}

// WriteAt copies p into guest memory at guest-physical address off
// (io.WriterAt). A range that is not wholly RAM writes nothing and returns
// ErrOutOfRange.
func (g *Guest) WriteAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, fmt.Errorf("%w: negative address %d", ErrOutOfRange, off)
	}
	s, err := g.Slice(uint64(off), uint64(len(p)))
	if err != nil {
		return 0, err
	}
	return copy(s, p), nil
}
