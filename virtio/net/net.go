// Package net is virtio-net (virtio 1.2, §5.1): an Ethernet interface whose
// host side is a TAP interface (/dev/net/tun with IFF_VNET_HDR) or any other
// Backend that moves whole packets, each led by the 12-byte virtio-net
// header. The device offers a MAC address, link status, checksum and TCP
// segmentation offloads in both directions and mergeable receive buffers;
// the receive offloads the driver accepts are passed on to the TAP
// (TUNSETOFFLOAD), so the host kernel hands the guest unsegmented, partially
// checksummed packets only when the guest said it can take them.
//
// A queue pair — queue 2i receives, queue 2i+1 transmits — is served by a
// thread of the device's own that waits on the queues' kicks and the
// backend in one epoll (a goroutine per queue for a backend it cannot wait
// on), or, with Config.Vhost, by the kernel's vhost-net (virtio/vhost),
// which moves the packets between the rings and the TAP itself while ember
// keeps the rest of the device. A transmitted packet goes to the backend
// straight from guest memory in one writev; a received packet is read
// straight into the driver's buffers when they can hold the longest
// packet, else into a host buffer and copied. With Config.Queues above one
// the device has as many pairs on a multi-queue TAP, one TAP queue each,
// and a control queue through which the driver says how many it uses
// (VIRTIO_NET_F_MQ): the kernel spreads the packets it gives the guest
// over those pairs' TAP queues by flow. Everything the driver writes is
// hostile: a malformed chain is dropped and logged, and the device writes
// nothing but the chains' device-writable buffers and the used ring.
package net

import (
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	stdnet "net"
	"sync/atomic"
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
	FeatureCtrlVQ    = 1 << 17 // VIRTIO_NET_F_CTRL_VQ: the device has a control queue (with several queue pairs)
	FeatureMQ        = 1 << 22 // VIRTIO_NET_F_MQ: the device has several queue pairs (with several)
)

// offered is every feature bit the device offers.
const offered = FeatureCsum | FeatureGuestCsum | FeatureMAC |
	FeatureGuestTSO4 | FeatureGuestTSO6 | FeatureGuestECN |
	FeatureHostTSO4 | FeatureHostTSO6 | FeatureHostECN |
	FeatureMrgRxbuf | FeatureStatus

// Queue indices and sizes. Pair i's queues are 2i+RXQueue and 2i+TXQueue;
// the control queue follows the last pair the driver may use: 2n with
// VIRTIO_NET_F_MQ, 2 without.
const (
	RXQueue          = 0   // receiveq1: packets to the guest
	TXQueue          = 1   // transmitq1: packets from the guest
	QueueSize        = 256 // the maximum size of each queue of a pair
	ControlQueueSize = 64  // the maximum size of the control queue
)

// MaxQueuePairs is the most queue pairs a device has (Config.Queues): each
// is a thread of ember's (or a vhost-net worker) and a TAP queue, and
// Linux uses as many as the guest has CPUs.
const MaxQueuePairs = 16

// Configuration space (struct virtio_net_config, §5.1.4): mac[6], status,
// max_virtqueue_pairs, mtu; little-endian. mtu is there but VIRTIO_NET_F_MTU
// is not offered, so it reads 0; max_virtqueue_pairs is Config.Queues.
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
	// it. A device with one queue pair only.
	Backend Backend
	// Queues is the number of queue pairs; 0 means 1. More than one needs
	// TAP: New opens as many queues of it (OpenTAPQueues), which must be
	// a multi-queue TAP if it exists already. At most MaxQueuePairs.
	Queues int
	// Threads is how many threads of the device's serve its queue pairs
	// (not with Vhost): pair i is served by thread i mod Threads, so one
	// thread serves them all, as QEMU's main loop does, and Queues
	// threads serve one each, as Cloud Hypervisor's do. Each thread is one
	// more wanting a CPU beside the vCPUs. 0 means one a pair; at most
	// Queues.
	Threads int
	// MAC is the guest's MAC address; nil means a random locally
	// administered unicast address, 52:54:00:xx:xx:xx.
	MAC stdnet.HardwareAddr
	// Logger gets dropped packets and backend errors; nil is
	// slog.Default().
	Logger *slog.Logger
	// Vhost has the kernel's vhost-net move the packets between the
	// queues and the TAP (/dev/vhost-net; the TAP backend only; one
	// vhost-net a queue pair), as QEMU's vhost=on does: no packet then
	// passes through ember, whose Stats stay at zero (the TAP interface
	// counts them). ember keeps the configuration space, the features,
	// the control queue and the transport.
	Vhost bool
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
