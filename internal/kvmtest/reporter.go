package kvmtest

import (
	"encoding/binary"
	"sync"
	"testing"
	"time"
)

// Reporter is a bus device for tests: registered on a tiny guest's report port
// (guest.PortReport) it collects every value the guest writes there, in order.
// It satisfies devices.Device. The zero value is ready to use.
type Reporter struct {
	mu      sync.Mutex
	vals    []uint64
	changed chan struct{} // gets a value after each write
}

// NewReporter returns an empty Reporter.
func NewReporter() *Reporter { return &Reporter{} }

func (r *Reporter) notify() chan struct{} {
	if r.changed == nil {
		r.changed = make(chan struct{}, 1)
	}
	return r.changed
}

// Read answers nothing: the port is write-only.
func (r *Reporter) Read(_ uint64, _ []byte) {}

// Write records one value (1 to 8 bytes, little-endian).
func (r *Reporter) Write(_ uint64, d []byte) {
	var b [8]byte
	copy(b[:], d)
	r.mu.Lock()
	r.vals = append(r.vals, binary.LittleEndian.Uint64(b[:]))
	ch := r.notify()
	r.mu.Unlock()
	select {
	case ch <- struct{}{}:
	default:
	}
}

// Values returns a copy of what the guest has reported so far.
func (r *Reporter) Values() []uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]uint64(nil), r.vals...)
}

// Reset forgets the values reported so far.
func (r *Reporter) Reset() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.vals = nil
}

// Await waits until the guest has reported at least n values, failing t after
// ten seconds.
func (r *Reporter) Await(t testing.TB, n int) {
	t.Helper()
	r.mu.Lock()
	ch := r.notify()
	r.mu.Unlock()
	timeout := time.After(10 * time.Second)
	for len(r.Values()) < n {
		select {
		case <-ch:
		case <-timeout:
			t.Fatalf("guest reported %#x, want %d values", r.Values(), n)
		}
	}
}
