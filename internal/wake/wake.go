// Package wake holds the two signals ember's worker goroutines are woken
// and ended by: a wake-up that merges with one still pending (a virtio
// queue's notification, a timer queue's new head) and a stop that is given
// once and seen by every goroutine of a run (a device's Reset).
//
// Both are channels, so a worker waits on them in its own select beside
// whatever else it waits for.
package wake

// Signal is a wake-up of capacity one: Send never blocks, and a Send while
// one is pending merges with it. A worker that wakes must therefore look at
// everything there is to do (drain the whole queue), not at one item.
type Signal chan struct{}

// NewSignal returns a Signal with nothing pending.
func NewSignal() Signal { return make(Signal, 1) }

// Send makes a wake-up pending unless one already is.
func (s Signal) Send() {
	select {
	case s <- struct{}{}:
	default:
	}
}

// Stop is closed, once, to tell every goroutine of a run to return.
type Stop chan struct{}

// NewStop returns a Stop not yet given.
func NewStop() Stop { return make(Stop) }

// Stopped reports whether the Stop has been given (closed).
func (s Stop) Stopped() bool { return Closed(s) }

// Closed reports, without blocking, whether ch is closed: a Stop, or any
// done channel that is closed once to say a run has ended.
func Closed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}
