package net

import (
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	stdnet "net"
	"sync"
	"sync/atomic"

	"ember/memory"
	"ember/virtio"
	"ember/virtio/internal/devthread"
)

// Device is a virtio-net device: a virtio.Device with one queue pair, or
// with Config.Queues pairs and a control queue.
type Device struct {
	mac     stdnet.HardwareAddr
	log     *slog.Logger
	stats   *counters
	pairs   []*pair
	taps    []*TAP // each pair's TAP queue, with several pairs; nil with one
	threads int    // how many threads serve the pairs (Config.Threads)

	mu        sync.Mutex   // serialises Activate, Reset, Close and the control queue
	active    atomic.Int32 // the pairs an activation serves (1, or every pair with VIRTIO_NET_F_MQ); 0: inactive. Set under mu, read without it
	ctrl      *worker      // the control queue while active, if the driver enabled it; d.pairs[0]'s
	ctrlChain virtio.Chain // the control request being served; its slices are reused
	mq        bool         // the driver accepted VIRTIO_NET_F_MQ
	attached  []bool       // by pair: its TAP queue is attached (the driver uses the pair)
	used      int          // how many pairs the driver uses (VQ_PAIRS_SET; 1 until then)
	closed    bool
}

// New returns an inactive device on cfg's backend, opening and bringing up
// the TAP cfg names (its Queues queues of it).
func New(cfg Config) (*Device, error) {
	mac, err := macAddress(cfg.MAC)
	if err != nil {
		return nil, err
	}
	n := max(cfg.Queues, 1)
	switch {
	case n > MaxQueuePairs:
		return nil, fmt.Errorf("virtio-net: %d queue pairs: at most %d", n, MaxQueuePairs)
	case n > 1 && (cfg.TAP == "" || cfg.Backend != nil):
		return nil, fmt.Errorf("virtio-net: %d queue pairs need a TAP the device opens (a TAP name, not a backend)", n)
	case cfg.Threads < 0 || cfg.Threads > n:
		return nil, fmt.Errorf("virtio-net: %d threads for %d queue pairs: 1 to %d", cfg.Threads, n, n)
	case cfg.Threads > 0 && cfg.Vhost:
		return nil, errors.New("virtio-net: threads with vhost: vhost-net's own workers serve the queue pairs")
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	backends, taps, err := openBackends(cfg, n)
	if err != nil {
		return nil, err
	}
	return newDevice(mac, log, backends, taps, cfg.Backend == nil, cfg.Vhost, cfg.Threads)
}

// newDevice makes a device with a queue pair on each backend, served by
// threads threads (0: one a pair); taps are the backends when they are a
// multi-queue TAP's queues. owned says New opened the backends: a device
// that cannot be made then closes them.
func newDevice(mac stdnet.HardwareAddr, log *slog.Logger, backends []Backend, taps []*TAP, owned, vhost bool, threads int) (*Device, error) {
	n := len(backends)
	if threads <= 0 || threads > n {
		threads = n
	}
	if t, ok := backends[0].(*TAP); ok {
		log = log.With("tap", t.Name())
	}
	log = log.With("mac", mac.String())
	d := &Device{mac: mac, log: log, stats: new(counters), taps: taps, threads: threads, attached: make([]bool, n), used: 1}
	for i, b := range backends {
		plog := log
		if n > 1 {
			plog = log.With("pair", i)
		}
		p, err := newPair(b, owned, vhost, plog, d.stats)
		if err != nil {
			if owned {
				for _, b := range backends[i+1:] {
					b.Close()
				}
			}
			d.Close()
			return nil, err
		}
		d.pairs = append(d.pairs, p)
		d.attached[i] = true // a TAP queue starts attached
	}
	return d, nil
}

// openBackends returns cfg's backend, or the n queues of the TAP it names,
// opened and brought up; taps are those queues when n > 1.
func openBackends(cfg Config, n int) (backends []Backend, taps []*TAP, err error) {
	if n == 1 {
		b, err := openBackend(cfg)
		return []Backend{b}, nil, err
	}
	if taps, err = OpenTAPQueues(cfg.TAP, n); err != nil {
		return nil, nil, err
	}
	if err := taps[0].Up(); err != nil {
		for _, t := range taps {
			t.Close()
		}
		return nil, nil, err
	}
	for _, t := range taps {
		backends = append(backends, t)
	}
	return backends, taps, nil
}

// openBackend returns cfg's backend, opening the TAP it names.
func openBackend(cfg Config) (Backend, error) {
	switch {
	case cfg.TAP != "" && cfg.Backend != nil:
		return nil, errors.New("virtio-net: both a TAP name and a backend")
	case cfg.Backend != nil:
		return cfg.Backend, nil
	case cfg.TAP == "":
		return nil, errors.New("virtio-net: no TAP name and no backend")
	}
	t, err := OpenTAP(cfg.TAP)
	if err != nil {
		return nil, err
	}
	if err := t.Up(); err != nil {
		t.Close()
		return nil, err
	}
	return t, nil
}

// MAC returns the guest's MAC address.
func (d *Device) MAC() stdnet.HardwareAddr { return append(stdnet.HardwareAddr(nil), d.mac...) }

// Backend returns the device's backend (a *TAP when Config.TAP named one):
// the first queue pair's, with several.
func (d *Device) Backend() Backend { return d.pairs[0].backend }

// QueuePairs returns the number of queue pairs the device has
// (Config.Queues), and how many of them the driver uses now: all it
// set with VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET, the first until then.
func (d *Device) QueuePairs() (pairs, used int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.pairs), d.used
}

