package vsock

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"ember/internal/wake"
	"ember/memory"
	"ember/virtio"
)

// session is one activation of the device: its queues, the goroutines that
// serve them, and its connections. Reset ends it, and every connection with
// it. Fields after wg are guarded by Device.mu.
type session struct {
	d         *Device
	mem       *memory.Guest
	rxq, txq  *virtio.Queue
	interrupt func(queue int)
	serving   bool // rx and tx are both enabled: the device serves connections

	ctx    context.Context // cancelled by Reset: stops dials
	cancel context.CancelFunc
	rxKick wake.Signal // the driver added rx buffers
	txKick wake.Signal // the driver added tx packets
	work   wake.Signal // a packet for the guest is waiting
	space  wake.Signal // ctrl has room again
	stop   wake.Stop   // given by Reset
	wg     sync.WaitGroup

	conns    map[key]*conn
	ports    map[uint32]int // local (host) port -> connections using it
	nextPort uint32         // where the search for a free host port starts
	ready    []*conn        // connections with a packet for the guest, in turn
	ctrl     []header       // replies that belong to no connection (RST)
}

// Activate starts the device: a goroutine for the rx queue and one for the
// tx queue. The event queue's buffers are left with the driver, as the
// device has no event to send. A driver that left rx or tx disabled gets a
// device that serves nothing.
func (d *Device) Activate(mem *memory.Guest, features uint64, queues []*virtio.Queue, interrupt func(queue int)) error {
	if len(queues) != 3 {
		return fmt.Errorf("virtio-vsock: activated with %d queues, want 3", len(queues))
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	switch {
	case d.closed:
		return errors.New("virtio-vsock: activated after Close")
	case d.run != nil:
		return errors.New("virtio-vsock: activated twice without a reset")
	}
	s := newSession(d, mem, queues[RXQueue], queues[TXQueue], interrupt)
	d.run = s
	if !s.serving {
		d.log.Warn("virtio-vsock: the driver left the rx or tx queue disabled; the device serves nothing until it resets it")
		return nil
	}
	s.wg.Add(2)
	go s.serveRX()
	go s.serveTX()
	return nil
}

// newSession returns the session of one activation.
func newSession(d *Device, mem *memory.Guest, rxq, txq *virtio.Queue, interrupt func(int)) *session {
	ctx, cancel := context.WithCancel(context.Background())
	return &session{
		d: d, mem: mem, rxq: rxq, txq: txq, interrupt: interrupt,
		serving: rxq != nil && txq != nil,
		ctx:     ctx, cancel: cancel,
		rxKick: wake.NewSignal(), txKick: wake.NewSignal(),
		work: wake.NewSignal(), space: wake.NewSignal(),
		stop:  wake.NewStop(),
		conns: map[key]*conn{}, ports: map[uint32]int{}, nextPort: firstHostPort,
	}
}

// Notify wakes the worker of the rx or tx queue. The event queue needs no
// worker: the device only holds its buffers.
func (d *Device) Notify(queue int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.run == nil {
		return
	}
	switch queue {
	case RXQueue:
		d.run.rxKick.Send()
	case TXQueue:
		d.run.txKick.Send()
	}
}

// Reset ends the activation: every connection is closed on the host side
// (the guest's side goes with the driver's reset, so no RST is sent), and
// the queue workers and connection goroutines have returned when it does.
// The listener stays: host programs may connect again once the driver is
// back.
func (d *Device) Reset() {
	d.mu.Lock()
	s := d.run
	d.run = nil
	if s != nil {
		s.end()
	}
	d.mu.Unlock()
	if s != nil {
		s.wg.Wait()
	}
}

// end closes every connection and tells every goroutine of the session to
// return. The caller holds d.mu.
func (s *session) end() {
	for _, c := range s.conns {
		c.closeHost()
		c.state = stateClosed
	}
	s.conns, s.ports, s.ready, s.ctrl = map[key]*conn{}, map[uint32]int{}, nil, nil
	close(s.stop)
	s.cancel()
}

// stopped says whether Reset has ended the session.
func (s *session) stopped() bool { return s.stop.Stopped() }

// wait waits for a token on ch; false if Reset came first.
func (s *session) wait(ch wake.Signal) bool {
	select {
	case <-ch:
		return true
	case <-s.stop:
		return false
	}
}
