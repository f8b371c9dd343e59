package ioreq

import (
	"sync/atomic"
	"time"
)

// Bounds of the adaptive poll window (PollWindow): where a wake-up costs
// little (hardware KVM, a few µs) the window stays near its floor; where it
// costs more than the gap between two accesses (nested KVM under emulation,
// where one exit alone takes ~50 µs) it grows until it covers the gap.
const (
	DefaultPollWindow = 50 * time.Microsecond // the floor, and where a window starts
	MaxPollWindow     = 2 * time.Millisecond  // the ceiling
)

// PollWindow is how long one side of the request path looks at the shared
// page before it sleeps on its eventfd, adapted the way KVM's halt polling
// adapts: a wait that slept and was woken soon after the window ended would
// have been caught by a longer window, so the window doubles; one woken long
// after (an idle guest, a slow device) was not worth polling for, so it
// halves. Both the vCPU (Dispatcher) and a device model (Conn.Serve) keep one.
type PollWindow struct {
	ns       atomic.Int64 // the window now
	min, max int64
}

// NewPollWindow returns a window that starts at, and never falls below, min
// (a negative min disables polling).
func NewPollWindow(min time.Duration) *PollWindow {
	p := &PollWindow{min: int64(min), max: int64(max(min, MaxPollWindow))}
	p.ns.Store(int64(min))
	return p
}

// Get returns the window now; 0 means do not poll.
func (p *PollWindow) Get() time.Duration {
	if p.min <= 0 {
		return 0
	}
	return time.Duration(p.ns.Load())
}

// Slept records a wait that polled for the whole window and then slept for
// late before what it waited for came.
func (p *PollWindow) Slept(late time.Duration) {
	if p.min <= 0 {
		return
	}
	w := p.ns.Load()
	switch {
	case int64(late) <= p.max && w < p.max:
		p.ns.Store(min(2*w, p.max))
	case int64(late) > p.max && w > p.min:
		p.ns.Store(max(w/2, p.min))
	}
}
