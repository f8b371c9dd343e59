package net

import (
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"ember/internal/wake"
	"ember/memory"
	"ember/virtio"
	"ember/virtio/internal/devthread"
	"ember/virtio/internal/queuefd"
)

// pair is one queue pair of a Device — its receive and transmit queues —
// and the backend it moves their packets to and from: the whole device
// when it has one pair, one of a multi-queue TAP's queues when it has
// several. It is served by a thread of the device's (a loop on a thread,
// its own or shared with other pairs), by goroutines, or by the kernel's
// vhost-net, and has a virtio.Device's Activate, Notify
// and Reset for its two queues.
type pair struct {
	backend Backend
	log     *slog.Logger
	stats   *counters // the Device's, which every pair counts in

	lifecycle sync.Mutex // serialises Activate, Reset and Close
	mu        sync.Mutex // guards run against Notify
	run       *activation
	closed    bool
	events    atomic.Pointer[virtio.Events] // the transport's, if it gave them (SetEvents)
	vhost     *vhostDevice                  // Config.Vhost: the queues are vhost-net's
	vrun      *vhostRun                     // while vhost serves an activation; guarded by mu
}

// SetEvents is virtio.EventSource: a queue the driver broke becomes
// DEVICE_NEEDS_RESET.
func (d *pair) SetEvents(e virtio.Events) { d.events.Store(&e) }

// activation is what one Activate started: the pair's loop on a device's
// thread, or for a backend it cannot wait on itself a goroutine per queue.
type activation struct {
	stop  wake.Stop      // given by Reset
	loop  *loop          // served by a device's thread; nil: goroutines
	kicks []wake.Signal  // the goroutines': per queue; nil for a queue not served
	wg    sync.WaitGroup // the goroutines
}

// newPair returns an inactive queue pair on backend b, with its own
// vhost-net if vhost. owned says New opened b: then a pair that cannot be
// made closes it.
func newPair(b Backend, owned, vhost bool, log *slog.Logger, stats *counters) (*pair, error) {
	// Reset interrupts a goroutine blocked in the backend with a deadline:
	// a backend without them could keep Reset waiting for ever. (The
	// device's thread, which serves a FileBackend, never blocks in it.)
	if err := needDeadlines(b); err != nil {
		if owned {
			b.Close()
		}
		return nil, fmt.Errorf("virtio-net: the backend cannot be interrupted (deadlines): %w", err)
	}
	d := &pair{backend: b, log: log, stats: stats}
	if vhost {
		var err error
		if d.vhost, err = openVhost(b); err != nil {
			if owned {
				b.Close()
			}
			return nil, err
		}
	}
	return d, nil
}

// needDeadlines checks that a backend the device serves on goroutines
// takes deadlines.
func needDeadlines(b Backend) error {
	if _, ok := b.(pollable); ok {
		return nil
	}
	return b.SetDeadline(time.Time{})
}

// Close resets the pair and closes its backend (and its vhost-net).
func (d *pair) Close() error {
	d.lifecycle.Lock()
	defer d.lifecycle.Unlock()
	d.reset()
	if d.closed {
		return nil
	}
	d.closed = true
	if d.vhost != nil {
		d.vhost.net.Close()
	}
	if err := d.backend.Close(); err != nil {
		return fmt.Errorf("virtio-net: closing the backend: %w", err)
	}
	return nil
}

// features returns the feature bits the pair's data path can serve.
func (d *pair) features() uint64 {
	if d.vhost != nil {
		return d.vhost.offered()
	}
	return offered
}

// Activate passes the receive offloads the driver accepted to the backend
// and starts a worker for each queue the driver enabled: a thread of the
// pair's own for a backend it can wait on.
func (d *pair) Activate(mem *memory.Guest, features uint64, queues []*virtio.Queue, interrupt func(queue int)) error {
	return d.activate(mem, features, queues, interrupt, nil)
}

// activate is Activate; a pair the device's thread th is to serve with
// others joins it (th not yet started; the caller starts it), unless
// vhost-net serves the pair.
func (d *pair) activate(mem *memory.Guest, features uint64, queues []*virtio.Queue, interrupt func(queue int), th *devthread.Thread) error {
	if len(queues) != 2 {
		return fmt.Errorf("virtio-net: a queue pair activated with %d queues, want 2", len(queues))
	}
	if features&virtio.FeatureVersion1 == 0 {
		return errors.New("virtio-net: the driver did not accept VERSION_1 (legacy drivers are not supported)")
	}
	d.lifecycle.Lock()
	defer d.lifecycle.Unlock()
	if d.closed {
		return errors.New("virtio-net: activated after Close")
	}
	if d.running() {
		return errors.New("virtio-net: activated twice without a reset")
	}
	if err := d.backend.SetOffload(tunOffload(features)); err != nil {
		return fmt.Errorf("virtio-net: receive offloads %#x: %w", tunOffload(features), err)
	}
	if d.vhost != nil {
		return d.activateVhost(mem, features, queues, interrupt)
	}
	a := &activation{stop: wake.NewStop()}
	workers := make([]*worker, 2)
	for i, q := range queues {
		if q == nil {
			d.log.Debug("virtio-net: queue left disabled by the driver", "queue", i)
			continue
		}
		workers[i] = &worker{d: d, mem: mem, q: q, index: i, features: features, interrupt: interrupt, stop: a.stop}
	}
	if p, ok := d.backend.(pollable); ok {
		return d.startLoop(a, p.fileBackend(), queues, workers, th)
	}
	d.startWorkers(a, workers)
	return nil
}

