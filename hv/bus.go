package hv

import (
	"fmt"
	"sync"

	"ember/acrn/iorequest"
	"ember/devices"
	"ember/ioreq"
)

// Bus is where in-process devices claim address ranges of one request type
// (port I/O or MMIO) on the VM's ioreq.Router. It is only a registration face:
// every guest access goes through the VM's ioreq.Dispatcher, which fills the
// vCPU's request slot and routes it to whichever client claimed the address —
// an in-process device registered here, an out-of-process device model, or a
// Service VM. Overlapping claims are refused, whoever made them.
type Bus struct {
	name   string
	typ    iorequest.ReqType
	router *ioreq.Router

	mu     sync.Mutex
	claims map[uint64]busClaim // by base, for Unregister
}

type busClaim struct {
	r ioreq.Range
	c ioreq.Client
}

// newBus returns the face of request type typ on router.
func newBus(name string, typ iorequest.ReqType, router *ioreq.Router) *Bus {
	return &Bus{name: name, typ: typ, router: router, claims: map[uint64]busClaim{}}
}

// Register claims [base, base+size) for dev.
func (b *Bus) Register(base, size uint64, name string, dev devices.Device) error {
	if size == 0 || base+size < base {
		return fmt.Errorf("hv: %s bus: %s: bad range %#x+%#x", b.name, name, base, size)
	}
	r := ioreq.Range{Type: b.typ, Start: base, End: base + size - 1}
	c := ioreq.DeviceClient(name, base, dev)
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := b.router.Claim(r, c); err != nil {
		return fmt.Errorf("hv: %s bus: %s at %#x+%#x: %w", b.name, name, base, size, err)
	}
	b.claims[base] = busClaim{r, c}
	return nil
}

// Unregister releases the range that starts at base.
func (b *Bus) Unregister(base uint64) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	cl, ok := b.claims[base]
	if !ok {
		return fmt.Errorf("hv: %s bus: nothing registered at %#x", b.name, base)
	}
	delete(b.claims, base)
	return b.router.Unclaim(cl.r, cl.c)
}
