// Package intrmon is the interrupt monitor of a VM, what ACRN's
// HC_VM_INTR_MONITOR reads and steers: it counts the interrupts injected
// into the VM by source, and, while a delay is set (a Service VM damping an
// interrupt storm, INTR_CMD_DELAY_INT), postpones every injection by it,
// keeping their order. The sources and what an injection does are the
// caller's: a Monitor sees numbers and functions.
package intrmon

import (
	"errors"
	"sort"
	"sync"
	"sync/atomic"
	"time"
)

// MaxPending bounds the injections a Monitor holds back; Inject refuses more
// with ErrQueueFull.
const MaxPending = 1024

// ErrQueueFull is Inject's error for an injection it would have to postpone
// beyond MaxPending pending ones.
var ErrQueueFull = errors.New("intrmon: too many delayed injections")

// Monitor is one VM's interrupt monitor. The zero value counts nothing, has
// no delay and is ready to use; Close it when the VM goes. Its methods may be
// called from many goroutines (vCPU threads, hypercalls) at once.
type Monitor struct {
	mu     sync.Mutex
	counts map[uint32]uint64 // source -> injections
	delay  atomic.Int64      // nanoseconds; 0: inject at once
	q      queue             // the injections delay postpones (queue.go)
}

// Count records one injection from source.
func (m *Monitor) Count(source uint32) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.counts == nil {
		m.counts = map[uint32]uint64{}
	}
	m.counts[source]++
}

// SourceCount is how many injections came from one source.
type SourceCount struct {
	Source uint32
	N      uint64
}

// Counts returns the injections counted so far, by source in ascending
// order.
func (m *Monitor) Counts() []SourceCount {
	m.mu.Lock()
	out := make([]SourceCount, 0, len(m.counts))
	for s, n := range m.counts {
		out = append(out, SourceCount{s, n})
	}
	m.mu.Unlock()
	sort.Slice(out, func(i, j int) bool { return out[i].Source < out[j].Source })
	return out
}

// SetDelay postpones every later injection by d; 0 (or less) cancels the
// delay. Injections already postponed keep their time.
func (m *Monitor) SetDelay(d time.Duration) { m.delay.Store(int64(d)) }

// Inject runs f now and returns its error, or queues it to run after the
// delay SetDelay set (its error then has no caller to go to), and returns
// ErrQueueFull if the queue is full or the Monitor closed. While a delay is
// in force every injection is queued, and after it is cancelled injections
// still go behind those queued before, so none overtakes an earlier one: a
// line set high and then low is low afterwards.
func (m *Monitor) Inject(f func() error) error {
	d := time.Duration(m.delay.Load())
	if d <= 0 {
		if !m.q.busy() {
			return f()
		}
		d = 0 // injections queued before the delay was cancelled go first
	}
	if !m.q.push(time.Now().Add(d), f) {
		return ErrQueueFull
	}
	return nil
}

// Close drops the injections still postponed and waits for the one running,
// if any: the VM is going.
func (m *Monitor) Close() { m.q.close() }
