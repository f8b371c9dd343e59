package pci

import "ember/virtio"

// directCall is where a queue's calls go when its device takes them on an
// eventfd of its own (virtio.QueueEventFDs): through the device's relay,
// or straight to the guest on an MSI-X vector's irqfd.
type directCall struct {
	vector int // the vector whose FDVector the call eventfd is bound to; -1: the device relays
	fd     int // the bound eventfd
}

// relayAll records every queue's calls as relayed, as at power-on.
func (f *Function) relayAll() {
	for q := range f.calls {
		f.calls[q] = directCall{vector: -1, fd: -1}
	}
}

// routeCalls binds each queue's call eventfd to its MSI-X vector's irqfd
// where KVM can deliver the calls as the function would (the device
// active, MSI-X on, the vector live and routed to an FDVector), and gives
// the others back to the device's relay, which interrupts through the
// function: a masked vector's pending bit, INTx's ISR bit and line, or
// KVM_SIGNAL_MSI. A call signalled while the eventfd changes hands is
// delivered once: the device reports one its relay did not read, and KVM
// or the relay takes every later one. The caller holds f.mu.
func (f *Function) routeCalls() {
	d, ok := f.dev.(virtio.QueueEventFDs)
	if !ok {
		return
	}
	for q := range f.calls {
		want := f.callVector(q)
		if want == f.calls[q].vector {
			continue
		}
		if f.calls[q].vector >= 0 {
			f.relayCalls(q, d)
		}
		if want >= 0 {
			f.bindCalls(q, want, d)
		}
	}
}

// callVector returns the vector queue q's calls may be bound to, or -1.
func (f *Function) callVector(q int) int {
	if !f.regs.Active || f.callsRelayed || q >= len(f.regs.Queues) || !f.regs.Queues[q].Enable {
		return -1
	}
	v := int(f.regs.Queues[q].Vector)
	if _, ok := f.msix.fdVector(v); !ok {
		return -1
	}
	return v
}

// bindCalls stops the device's relay of queue q's calls and binds its call
// eventfd to vector v, delivering a call the relay left pending. If the
// binding fails, the relay goes on, and does for every queue until the
// function is reset.
func (f *Function) bindCalls(q, v int, d virtio.QueueEventFDs) {
	fd, ok := d.CallFD(q)
	if !ok {
		return
	}
	vec, _ := f.msix.fdVector(v)
	pending := d.RelayCalls(q, false)
	if err := vec.Bind(fd); err != nil {
		f.log.Warn("virtio-pci: a queue's call eventfd could not be bound to its MSI-X vector's irqfd; ember relays the function's calls until it is reset",
			"queue", q, "vector", v, "err", err)
		f.callsRelayed = true
		d.RelayCalls(q, true)
	} else {
		f.calls[q] = directCall{vector: v, fd: fd}
		f.stats.DirectCalls++
	}
	if pending {
		f.msix.deliver(v)
	}
}

// relayCalls unbinds queue q's call eventfd from its vector and hands it
// back to the device's relay, which reads what was signalled since.
func (f *Function) relayCalls(q int, d virtio.QueueEventFDs) {
	c := f.calls[q]
	if vec, ok := f.msix.vectors[c.vector].(FDVector); ok {
		if err := vec.Unbind(c.fd); err != nil {
			f.log.Error("virtio-pci: unbinding a queue's call eventfd from its MSI-X vector", "queue", q, "vector", c.vector, "err", err)
		}
	}
	f.calls[q] = directCall{vector: -1, fd: -1}
	f.stats.DirectCalls--
	d.RelayCalls(q, true)
}

// relayVector hands the calls bound to vector v back to the device's
// relay: the vector's Vector is about to be closed. The caller holds f.mu.
func (f *Function) relayVector(v int) {
	d, ok := f.dev.(virtio.QueueEventFDs)
	if !ok {
		return
	}
	for q, c := range f.calls {
		if c.vector == v {
			f.relayCalls(q, d)
		}
	}
}

// kickDirect points the ioeventfd of each queue of the active device that
// has a kick eventfd at it (Config.Kick). The caller holds f.lifecycle.
func (f *Function) kickDirect() {
	d, ok := f.dev.(virtio.QueueEventFDs)
	if !ok || f.cfg.Kick == nil {
		return
	}
	for q := range f.kicked {
		fd, ok := d.KickFD(q)
		if !ok {
			continue
		}
		if err := f.cfg.Kick(q, fd); err != nil {
			f.log.Warn("virtio-pci: a queue's notifications could not go to its device's eventfd; ember passes them on", "queue", q, "err", err)
			continue
		}
		f.kicked[q] = true
	}
	f.countKicks()
}

// kickRelayed points every ioeventfd kickDirect moved back at the
// transport's own, before the device's eventfds close. The caller holds
// f.lifecycle.
func (f *Function) kickRelayed() {
	for q, k := range f.kicked {
		if !k {
			continue
		}
		if err := f.cfg.Kick(q, -1); err != nil {
			f.log.Error("virtio-pci: taking a queue's notifications back from its device's eventfd", "queue", q, "err", err)
		}
		f.kicked[q] = false
	}
	f.countKicks()
}

// countKicks updates Stats.DirectKicks.
func (f *Function) countKicks() {
	n := 0
	for _, k := range f.kicked {
		if k {
			n++
		}
	}
	f.mu.Lock()
	f.stats.DirectKicks = n
	f.mu.Unlock()
}

// stop takes the device's eventfds out of KVM and resets the device; when
// it returns, nothing of the device's session is bound anywhere. The
// caller holds f.lifecycle, not f.mu.
func (f *Function) stop() {
	f.mu.Lock()
	f.regs.Active = false
	f.routeCalls()
	f.mu.Unlock()
	f.kickRelayed()
	f.dev.Reset()
	f.mu.Lock()
	f.callsRelayed = false
	f.mu.Unlock()
}
