package vsock

import (
	"errors"

	"ember/virtio"
)

// maxCtrl bounds the replies that belong to no connection (RSTs) waiting
// for rx buffers. When it is reached the tx worker takes no more packets
// until the rx worker has delivered some: the "additional resources" of
// §5.10.6 ("Virtqueue Flow Control") are exhausted, and the guest, which
// must process rx while tx is full, is what frees them.
const maxCtrl = 64

// serveTX takes the guest's packets from the tx queue at every
// notification until Reset. Nothing it does blocks on a host program: a
// connect goes to a goroutine of its own, guest bytes to a connection's
// bounded buffer.
func (s *session) serveTX() {
	defer s.wg.Done()
	w := &worker{s: s, q: s.txq, index: TXQueue, kick: s.txKick}
	for s.wait(w.kick) {
		if !w.drainTX() {
			<-s.stop
			return
		}
	}
}

// drainTX handles every packet the driver made available, then interrupts
// the driver if it wants to be told; false if the driver broke the queue.
func (w *worker) drainTX() bool {
	defer w.notifyDriver()
	for w.waitSpace() {
		c := w.pop()
		if c == nil {
			break
		}
		w.s.receive(c)
		if !w.push(c.Head, 0) {
			break
		}
	}
	return !w.broken
}

// waitSpace waits until a packet from the guest can be handled without
// overrunning maxCtrl, returning the chains taken so far to the driver
// first; false at a Reset.
func (w *worker) waitSpace() bool {
	for {
		w.s.d.mu.Lock()
		full := len(w.s.ctrl) >= maxCtrl
		w.s.d.mu.Unlock()
		if !full {
			return !w.s.stopped()
		}
		w.notifyDriver()
		if !w.s.wait(w.s.space) {
			return false
		}
	}
}

// receive handles one packet from the guest. Writable buffers in a tx chain
// are ignored; the chain goes back to the driver with nothing written.
func (s *session) receive(c *virtio.Chain) {
	p, err := parsePacket(c)
	if errors.Is(err, errShort) {
		s.d.refuse("tx packet dropped", "err", err)
		return
	}
	s.d.mu.Lock()
	defer s.d.mu.Unlock()
	if !s.stopped() {
		s.dispatch(p, err)
	}
}
