// Package devicetest holds fakes shared by the device models' tests: an
// interrupt line that records every level change and lets a test wait for a
// level without sleeping.
package devicetest

import (
	"context"
	"sync"
)

// IRQ is a fake devices.IRQLine. It records every SetLevel call in order, so
// a test can assert both the current level and the edges a PIC would see.
// The zero value is a line at low level with no history.
type IRQ struct {
	mu      sync.Mutex
	high    bool
	history []bool
	changed chan struct{} // closed and replaced on every SetLevel
}

// SetLevel records the new level.
func (l *IRQ) SetLevel(high bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.high = high
	l.history = append(l.history, high)
	if l.changed != nil {
		close(l.changed)
		l.changed = nil
	}
}

// High reports the current level.
func (l *IRQ) High() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.high
}

// History returns every level set so far, oldest first.
func (l *IRQ) History() []bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]bool(nil), l.history...)
}

// Rising counts the low-to-high transitions so far: the interrupts an
// edge-triggered PIC would have latched.
func (l *IRQ) Rising() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n, prev := 0, false
	for _, h := range l.history {
		if h && !prev {
			n++
		}
		prev = h
	}
	return n
}

// Reset forgets the history (the level is kept).
func (l *IRQ) Reset() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.history = nil
}

// Wait blocks until the line is at level high, or ctx is done.
func (l *IRQ) Wait(ctx context.Context, high bool) error {
	for {
		l.mu.Lock()
		if l.high == high {
			l.mu.Unlock()
			return nil
		}
		if l.changed == nil {
			l.changed = make(chan struct{})
		}
		ch := l.changed
		l.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}
