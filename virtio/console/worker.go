package console

import (
	"context"
	"errors"
	"log/slog"

	"ember/internal/wake"
	"ember/memory"
	"ember/virtio"
)

// maxWrite is the most guest bytes written to Output in one Write: between
// two, the transmit worker checks for a Reset, so a driver that posts a
// chain of gigabytes cannot hold a Reset for as long as Output takes them.
const maxWrite = 64 << 10

// worker serves one queue of one activation on its own goroutine.
type worker struct {
	d         *Device
	mem       *memory.Guest
	q         *virtio.Queue
	index     int // ReceiveQueue or TransmitQueue
	interrupt func(queue int)
	kick      wake.Signal   // a pending notification
	stop      wake.Stop     // given by Reset
	done      chan struct{} // closed when the goroutine returns
	broken    bool          // the driver broke the queue: nothing more is served
	malformed int           // malformed chains seen; only the first is logged above Debug
	outErr    bool          // an Output error was logged
}

// newWorker returns the worker of queue index.
func newWorker(d *Device, mem *memory.Guest, q *virtio.Queue, index int, interrupt func(int)) *worker {
	return &worker{
		d: d, mem: mem, q: q, index: index, interrupt: interrupt,
		kick: wake.NewSignal(), stop: wake.NewStop(), done: make(chan struct{}),
	}
}

// stopped says whether Reset has asked the worker to return.
func (w *worker) stopped() bool { return w.stop.Stopped() }

// next pops the next well-formed chain, returning malformed ones to the
// driver empty on the way. It returns nil when the queue is empty, when the
// driver broke it (the worker then serves it no more), or at a Reset.
func (w *worker) next() *virtio.Chain {
	for !w.broken && !w.stopped() {
		c, err := w.q.Pop(w.mem)
		var ce *virtio.ChainError
		switch {
		case errors.As(err, &ce):
			w.reject(ce.Head, "malformed descriptor chain", "err", err)
		case err != nil:
			w.fail(err)
		case c != nil:
			return c
		default:
			return nil
		}
	}
	return nil
}

// reject logs a chain the device will not serve and returns it to the
// driver with nothing written. A head outside the queue cannot be returned
// (Push refuses it); that chain is only dropped.
func (w *worker) reject(head uint16, why string, args ...any) {
	w.malformed++
	level := slog.LevelWarn
	if w.malformed > 1 {
		level = slog.LevelDebug // one per activation above Debug: a driver cannot flood the log
	}
	w.d.log.Log(context.Background(), level, "virtio-console: "+why+"; returned empty",
		append([]any{"queue", w.index, "head", head, "malformed", w.malformed}, args...)...)
	if head < w.q.Size {
		w.push(head, 0)
	}
}

// push returns a chain to the driver with written bytes in its writable
// buffers; a queue Push cannot write to is broken.
func (w *worker) push(head uint16, written uint32) {
	if err := w.q.Push(w.mem, head, written); err != nil {
		w.fail(err)
	}
}

// fail stops serving a queue the driver broke. The device would be
// DEVICE_NEEDS_RESET, which virtio.Device cannot report after Activate; the
// driver's reset is what brings the queue back.
func (w *worker) fail(err error) {
	w.d.log.Error("virtio-console: queue stopped until the driver resets the device", "queue", w.index, "err", err)
	w.broken = true
}

// notifyDriver interrupts the driver if what the worker put in the used
// ring calls for it (chains pushed before the queue broke included).
func (w *worker) notifyDriver() {
	if w.q.NeedsInterrupt(w.mem) {
		w.interrupt(w.index)
	}
}
