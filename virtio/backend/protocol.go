package backend

import (
	"encoding/binary"
	"fmt"

	"ember/devicemodel"
	"ember/virtio"
)

// Limits of the virtio back-end messages.
const (
	// MaxQueues is the most queues a back-end device may have: what
	// virtio-pci gives a function (one MSI-X vector each, plus one).
	MaxQueues = 64
	// MaxConfigSize is the most bytes of device-specific configuration a
	// back-end may describe.
	MaxConfigSize = 256
	// MaxEventText is the longest reason a VIRTIO_EVENT may carry.
	MaxEventText = 256
	// DeviceFeatureMask is the feature bits a back-end may offer: the
	// device-specific ones (0 to 23, virtio 1.2 §6). The transport's bits
	// (VERSION_1, EVENT_IDX, INDIRECT_DESC) are ember's to offer.
	DeviceFeatureMask = 1<<24 - 1

	deviceInfoHeader = 16 // u16 type, u16 queues, u32 config size, u64 features
	startHeader      = 16 // u64 features, u32 count, u32 reserved
	queueEntrySize   = 32 // u16 index, u16 size, u32 reserved, u64 desc, driver, device
	eventHeader      = 4  // u32 kind
)

// EventNeedsReset is VIRTIO_EVENT's only kind: the device stopped serving
// (the driver broke a queue) and needs a reset.
const EventNeedsReset = 1

// DeviceInfo is VIRTIO_DEVICE's result: what ember's transport shows the
// driver for the back-end's device.
type DeviceInfo struct {
	Type       uint16   // the virtio device ID
	Features   uint64   // device-specific feature bits (DeviceFeatureMask)
	QueueSizes []uint16 // each queue's maximum size
	Config     []byte   // the device-specific configuration space
}

// InfoOf describes dev as VIRTIO_DEVICE answers for it: its configuration
// space is read once, in MaxConfigSize bytes, and trailing zeros dropped.
func InfoOf(dev virtio.Device) DeviceInfo {
	cfg := make([]byte, MaxConfigSize)
	dev.ReadConfig(0, cfg)
	n := len(cfg)
	for n > 0 && cfg[n-1] == 0 {
		n--
	}
	return DeviceInfo{Type: dev.Type(), Features: dev.Features() & DeviceFeatureMask, QueueSizes: dev.QueueSizes(), Config: cfg[:n]}
}

// Encode returns VIRTIO_DEVICE's result: u16 type, u16 queue count, u32
// config size, u64 features, a u16 maximum size per queue, the
// configuration bytes.
func (d DeviceInfo) Encode() []byte {
	p := make([]byte, deviceInfoHeader, deviceInfoHeader+2*len(d.QueueSizes)+len(d.Config))
	le := binary.LittleEndian
	le.PutUint16(p[0:], d.Type)
	le.PutUint16(p[2:], uint16(len(d.QueueSizes)))
	le.PutUint32(p[4:], uint32(len(d.Config)))
	le.PutUint64(p[8:], d.Features)
	for _, s := range d.QueueSizes {
		p = le.AppendUint16(p, s)
	}
	return append(p, d.Config...)
}

// DecodeDeviceInfo parses VIRTIO_DEVICE's result as ember must, from a
// back-end it does not trust: 1 to MaxQueues queues, each a power of two up
// to virtio.MaxQueueSize, at most MaxConfigSize configuration bytes, only
// device-specific feature bits, and nothing left over.
func DecodeDeviceInfo(p []byte) (DeviceInfo, error) {
	if len(p) < deviceInfoHeader {
		return DeviceInfo{}, fmt.Errorf("%w: VIRTIO_DEVICE result of %d bytes", devicemodel.ErrProtocol, len(p))
	}
	le := binary.LittleEndian
	d := DeviceInfo{Type: le.Uint16(p[0:]), Features: le.Uint64(p[8:])}
	nq, nc := int(le.Uint16(p[2:])), le.Uint32(p[4:])
	switch {
	case nq < 1 || nq > MaxQueues:
		return DeviceInfo{}, fmt.Errorf("%w: VIRTIO_DEVICE: %d queues (1 to %d)", devicemodel.ErrProtocol, nq, MaxQueues)
	case nc > MaxConfigSize:
		return DeviceInfo{}, fmt.Errorf("%w: VIRTIO_DEVICE: %d configuration bytes (at most %d)", devicemodel.ErrProtocol, nc, MaxConfigSize)
	case uint64(len(p)) != deviceInfoHeader+2*uint64(nq)+uint64(nc):
		return DeviceInfo{}, fmt.Errorf("%w: VIRTIO_DEVICE result of %d bytes for %d queues and %d configuration bytes", devicemodel.ErrProtocol, len(p), nq, nc)
	case d.Features&^DeviceFeatureMask != 0:
		return DeviceInfo{}, fmt.Errorf("%w: VIRTIO_DEVICE: feature bits %#x are not device-specific", devicemodel.ErrProtocol, d.Features&^DeviceFeatureMask)
	}
	for i := range nq {
		s := le.Uint16(p[deviceInfoHeader+2*i:])
		if s == 0 || s > virtio.MaxQueueSize || s&(s-1) != 0 {
			return DeviceInfo{}, fmt.Errorf("%w: VIRTIO_DEVICE: queue %d size %d is not a power of two up to %d", devicemodel.ErrProtocol, i, s, virtio.MaxQueueSize)
		}
		d.QueueSizes = append(d.QueueSizes, s)
	}
	d.Config = append([]byte(nil), p[deviceInfoHeader+2*nq:]...)
	return d, nil
}

