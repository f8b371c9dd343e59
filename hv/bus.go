package hv

import (
	"fmt"
	"sort"
	"sync"
	"sync/atomic"
)

// Device is what a bus dispatches guest accesses to: reads and writes at an
// offset from the start of the range the device was registered for, of
// len(data) bytes (1, 2, 4 or 8). Read fills data; Write consumes it.
// devices.PortDevice has the same method set.
type Device interface {
	Read(offset uint64, data []byte)
	Write(offset uint64, data []byte)
}

// Bus maps address ranges (ports or MMIO addresses) to devices. Lookups, which
// every vCPU exit makes, take a read lock; registration takes the write lock.
type Bus struct {
	name    string
	mu      sync.RWMutex
	entries []busEntry // sorted by base, non-overlapping

	unclaimedReads  atomic.Uint64
	unclaimedWrites atomic.Uint64
}

type busEntry struct {
	base, size uint64
	dev        Device
	name       string
}

// NewBus returns an empty bus; name appears in errors ("pio", "mmio").
func NewBus(name string) *Bus { return &Bus{name: name} }

// Register claims [base, base+size) for dev. Overlapping a range already
// claimed is refused: two devices never answer for one address.
func (b *Bus) Register(base, size uint64, name string, dev Device) error {
	if size == 0 || base+size < base {
		return fmt.Errorf("hv: %s bus: %s: bad range %#x+%#x", b.name, name, base, size)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	i := sort.Search(len(b.entries), func(i int) bool { return b.entries[i].base >= base })
	if i > 0 {
		if p := b.entries[i-1]; p.base+p.size > base {
			return fmt.Errorf("hv: %s bus: %s at %#x+%#x overlaps %s at %#x+%#x", b.name, name, base, size, p.name, p.base, p.size)
		}
	}
	if i < len(b.entries) {
		if n := b.entries[i]; base+size > n.base {
			return fmt.Errorf("hv: %s bus: %s at %#x+%#x overlaps %s at %#x+%#x", b.name, name, base, size, n.name, n.base, n.size)
		}
	}
	b.entries = append(b.entries, busEntry{})
	copy(b.entries[i+1:], b.entries[i:])
	b.entries[i] = busEntry{base: base, size: size, dev: dev, name: name}
	return nil
}

// Unregister releases the range that starts at base.
func (b *Bus) Unregister(base uint64) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	for i, e := range b.entries {
		if e.base == base {
			b.entries = append(b.entries[:i], b.entries[i+1:]...)
			return nil
		}
	}
	return fmt.Errorf("hv: %s bus: nothing registered at %#x", b.name, base)
}

// find returns the device whose range holds the whole access [addr, addr+n).
func (b *Bus) find(addr, n uint64) (Device, uint64, bool) {
	b.mu.RLock()
	defer b.mu.RUnlock()
	i := sort.Search(len(b.entries), func(i int) bool { return b.entries[i].base > addr }) - 1
	if i < 0 {
		return nil, 0, false
	}
	e := b.entries[i]
	off := addr - e.base
	if off >= e.size || n > e.size-off {
		return nil, 0, false
	}
	return e.dev, off, true
}

// Read dispatches a guest read. An address no device claims reads as all ones,
// as on a PC bus with nothing driving it, and is counted.
func (b *Bus) Read(addr uint64, data []byte) {
	if dev, off, ok := b.find(addr, uint64(len(data))); ok {
		dev.Read(off, data)
		return
	}
	b.unclaimedReads.Add(1)
	for i := range data {
		data[i] = 0xff
	}
}

// Write dispatches a guest write. A write no device claims is dropped and counted.
func (b *Bus) Write(addr uint64, data []byte) {
	if dev, off, ok := b.find(addr, uint64(len(data))); ok {
		dev.Write(off, data)
		return
	}
	b.unclaimedWrites.Add(1)
}

// Unclaimed returns how many reads and writes reached no device.
func (b *Bus) Unclaimed() (reads, writes uint64) {
	return b.unclaimedReads.Load(), b.unclaimedWrites.Load()
}