// startLoop serves the activation on th, or on a thread of its own if th
// is nil. The caller holds d.lifecycle.
func (d *pair) startLoop(a *activation, b *FileBackend, queues []*virtio.Queue, workers []*worker, th *devthread.Thread) error {
	kicks, err := queuefd.NewKicks(queues)
	if err != nil {
		return err
	}
	var rx *receiver
	var tx *transmitter
	if w := workers[RXQueue]; w != nil {
		rx = newReceiver(w, b.tryRead, b.tryReadv)
	}
	if w := workers[TXQueue]; w != nil {
		tx = newTransmitter(w, b.tryWrite)
	}
	if a.loop, err = newLoop(d, b, kicks, rx, tx); err != nil {
		return err // newLoop closed kicks
	}
	own := th == nil
	if own {
		if th, err = d.newThread(d.log); err != nil {
			a.loop.close()
			return err
		}
	}
	if err := a.loop.attach(th); err != nil {
		if own {
			th.Stop()
		}
		a.loop.close()
		return err
	}
	d.mu.Lock()
	d.run = a
	d.mu.Unlock()
	if own {
		th.Start()
	}
	return nil
}

// newThread makes a thread, not yet started, for this pair and any others
// of its device: one that cannot wait any more marks the device
// DEVICE_NEEDS_RESET (the pairs share the transport's events).
func (d *pair) newThread(log *slog.Logger) (*devthread.Thread, error) {
	return devthread.New(ThreadName, log, func(err error) {
		if e := d.events.Load(); e != nil {
			(*e).NeedsReset(err)
		}
	})
}

// startWorkers serves the activation on a goroutine per queue, which wait
// in the backend's ReadPacket and WritePacket. The caller holds
// d.lifecycle.
func (d *pair) startWorkers(a *activation, workers []*worker) {
	a.kicks = make([]wake.Signal, len(workers))
	for i, w := range workers {
		if w != nil {
			a.kicks[i] = wake.NewSignal()
			w.kick = a.kicks[i]
		}
	}
	d.mu.Lock()
	d.run = a // before the workers start: no notification is lost
	d.mu.Unlock()
	for _, w := range workers {
		if w != nil {
			a.wg.Add(1)
			go a.serve(w)
		}
	}
}

// serve runs w's queue until Reset.
func (a *activation) serve(w *worker) {
	defer a.wg.Done()
	if w.index == RXQueue {
		newReceiver(w, w.d.backend.ReadPacket, nil).run()
	} else {
		newTransmitter(w, w.d.backend.WritePacket).run()
	}
}

// running says whether the device is active.
func (d *pair) running() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.run != nil || d.vrun != nil
}

// Notify wakes queue's worker: the driver posted receive buffers or
// packets to send. A kick that arrives while one is pending merges with it;
// the worker takes every chain there is at each.
func (d *pair) Notify(queue int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.vrun != nil {
		d.vrun.fds.Notify(queue)
		return
	}
	switch a := d.run; {
	case a == nil:
	case a.loop != nil:
		a.loop.kicks.Notify(queue)
	case queue >= 0 && queue < len(a.kicks) && a.kicks[queue] != nil:
		a.kicks[queue].Send()
	}
}

// Reset stops the workers and waits until they have returned. A worker
// blocked in the backend is woken by a deadline in the past, which is
// cleared again before Reset returns; a packet received but not yet
// delivered is dropped with the queues it was for.
func (d *pair) Reset() {
	d.lifecycle.Lock()
	defer d.lifecycle.Unlock()
	d.reset()
}

// reset is Reset; the caller holds d.lifecycle.
func (d *pair) reset() {
	d.mu.Lock()
	a, v := d.run, d.vrun
	d.run, d.vrun = nil, nil
	d.mu.Unlock()
	if v != nil {
		d.stopVhost(v)
	}
	if a == nil {
		return
	}
	close(a.stop)
	if a.loop != nil {
		a.loop.th.Stop() // the thread's other pairs, if it has any, stop with it: the device resets them all
		a.loop.close()
		return
	}
	if err := d.backend.SetDeadline(time.Unix(1, 0)); err != nil {
		d.log.Error("virtio-net: cannot interrupt the backend; reset waits for its next packet", "err", err)
	}
	a.wg.Wait()
	if err := d.backend.SetDeadline(time.Time{}); err != nil {
		d.log.Error("virtio-net: clearing the backend's deadline", "err", err)
	}
}