// Close resets the device and closes its backends.
func (d *Device) Close() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return nil
	}
	d.reset()
	d.closed = true
	var errs []error
	for _, p := range d.pairs {
		errs = append(errs, p.Close())
	}
	return errors.Join(errs...)
}

// SetEvents is virtio.EventSource: a queue the driver broke becomes
// DEVICE_NEEDS_RESET.
func (d *Device) SetEvents(e virtio.Events) {
	for _, p := range d.pairs {
		p.SetEvents(e)
	}
}

// Type returns virtio.IDNet.
func (d *Device) Type() uint16 { return virtio.IDNet }

// Features returns the device's feature bits: with several queue pairs,
// the control queue and VIRTIO_NET_F_MQ besides.
func (d *Device) Features() uint64 {
	f := d.pairs[0].features()
	if len(d.pairs) > 1 {
		f |= FeatureCtrlVQ | FeatureMQ
	}
	return f
}

// QueueSizes returns the queues' sizes: each pair's receive and transmit
// queues, then, with several pairs, the control queue.
func (d *Device) QueueSizes() []uint16 {
	n := len(d.pairs)
	if n == 1 {
		return []uint16{QueueSize, QueueSize}
	}
	sizes := make([]uint16, 2*n+1)
	for i := range 2 * n {
		sizes[i] = QueueSize
	}
	sizes[2*n] = ControlQueueSize
	return sizes
}

// ReadConfig reads the configuration space: the MAC address, the link
// status (always up) and the number of queue pairs.
func (d *Device) ReadConfig(off uint64, data []byte) {
	var c [configSize]byte
	copy(c[cfgMAC:], d.mac)
	binary.LittleEndian.PutUint16(c[cfgStatus:], statusLinkUp)
	binary.LittleEndian.PutUint16(c[cfgMaxVQPairs:], uint16(len(d.pairs)))
	clear(data)
	if off < configSize {
		copy(data, c[off:])
	}
}

// WriteConfig ignores the write: with VERSION_1 every field is read-only
// (the MAC changes through the control queue's MAC class, which the device
// does not offer).
func (d *Device) WriteConfig(uint64, []byte) {}

