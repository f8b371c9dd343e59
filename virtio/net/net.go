// Package net is virtio-net (virtio 1.2, §5.1): an Ethernet interface whose
// host side is a TAP interface (/dev/net/tun with IFF_VNET_HDR) or any other
// Backend that moves whole packets, each led by the 12-byte virtio-net
// header. The device offers a MAC address, link status, checksum and TCP
// segmentation offloads in both directions and mergeable receive buffers;
// the receive offloads the driver accepts are passed on to the TAP
// (TUNSETOFFLOAD), so the host kernel hands the guest unsegmented, partially
// checksummed packets only when the guest said it can take them.
//
// One queue pair: queue 0 receives, queue 1 transmits, each served by a
// goroutine of the device's own, or, with Config.Vhost, by the kernel's
// vhost-net (virtio/vhost), which moves the packets between the rings and
// the TAP itself while ember keeps the rest of the device. A transmitted
// packet goes to the backend straight from guest memory in one writev; a
// received packet is read into a host buffer and copied into the guest's
// buffers, waiting for the driver to post some when it has none.
// Everything the driver writes is hostile: a malformed chain is dropped and
// logged, and the device writes nothing but the chains' device-writable
// buffers and the used ring.
package net

import (
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	stdnet "net"
	"sync"
	"sync/atomic"
	"time"

	"ember/internal/wake"
	"ember/memory"
	"ember/virtio"
	"ember/virtio/internal/queuefd"
)

// Feature bits of virtio-net the device offers (§5.1.3). The transport adds
// VERSION_1, EVENT_IDX and INDIRECT_DESC.
const (
	FeatureCsum      = 1 << 0  // VIRTIO_NET_F_CSUM: the device takes partially checksummed packets
	FeatureGuestCsum = 1 << 1  // VIRTIO_NET_F_GUEST_CSUM: the driver takes partially checksummed packets
	FeatureMAC       = 1 << 5  // VIRTIO_NET_F_MAC: the configuration space holds the MAC address
	FeatureGuestTSO4 = 1 << 7  // VIRTIO_NET_F_GUEST_TSO4: the driver takes TCPv4 GSO packets
	FeatureGuestTSO6 = 1 << 8  // VIRTIO_NET_F_GUEST_TSO6: the driver takes TCPv6 GSO packets
	FeatureGuestECN  = 1 << 9  // VIRTIO_NET_F_GUEST_ECN: ... with ECN set
	FeatureGuestUFO  = 1 << 10 // VIRTIO_NET_F_GUEST_UFO (never offered)
	FeatureHostTSO4  = 1 << 11 // VIRTIO_NET_F_HOST_TSO4: the device takes TCPv4 GSO packets
	FeatureHostTSO6  = 1 << 12 // VIRTIO_NET_F_HOST_TSO6: the device takes TCPv6 GSO packets
	FeatureHostECN   = 1 << 13 // VIRTIO_NET_F_HOST_ECN: ... with ECN set
	FeatureMrgRxbuf  = 1 << 15 // VIRTIO_NET_F_MRG_RXBUF: a received packet may span several chains
	FeatureStatus    = 1 << 16 // VIRTIO_NET_F_STATUS: the configuration space holds the link status
)

// offered is every feature bit the device offers.
const offered = FeatureCsum | FeatureGuestCsum | FeatureMAC |
	FeatureGuestTSO4 | FeatureGuestTSO6 | FeatureGuestECN |
	FeatureHostTSO4 | FeatureHostTSO6 | FeatureHostECN |
	FeatureMrgRxbuf | FeatureStatus

// Queue indices and size.
const (
	RXQueue   = 0   // receiveq1: packets to the guest
	TXQueue   = 1   // transmitq1: packets from the guest
	QueueSize = 256 // the maximum size of each queue
)

// Configuration space (struct virtio_net_config, §5.1.4): mac[6], status,
// max_virtqueue_pairs, mtu; little-endian. mtu is there but VIRTIO_NET_F_MTU
// is not offered, so it reads 0.
const (
	cfgMAC        = 0
	cfgStatus     = 6
	cfgMaxVQPairs = 8
	cfgMTU        = 10
	configSize    = 12

	statusLinkUp = 1 // VIRTIO_NET_S_LINK_UP
)

