// Package vmid hands out ACRN VM IDs: a table of IDs from 0 to its size-1
// (ACRN's CONFIG_MAX_VM_NUM), ID 0 being the Service VM's. An ID is
// reserved while its VM is built, so that two VMs built at once cannot take
// the same one, and filled once the VM is ready; lookups see only filled
// IDs.
package vmid

import (
	"errors"
	"sync"
)

// Table maps VM IDs to entries of type E. It is safe for concurrent use.
type Table[E any] struct {
	mu       sync.RWMutex
	slots    []*E
	reserved []bool
}

// ServiceVM is the Service VM's ID.
const ServiceVM = 0

// ErrServiceTaken is Reserve's error for a second Service VM: its ID is
// reserved or filled already.
var ErrServiceTaken = errors.New("vmid: the Service VM's ID is taken")

// ErrFull is Reserve's error when every other ID is reserved or filled.
var ErrFull = errors.New("vmid: no free VM ID")

// New returns a table of n IDs, all free.
func New[E any](n int) *Table[E] {
	return &Table[E]{slots: make([]*E, n), reserved: make([]bool, n)}
}

// Reserve takes an ID for a VM about to be built: ServiceVM for the Service
// VM (ErrServiceTaken if it is held), the lowest free ID above it otherwise
// (ErrFull if there is none). Fill then completes or undoes it.
func (t *Table[E]) Reserve(service bool) (uint16, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if service {
		if t.slots[ServiceVM] != nil || t.reserved[ServiceVM] {
			return 0, ErrServiceTaken
		}
		t.reserved[ServiceVM] = true
		return ServiceVM, nil
	}
	for i := ServiceVM + 1; i < len(t.slots); i++ {
		if t.slots[i] == nil && !t.reserved[i] {
			t.reserved[i] = true
			return uint16(i), nil
		}
	}
	return 0, ErrFull
}

// Fill puts e under id, which Reserve took, or frees id if e is nil. An ID
// that is not reserved (or not in the table) is left alone.
func (t *Table[E]) Fill(id uint16, e *E) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if int(id) >= len(t.slots) || !t.reserved[id] {
		return
	}
	t.reserved[id], t.slots[id] = false, e
}

// Remove frees id if e is its entry.
func (t *Table[E]) Remove(id uint16, e *E) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if int(id) < len(t.slots) && t.slots[id] == e {
		t.slots[id] = nil
	}
}

// Lookup returns the entry with ID id, or nil if there is none (a reserved
// ID has none yet).
func (t *Table[E]) Lookup(id uint64) *E {
	t.mu.RLock()
	defer t.mu.RUnlock()
	if id >= uint64(len(t.slots)) {
		return nil
	}
	return t.slots[id]
}

// All returns the entries, by ID.
func (t *Table[E]) All() []*E {
	t.mu.RLock()
	defer t.mu.RUnlock()
	var es []*E
	for _, e := range t.slots {
		if e != nil {
			es = append(es, e)
		}
	}
	return es
}