// Activate activates the queue pairs the driver may use — the first, or
// every one if it accepted VIRTIO_NET_F_MQ — and takes the control queue.
// Until the driver sets how many pairs it uses, only the first pair's TAP
// queue is attached, so the kernel gives the guest packets on it alone
// (§5.1.6.5.5: multiqueue starts disabled).
func (d *Device) Activate(mem *memory.Guest, features uint64, queues []*virtio.Queue, interrupt func(queue int)) error {
	n := len(d.pairs)
	if n == 1 {
		return d.pairs[0].Activate(mem, features, queues, interrupt)
	}
	if len(queues) != 2*n+1 {
		return fmt.Errorf("virtio-net: activated with %d queues, want %d", len(queues), 2*n+1)
	}
	mq := features&FeatureMQ != 0
	if mq && features&FeatureCtrlVQ == 0 {
		return errors.New("virtio-net: the driver accepted VIRTIO_NET_F_MQ without VIRTIO_NET_F_CTRL_VQ, which it needs")
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	switch {
	case d.closed:
		return errors.New("virtio-net: activated after Close")
	case d.active.Load() > 0:
		return errors.New("virtio-net: activated twice without a reset")
	}
	used, ctrlAt := 1, 2
	if mq {
		used, ctrlAt = n, 2*n
	}
	if err := d.activatePairs(mem, features, queues, interrupt, used); err != nil {
		return err
	}
	d.active.Store(int32(used))
	d.mq = mq
	if q := queues[ctrlAt]; features&FeatureCtrlVQ != 0 && q != nil {
		d.ctrl = &worker{d: d.pairs[0], mem: mem, q: q, index: ctrlAt, features: features, interrupt: interrupt}
	}
	if err := d.usePairs(1); err != nil {
		d.reset()
		return err
	}
	return nil
}

// activatePairs activates the first used pairs on the device's threads
// (pair i on thread i mod d.threads), then starts the threads. The
// caller holds d.mu.
func (d *Device) activatePairs(mem *memory.Guest, features uint64, queues []*virtio.Queue, interrupt func(queue int), used int) error {
	threads, err := d.newThreads(min(d.threads, used))
	if err != nil {
		return err
	}
	for i := range used {
		pairIRQ := func(q int) { interrupt(2*i + q) }
		var th *devthread.Thread
		if threads != nil {
			th = threads[i%len(threads)]
		}
		if err := d.pairs[i].activate(mem, features, queues[2*i:2*i+2], pairIRQ, th); err != nil {
			for _, p := range d.pairs[:i] {
				p.Reset()
			}
			for _, t := range threads {
				t.Stop()
			}
			return fmt.Errorf("virtio-net: queue pair %d: %w", i, err)
		}
	}
	for _, t := range threads {
		t.Start()
	}
	return nil
}

// newThreads makes k threads, not yet started, for the pairs to share;
// none if vhost-net serves them, or goroutines (a backend the device
// cannot wait on; a multi-queue TAP's queues always can be).
func (d *Device) newThreads(k int) ([]*devthread.Thread, error) {
	if _, ok := d.pairs[0].backend.(pollable); !ok || d.pairs[0].vhost != nil {
		return nil, nil
	}
	threads := make([]*devthread.Thread, k)
	for i := range threads {
		t, err := d.pairs[0].newThread(d.log.With("thread", i))
		if err != nil {
			for _, t := range threads[:i] {
				t.Stop()
			}
			return nil, err
		}
		threads[i] = t
	}
	return threads, nil
}

// usePairs attaches the TAP queues of the first k pairs and detaches the
// others', so that the kernel spreads the guest's packets over the pairs
// the driver uses. The caller holds d.mu.
func (d *Device) usePairs(k int) error {
	for i, t := range d.taps {
		want := i < k
		if d.attached[i] == want {
			continue
		}
		if err := t.SetQueueEnabled(want); err != nil {
			return err
		}
		d.attached[i] = want
	}
	d.used = k
	return nil
}

// Notify passes a notification to the queue pair it is for, or serves the
// control queue.
func (d *Device) Notify(queue int) {
	if len(d.pairs) == 1 {
		d.pairs[0].Notify(queue)
		return
	}
	d.mu.Lock()
	if w := d.ctrl; w != nil && queue == w.index {
		need := d.serveControl()
		d.mu.Unlock()
		if need {
			w.interrupt(w.index) // outside mu: the transport's interrupt takes locks under which it calls RelayCalls
		}
		return
	}
	d.mu.Unlock()
	if queue >= 0 && queue/2 < int(d.active.Load()) {
		d.pairs[queue/2].Notify(queue % 2)
	}
}

// pairOf returns the pair queue belongs to while the device is active, and
// its index within the pair; false for the control queue, or a queue of
// no active pair. It takes no lock of the device's: a transport calls
// RelayCalls, and so pairOf, under the lock its interrupt callback takes.
func (d *Device) pairOf(queue int) (*pair, int, bool) {
	if len(d.pairs) == 1 {
		return d.pairs[0], queue, true
	}
	if queue < 0 || queue >= 2*int(d.active.Load()) {
		return nil, 0, false
	}
	return d.pairs[queue/2], queue % 2, true
}

// KickFD is virtio.QueueEventFDs: queue q's kick eventfd while its pair's
// thread or vhost-net serves it. The control queue has none: its
// notifications come through Notify.
func (d *Device) KickFD(q int) (int, bool) {
	p, i, ok := d.pairOf(q)
	if !ok {
		return -1, false
	}
	return p.KickFD(i)
}

// CallFD is virtio.QueueEventFDs: queue q's call eventfd while vhost-net
// serves its pair.
func (d *Device) CallFD(q int) (int, bool) {
	p, i, ok := d.pairOf(q)
	if !ok {
		return -1, false
	}
	return p.CallFD(i)
}

// RelayCalls is virtio.QueueEventFDs: it stops or restarts the relay of
// queue q's calls, which only a pair served by vhost-net has.
func (d *Device) RelayCalls(q int, on bool) bool {
	p, i, ok := d.pairOf(q)
	if !ok {
		return false
	}
	return p.RelayCalls(i, on)
}

// Reset stops every pair and forgets the control queue.
func (d *Device) Reset() {
	if len(d.pairs) == 1 {
		d.pairs[0].Reset()
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.reset()
}

// reset is Reset; the caller holds d.mu.
func (d *Device) reset() {
	for _, p := range d.pairs {
		p.Reset()
	}
	d.active.Store(0)
	d.ctrl, d.mq = nil, false
}

// Stats returns the packet counters, every pair's together.
func (d *Device) Stats() Stats {
	c := d.stats
	return Stats{
		TXPackets: c.txPackets.Load(), TXBytes: c.txBytes.Load(), TXDropped: c.txDropped.Load(),
		RXPackets: c.rxPackets.Load(), RXBytes: c.rxBytes.Load(), RXDropped: c.rxDropped.Load(),
	}
}
