package net

import (
	"errors"
	"fmt"
	"os"
	"sync"
	"unsafe"

	"ember/memory"
	"ember/virtio"
	"ember/virtio/internal/queuefd"
	"ember/virtio/vhost"
)

// vhostNeeds are the transport's features (virtio.TransportFeatures), which
// every driver of ember's gets offered: a vhost-net without one of them
// cannot serve ember's queues.
const vhostNeeds = virtio.TransportFeatures

// vhostQueueFeatures are the negotiated features vhost-net is told of:
// those of the rings and of the header's size. The offloads are the TAP's
// business (TUNSETOFFLOAD); the MAC and the status are ember's.
const vhostQueueFeatures = virtio.TransportFeatures | FeatureMrgRxbuf

// vhostDevice is a device's in-kernel data path: /dev/vhost-net, with
// the features that kernel implements, and the TAP it moves packets to.
type vhostDevice struct {
	net      *vhost.Net
	features uint64
	tap      *TAP
}

// openVhost opens /dev/vhost-net for a device on tap.
func openVhost(b Backend) (*vhostDevice, error) {
	tap, ok := b.(*TAP)
	if !ok {
		return nil, errors.New("virtio-net: vhost needs a TAP backend (tap=NAME)")
	}
	n, err := vhost.OpenNet()
	if err != nil {
		return nil, fmt.Errorf("virtio-net: %w", err)
	}
	f, err := n.Features()
	if err != nil {
		n.Close()
		return nil, fmt.Errorf("virtio-net: %w", err)
	}
	if missing := vhostNeeds &^ f; missing != 0 {
		n.Close()
		return nil, fmt.Errorf("virtio-net: this kernel's vhost-net lacks feature bits %#x that ember's transport offers", missing)
	}
	return &vhostDevice{net: n, features: f, tap: tap}, nil
}

// offered is what the device offers a driver when vhost serves its queues:
// mergeable receive buffers only if this vhost-net merges.
func (v *vhostDevice) offered() uint64 {
	if v.features&FeatureMrgRxbuf == 0 {
		return offered &^ FeatureMrgRxbuf
	}
	return offered
}

// vhostRun is one activation served by vhost: the queues' eventfds, and
// the goroutine that watches vhost's error eventfd.
type vhostRun struct {
	fds    *queuefd.Set
	queues []bool   // enabled, by index
	errFD  *os.File // vhost signals it when the driver broke a queue
	wg     sync.WaitGroup
}

// activateVhost hands the enabled queues to vhost-net on the device's TAP:
// the guest's RAM, each ring's place and size, a kick, a call and the error
// eventfd per queue. From then on KVM signals the kicks, vhost moves the
// packets, and its calls reach the guest through the transport (an irqfd,
// or the relays). The caller holds d.lifecycle.
func (d *pair) activateVhost(mem *memory.Guest, features uint64, queues []*virtio.Queue, interrupt func(int)) error {
	fds, err := queuefd.New(queues, interrupt, d.log)
	if err != nil {
		return err
	}
	r := &vhostRun{fds: fds, queues: make([]bool, len(queues))}
	if err := d.startVhost(r, mem, features, queues); err != nil {
		d.stopVhost(r)
		return err
	}
	d.mu.Lock()
	d.vrun = r
	fds.StartRelays() // under mu, as the transport's RelayCalls
	d.mu.Unlock()
	r.wg.Add(1)
	go d.watchVhost(r)
	return nil
}

// startVhost is activateVhost's ioctls.
func (d *pair) startVhost(r *vhostRun, mem *memory.Guest, features uint64, queues []*virtio.Queue) error {
	h := d.vhost.net
	if err := h.SetFeatures(features & vhostQueueFeatures); err != nil {
		return fmt.Errorf("virtio-net: %w", err)
	}
	if err := h.SetMemTable(vhostMemory(mem)); err != nil {
		return fmt.Errorf("virtio-net: %w", err)
	}
	efd, err := queuefd.NewEventFD()
	if err != nil {
		return err
	}
	r.errFD = os.NewFile(uintptr(efd), "vhost-err")
	for i, q := range queues {
		if q == nil {
			continue
		}
		r.queues[i] = true // stopVhost undoes what was done of it
		if err := d.startVhostQueue(r, mem, i, q, efd); err != nil {
			return fmt.Errorf("virtio-net: queue %d: %w", i, err)
		}
	}
	return nil
}

// startVhostQueue sets up queue i in vhost and starts it on the TAP.
func (d *pair) startVhostQueue(r *vhostRun, mem *memory.Guest, i int, q *virtio.Queue, errFD int) error {
	h := d.vhost.net
	addr, err := vhostRing(mem, i, q)
	if err != nil {
		return err
	}
	kick, _ := r.fds.Kick(i)
	call, _ := r.fds.Call(i)
	for _, step := range []func() error{
		func() error { return h.SetVringNum(i, q.Size) },
		func() error { return h.SetVringBase(i, 0) },
		func() error { return h.SetVringAddr(addr) },
		func() error { return h.SetVringKick(i, kick) },
		func() error { return h.SetVringCall(i, call) },
		func() error { return h.SetVringErr(i, errFD) },
		func() error {
			return d.vhost.tap.control(func(fd int) error { return h.NetSetBackend(i, fd) })
		},
	} {
		if err := step(); err != nil {
			return err
		}
	}
	return nil
}