// Config describes a virtio-net device. Exactly one of TAP and Backend is
// set.
type Config struct {
	// TAP is the name of the TAP interface New opens (OpenTAP) and brings
	// up: an existing one, or one the kernel creates, which needs
	// CAP_NET_ADMIN. A name with "%d" lets the kernel number it
	// ("ember%d"); (*TAP).Name tells which it chose.
	TAP string
	// Backend is the host side when it is not a TAP New opens: a TAP
	// opened elsewhere, or a test's fake. The device owns it: Close closes
	// it.
	Backend Backend
	// MAC is the guest's MAC address; nil means a random locally
	// administered unicast address, 52:54:00:xx:xx:xx.
	MAC stdnet.HardwareAddr
	// Logger gets dropped packets and backend errors; nil is
	// slog.Default().
	Logger *slog.Logger
	// Vhost has the kernel's vhost-net move the packets between the
	// queues and the TAP (/dev/vhost-net; the TAP backend only), as
	// QEMU's vhost=on does: no packet then passes through ember, whose
	// Stats stay at zero (the TAP interface counts them). ember keeps the
	// configuration space, the features and the transport.
	Vhost bool
}

// Device is a virtio-net device: a virtio.Device with one queue pair.
type Device struct {
	backend Backend
	mac     stdnet.HardwareAddr
	log     *slog.Logger
	stats   counters

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
func (d *Device) SetEvents(e virtio.Events) { d.events.Store(&e) }

// activation is what one Activate started: the device's thread (loop),
// or for a backend it cannot wait on itself a goroutine per queue.
type activation struct {
	stop  wake.Stop      // given by Reset
	loop  *loop          // the device's thread; nil: goroutines
	kicks []wake.Signal  // the goroutines': per queue; nil for a queue not served
	wg    sync.WaitGroup // the goroutines
}

// New returns an inactive device on cfg's backend, opening and bringing up
// the TAP cfg names.
func New(cfg Config) (*Device, error) {
	mac, err := macAddress(cfg.MAC)
	if err != nil {
		return nil, err
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	b, err := openBackend(cfg)
	if err != nil {
		return nil, err
	}
	// Reset interrupts a goroutine blocked in the backend with a deadline:
	// a backend without them could keep Reset waiting for ever. (The
	// device's thread, which serves a FileBackend, never blocks in it.)
	if err := needDeadlines(b); err != nil {
		if cfg.Backend == nil {
			b.Close()
		}
		return nil, fmt.Errorf("virtio-net: the backend cannot be interrupted (deadlines): %w", err)
	}
	if t, ok := b.(*TAP); ok {
		log = log.With("tap", t.Name())
	}
	d := &Device{backend: b, mac: mac, log: log.With("mac", mac.String())}
	if cfg.Vhost {
		if d.vhost, err = openVhost(b); err != nil {
			if cfg.Backend == nil {
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

// macAddress checks a configured MAC address, or makes a random one.
func macAddress(mac stdnet.HardwareAddr) (stdnet.HardwareAddr, error) {
	if mac == nil {
		return RandomMAC(), nil
	}
	switch {
	case len(mac) != 6:
		return nil, fmt.Errorf("virtio-net: MAC address %v is not 6 bytes", mac)
	case mac[0]&1 != 0:
		return nil, fmt.Errorf("virtio-net: MAC address %v is a multicast address", mac)
	case [6]byte(mac) == [6]byte{}:
		return nil, errors.New("virtio-net: MAC address 00:00:00:00:00:00")
	}
	return append(stdnet.HardwareAddr(nil), mac...), nil
}

// RandomMAC returns 52:54:00 and three random bytes: 0x52 marks the address
// locally administered and unicast, and the prefix is the one QEMU and
// libvirt use, which tools recognise as a virtual machine's.
func RandomMAC() stdnet.HardwareAddr {
	mac := stdnet.HardwareAddr{0x52, 0x54, 0x00, 0, 0, 0}
	rand.Read(mac[3:]) // never fails (crypto/rand since Go 1.24)
	return mac
}

// MAC returns the guest's MAC address.
func (d *Device) MAC() stdnet.HardwareAddr { return append(stdnet.HardwareAddr(nil), d.mac...) }

// Backend returns the device's backend (a *TAP when Config.TAP named one).
func (d *Device) Backend() Backend { return d.backend }

// Close resets the device and closes the backend.
func (d *Device) Close() error {
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

// Type returns virtio.IDNet.
func (d *Device) Type() uint16 { return virtio.IDNet }

// Features returns the device's feature bits.
func (d *Device) Features() uint64 {
	if d.vhost != nil {
		return d.vhost.offered()
	}
	return offered
}

// QueueSizes returns the receive and transmit queues' sizes.
func (d *Device) QueueSizes() []uint16 { return []uint16{QueueSize, QueueSize} }

// ReadConfig reads the configuration space: the MAC address, the link
// status (always up) and one queue pair.
func (d *Device) ReadConfig(off uint64, data []byte) {
	var c [configSize]byte
	copy(c[cfgMAC:], d.mac)
	binary.LittleEndian.PutUint16(c[cfgStatus:], statusLinkUp)
	binary.LittleEndian.PutUint16(c[cfgMaxVQPairs:], 1)
	clear(data)
	if off < configSize {
		copy(data, c[off:])
	}
}

// WriteConfig ignores the write: with VERSION_1 every field is read-only
// (the MAC changes through the control queue, which the device has not).
func (d *Device) WriteConfig(uint64, []byte) {}

// Activate passes the receive offloads the driver accepted to the backend
// and starts a worker for each queue the driver enabled.
func (d *Device) Activate(mem *memory.Guest, features uint64, queues []*virtio.Queue, interrupt func(queue int)) error {
	if len(queues) != 2 {
		return fmt.Errorf("virtio-net: activated with %d queues, want 2", len(queues))
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
		return d.startLoop(a, p.fileBackend(), queues, workers)
	}
	d.startWorkers(a, workers)
	return nil
}

// startLoop serves the activation on the device's thread. The caller holds
// d.lifecycle.
func (d *Device) startLoop(a *activation, b *FileBackend, queues []*virtio.Queue, workers []*worker) error {
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
	d.mu.Lock()
	d.run = a
	d.mu.Unlock()
	go a.loop.run()
	return nil
}

// startWorkers serves the activation on a goroutine per queue, which wait
// in the backend's ReadPacket and WritePacket. The caller holds
// d.lifecycle.
func (d *Device) startWorkers(a *activation, workers []*worker) {
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
func (d *Device) running() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.run != nil || d.vrun != nil
}

// Notify wakes queue's worker: the driver posted receive buffers or
// packets to send. A kick that arrives while one is pending merges with it;
// the worker takes every chain there is at each.
func (d *Device) Notify(queue int) {
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
func (d *Device) Reset() {
	d.lifecycle.Lock()
	defer d.lifecycle.Unlock()
	d.reset()
}

// reset is Reset; the caller holds d.lifecycle.
func (d *Device) reset() {
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
		a.loop.stop()
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

// Stats are the device's packet counters since New.
type Stats struct {
	TXPackets, TXBytes uint64 // frames the guest sent that reached the backend
	TXDropped          uint64 // frames dropped: malformed, or refused by the backend
	RXPackets, RXBytes uint64 // frames delivered to the guest
	RXDropped          uint64 // frames the backend gave that the guest could not take
}

// counters are Stats as the workers update them.
type counters struct {
	txPackets, txBytes, txDropped atomic.Uint64
	rxPackets, rxBytes, rxDropped atomic.Uint64
}

// Stats returns the packet counters.
func (d *Device) Stats() Stats {
	c := &d.stats
	return Stats{
		TXPackets: c.txPackets.Load(), TXBytes: c.txBytes.Load(), TXDropped: c.txDropped.Load(),
		RXPackets: c.rxPackets.Load(), RXBytes: c.rxBytes.Load(), RXDropped: c.rxDropped.Load(),
	}
}
