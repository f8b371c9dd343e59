package pc

import (
	"fmt"
	"sync"

	"ember/devices"
	"ember/hv"
)

// barMapping is where one BAR of a PCI function is registered on a VM's
// bus. It remembers whether the registration is its own, so that moving
// the BAR on releases only what it registered: a guest may point a BAR
// at another device's range, where registering fails, and moving it away
// again must not take that range from the device that holds it.
type barMapping struct {
	bus    *hv.Bus
	name   string
	dev    devices.Device
	size   uint64
	lo, hi uint64 // the window the BAR must lie in, inclusive

	mu     sync.Mutex // a BAR may be written by several vCPUs at once
	base   uint64
	mapped bool
}

// move registers the BAR at base, after releasing its old registration. A
// BAR outside the window, or over another device's range, is left
// unmapped (the error says why) until the driver moves it again; false
// then.
func (m *barMapping) move(base uint64) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.mapped {
		if err := m.bus.Unregister(m.base); err != nil {
			return false, fmt.Errorf("pc: %s: %w", m.name, err)
		}
		m.mapped = false
	}
	m.base = base
	if base < m.lo || base+m.size-1 > m.hi {
		return false, fmt.Errorf("pc: %s: a BAR at %#x is outside the window %#x-%#x", m.name, base, m.lo, m.hi)
	}
	if err := m.bus.Register(base, m.size, m.name, m.dev); err != nil {
		return false, fmt.Errorf("pc: %s: %w", m.name, err)
	}
	m.mapped = true
	return true, nil
}