// QueueLayout is one enabled queue as VIRTIO_START gives it to the
// back-end: where the driver put it.
type QueueLayout struct {
	Index                uint16
	Size                 uint16
	Desc, Driver, Device uint64
}

// Start is VIRTIO_START's payload: the features the driver accepted and its
// enabled queues, in increasing index order. The packet carries two
// eventfds per queue, in the same order: the queue's kick (ember -> back-end:
// the driver notified) and call (back-end -> ember: interrupt the driver).
type Start struct {
	Features uint64
	Queues   []QueueLayout
}

// Encode returns VIRTIO_START's payload: u64 features, u32 count, u32
// reserved (0), then 32 bytes per queue: u16 index, u16 size, u32 reserved
// (0), u64 descriptor table, u64 driver area, u64 device area.
func (s Start) Encode() []byte {
	le := binary.LittleEndian
	p := make([]byte, startHeader, startHeader+queueEntrySize*len(s.Queues))
	le.PutUint64(p[0:], s.Features)
	le.PutUint32(p[8:], uint32(len(s.Queues)))
	for _, q := range s.Queues {
		var e [queueEntrySize]byte
		le.PutUint16(e[0:], q.Index)
		le.PutUint16(e[2:], q.Size)
		le.PutUint64(e[8:], q.Desc)
		le.PutUint64(e[16:], q.Driver)
		le.PutUint64(e[24:], q.Device)
		p = append(p, e[:]...)
	}
	return p
}

// DecodeStart parses VIRTIO_START's payload: reserved fields 0, 1 to
// MaxQueues queues with strictly increasing indices, and nothing left over.
// The queues' indices, sizes and addresses are checked against the device
// and guest RAM by the back-end (Session), which knows them.
func DecodeStart(p []byte) (Start, error) {
	if len(p) < startHeader {
		return Start{}, fmt.Errorf("%w: VIRTIO_START payload of %d bytes", devicemodel.ErrProtocol, len(p))
	}
	le := binary.LittleEndian
	s := Start{Features: le.Uint64(p[0:])}
	n := le.Uint32(p[8:])
	switch {
	case le.Uint32(p[12:]) != 0:
		return Start{}, fmt.Errorf("%w: VIRTIO_START reserved field not 0", devicemodel.ErrProtocol)
	case n < 1 || n > MaxQueues:
		return Start{}, fmt.Errorf("%w: VIRTIO_START with %d queues (1 to %d)", devicemodel.ErrProtocol, n, MaxQueues)
	case uint64(len(p)) != startHeader+queueEntrySize*uint64(n):
		return Start{}, fmt.Errorf("%w: VIRTIO_START payload of %d bytes for %d queues", devicemodel.ErrProtocol, len(p), n)
	}
	for i := range int(n) {
		e := p[startHeader+queueEntrySize*i:]
		q := QueueLayout{Index: le.Uint16(e[0:]), Size: le.Uint16(e[2:]), Desc: le.Uint64(e[8:]), Driver: le.Uint64(e[16:]), Device: le.Uint64(e[24:])}
		if le.Uint32(e[4:]) != 0 {
			return Start{}, fmt.Errorf("%w: VIRTIO_START queue entry %d: reserved field not 0", devicemodel.ErrProtocol, i)
		}
		if i > 0 && q.Index <= s.Queues[i-1].Index {
			return Start{}, fmt.Errorf("%w: VIRTIO_START queue %d listed after queue %d", devicemodel.ErrProtocol, q.Index, s.Queues[i-1].Index)
		}
		s.Queues = append(s.Queues, q)
	}
	return s, nil
}

// Event is VIRTIO_EVENT's payload: what happened (EventNeedsReset) and why,
// for ember's log.
type Event struct {
	Kind   uint32
	Reason string
}

// Encode returns VIRTIO_EVENT's payload: u32 kind, then the reason's bytes
// (printable ASCII, cut to MaxEventText; others become '?').
func (e Event) Encode() []byte {
	p := binary.LittleEndian.AppendUint32(nil, e.Kind)
	for i := 0; i < len(e.Reason) && i < MaxEventText; i++ {
		c := e.Reason[i]
		if c < 0x20 || c > 0x7e {
			c = '?'
		}
		p = append(p, c)
	}
	return p
}

// DecodeEvent parses VIRTIO_EVENT's payload: a known kind and a reason of
// at most MaxEventText printable ASCII bytes.
func DecodeEvent(p []byte) (Event, error) {
	if len(p) < eventHeader || len(p) > eventHeader+MaxEventText {
		return Event{}, fmt.Errorf("%w: VIRTIO_EVENT payload of %d bytes", devicemodel.ErrProtocol, len(p))
	}
	e := Event{Kind: binary.LittleEndian.Uint32(p)}
	if e.Kind != EventNeedsReset {
		return Event{}, fmt.Errorf("%w: VIRTIO_EVENT kind %d", devicemodel.ErrProtocol, e.Kind)
	}
	for _, c := range p[eventHeader:] {
		if c < 0x20 || c > 0x7e {
			return Event{}, fmt.Errorf("%w: VIRTIO_EVENT reason byte %#x", devicemodel.ErrProtocol, c)
		}
	}
	e.Reason = string(p[eventHeader:])
	return e, nil
}
