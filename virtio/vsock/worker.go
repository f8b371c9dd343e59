package vsock

import (
	"errors"

	"ember/internal/wake"
	"ember/virtio"
)

// worker is what the rx and tx goroutines share: one queue of a session.
type worker struct {
	s      *session
	q      *virtio.Queue
	index  int         // RXQueue or TXQueue
	kick   wake.Signal // the driver notified the queue
	broken bool        // the driver broke the queue: it is served no more
}

// pop returns the next well-formed chain the driver made available, or nil
// when there is none, when the driver broke the queue, or at a Reset. A
// malformed chain is logged and returned with nothing written (or only
// dropped, if its head is outside the queue and so cannot be returned).
func (w *worker) pop() *virtio.Chain {
	for !w.broken && !w.s.stopped() {
		c, err := w.q.Pop(w.s.mem)
		var ce *virtio.ChainError
		switch {
		case errors.As(err, &ce):
			w.s.d.refuse("malformed descriptor chain returned empty", "queue", w.index, "err", err)
			if ce.Head < w.q.Size {
				w.push(ce.Head, 0)
			}
		case err != nil:
			w.fail(err)
		default:
			return c
		}
	}
	return nil
}

// push returns a chain to the driver with written bytes in its writable
// buffers; false if the queue is broken.
func (w *worker) push(head uint16, written uint32) bool {
	if err := w.q.Push(w.s.mem, head, written); err != nil {
		w.fail(err)
	}
	return !w.broken
}

// fail stops serving a queue the driver broke until Reset. The device
// would be DEVICE_NEEDS_RESET, which virtio.Device cannot report after
// Activate; the driver's reset is what brings the queue back.
func (w *worker) fail(err error) {
	w.s.d.log.Error("virtio-vsock: queue stopped until the driver resets the device", "queue", w.index, "err", err)
	w.broken = true
}

// notifyDriver interrupts the driver if what the worker put in the used
// ring calls for it.
func (w *worker) notifyDriver() {
	if w.q.NeedsInterrupt(w.s.mem) {
		w.s.interrupt(w.index)
	}
}
