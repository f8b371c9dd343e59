package net

import (
	"errors"
	"time"

	"ember/internal/wake"
	"ember/memory"
	"ember/virtio"
)

// maxWarnings is how many dropped packets and chains a worker logs at Warn
// in one activation; later ones go to Debug, so neither a hostile driver
// nor a noisy network can flood the host's log.
const maxWarnings = 10

// worker is what the receive and transmit goroutines share: one queue of
// one activation.
type worker struct {
	d         *pair
	mem       *memory.Guest
	q         *virtio.Queue
	index     int    // RXQueue or TXQueue
	features  uint64 // as the driver accepted them
	interrupt func(queue int)
	kick      wake.Signal // the driver notified the queue
	stop      wake.Stop   // given by Reset
	warnings  int         // logged at Warn so far
	failed    bool        // the driver broke the queue: not served until Reset
}

// warn logs a dropped packet or chain, at Warn for the first maxWarnings of
// the activation and at Debug after.
func (w *worker) warn(msg string, args ...any) {
	args = append(args, "queue", w.index)
	w.warnings++
	switch {
	case w.warnings < maxWarnings:
		w.d.log.Warn(msg, args...)
	case w.warnings == maxWarnings:
		w.d.log.Warn(msg+" (further drops of this queue are logged at debug level)", args...)
	default:
		w.d.log.Debug(msg, args...)
	}
}

// stopped says whether Reset has stopped the worker.
func (w *worker) stopped() bool { return w.stop.Stopped() }

// wait waits for the driver to notify the queue; false if Reset came first.
func (w *worker) wait() bool {
	select {
	case <-w.kick:
		return true
	case <-w.stop:
		return false
	}
}

// pause waits for d, or less if Reset comes first (then false).
func (w *worker) pause(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-w.stop:
		return false
	}
}

// popInto returns the next chain the driver made available, popped into c,
// whose slices it reuses (into a new chain if c is nil), or nil when there
// is none: a worker that keeps its chains allocates none a packet. A
// malformed chain is logged and returned with nothing written (or only
// dropped, if its head is outside the queue and so cannot be returned); an
// error is a queue the driver broke.
func (w *worker) popInto(c *virtio.Chain) (*virtio.Chain, error) {
	if c == nil {
		c = new(virtio.Chain)
	}
	for {
		ok, err := w.q.PopInto(w.mem, c)
		if err == nil && ok {
			return c, nil // the common case, without errors.As's allocation
		}
		var ce *virtio.ChainError
		if !errors.As(err, &ce) {
			if !ok {
				return nil, err
			}
			return c, nil
		}
		w.warn("virtio-net: malformed chain dropped", "err", err)
		if ce.Head >= w.q.Size {
			continue
		}
		if err := w.q.Push(w.mem, ce.Head, 0); err != nil {
			return nil, err
		}
	}
}

// notifyDriver interrupts the driver if what the worker put in the used
// ring calls for it.
func (w *worker) notifyDriver() {
	if w.q.NeedsInterrupt(w.mem) {
		w.interrupt(w.index)
	}
}

// fail stops serving a queue the driver broke until Reset, and tells the
// transport the device needs one (DEVICE_NEEDS_RESET); the driver's reset
// brings it back. A worker on a goroutine of its own waits for Reset
// after it (wait true); the device's thread serves the other queue on.
func (w *worker) fail(err error, wait bool) {
	w.failed = true
	w.d.log.Error("virtio-net: queue stopped until the driver resets the device", "queue", w.index, "err", err)
	if e := w.d.events.Load(); e != nil {
		(*e).NeedsReset(err)
	}
	if wait {
		<-w.stop
	}
}