// vhostMemory is the guest's RAM as vhost's memory table: each region's
// guest-physical range and where it is mapped in this process. The table
// is taken at activation; a device on a VM whose RAM map changes while it
// runs (memory.Guest.Map) is not served by vhost.
func vhostMemory(mem *memory.Guest) []vhost.MemoryRegion {
	var t []vhost.MemoryRegion
	for _, r := range mem.Regions() {
		t = append(t, vhost.MemoryRegion{GuestPhys: r.GPA, Size: r.Size, User: hostAddr(r.Host)})
	}
	return t
}

// vhostRing returns where queue q's rings are in this process, checked
// by virtio.Queue.Rings as ember's own queues are. The check matters:
// vhost reaches the rings at these addresses directly, not through the
// memory table (only the buffers' addresses go through it).
func vhostRing(mem *memory.Guest, i int, q *virtio.Queue) (vhost.VringAddr, error) {
	desc, avail, used, err := q.Rings(mem)
	if err != nil {
		return vhost.VringAddr{}, err
	}
	return vhost.VringAddr{Index: uint32(i), DescUser: hostAddr(desc), AvailUser: hostAddr(avail), UsedUser: hostAddr(used)}, nil
}

// hostAddr is the address of b's first byte in this process. Guest RAM is
// mapped outside Go's heap and never moves.
func hostAddr(b []byte) uint64 { return uint64(uintptr(unsafe.Pointer(unsafe.SliceData(b)))) }

// watchVhost logs a queue vhost stopped because the driver broke it, and
// marks the device DEVICE_NEEDS_RESET; it ends when the error eventfd is
// closed (stopVhost).
func (d *pair) watchVhost(r *vhostRun) {
	defer r.wg.Done()
	var buf [8]byte
	if _, err := r.errFD.Read(buf[:]); err != nil {
		return
	}
	err := errors.New("vhost-net found a descriptor it cannot use and stopped the queue")
	d.log.Error("virtio-net: queue stopped until the driver resets the device", "err", err)
	if e := d.events.Load(); e != nil {
		(*e).NeedsReset(err)
	}
}

// stopVhost stops vhost's work on r's queues and releases r: when it
// returns, vhost touches neither the rings nor the TAP, and r's eventfds
// and goroutines are gone. The caller holds d.lifecycle.
func (d *pair) stopVhost(r *vhostRun) {
	h := d.vhost.net
	for i, on := range r.queues {
		if !on {
			continue
		}
		d.logVhost(i, h.NetSetBackend(i, -1))
		_, err := h.VringBase(i)
		d.logVhost(i, err)
		for _, unbind := range []func(int, int) error{h.SetVringKick, h.SetVringCall, h.SetVringErr} {
			d.logVhost(i, unbind(i, -1))
		}
	}
	if r.errFD != nil {
		r.errFD.Close()
	}
	r.wg.Wait()
	r.fds.Close()
}

// logVhost logs an error of stopping queue i.
func (d *pair) logVhost(i int, err error) {
	if err != nil {
		d.log.Error("virtio-net: stopping vhost-net's queue", "queue", i, "err", err)
	}
}

// queueFDs returns the queues' eventfds while vhost or the device's thread
// serves them, and nil otherwise (queuefd.Set's methods take a nil Set for
// an inactive device).
func (d *pair) queueFDs() *queuefd.Set {
	d.mu.Lock()
	defer d.mu.Unlock()
	switch {
	case d.vrun != nil:
		return d.vrun.fds
	case d.run != nil && d.run.loop != nil:
		return d.run.loop.kicks
	}
	return nil
}

// KickFD is virtio.QueueEventFDs: queue q's kick eventfd while vhost or
// the device's thread serves the device. The transport has KVM signal it
// on the guest's notification.
func (d *pair) KickFD(q int) (int, bool) { return d.queueFDs().Kick(q) }

// CallFD is virtio.QueueEventFDs: queue q's call eventfd while vhost
// serves the device. The device's thread has none: it interrupts through
// the transport's callback.
func (d *pair) CallFD(q int) (int, bool) { return d.queueFDs().Call(q) }

// RelayCalls is virtio.QueueEventFDs: it stops or restarts the relay of
// queue q's calls (queuefd.Set.RelayCalls). It holds d.mu throughout, as
// Activate does while it starts the relays.
func (d *pair) RelayCalls(q int, on bool) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.vrun == nil {
		return false
	}
	return d.vrun.fds.RelayCalls(q, on)
}
