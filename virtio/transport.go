package virtio

import (
	"fmt"
	"log/slog"
	"sync"

	"ember/memory"
)

// TransportFeatures are the feature bits every transport offers on a
// device's behalf: a modern device with indirect descriptors and event index
// suppression.
const TransportFeatures = FeatureVersion1 | FeatureIndirectDesc | FeatureEventIdx

// NoVector is VIRTIO_MSI_NO_VECTOR, the "no interrupt" vector.
const NoVector = 0xffff

// QueueRegs is one queue's registers as a driver programs them, on any
// transport.
type QueueRegs struct {
	Max, Size            uint16 // the device's maximum, the driver's choice
	Vector               uint16 // MSI-X vector (virtio-pci), NoVector if none
	Enable               bool
	Desc, Driver, Device uint64
}

// Regs is the transport-independent half of a device's registers: feature
// negotiation, the device status and the queues' configuration. virtio-pci's
// common configuration and virtio-mmio's register block are two layouts of
// it. It has no lock: the transport guards it.
type Regs struct {
	DeviceFeatureSel uint32
	DriverFeatureSel uint32
	DriverFeatures   uint64
	Status           uint8
	Generation       uint8
	QueueSel         uint16
	Active           bool // the device was activated (DRIVER_OK)
	Queues           []QueueRegs
}

// Init resets the registers for queues of the given maximum sizes.
func (r *Regs) Init(sizes []uint16) {
	*r = Regs{Queues: make([]QueueRegs, len(sizes))}
	for i, n := range sizes {
		r.Queues[i] = QueueRegs{Max: n, Size: n, Vector: NoVector}
	}
}

// Selected returns the queue QueueSel names, or nil.
func (r *Regs) Selected() *QueueRegs {
	if int(r.QueueSel) < len(r.Queues) {
		return &r.Queues[r.QueueSel]
	}
	return nil
}

// Offered returns every feature bit a transport offers for dev.
func Offered(dev Device) uint64 { return dev.Features() | TransportFeatures }

// DeviceFeatureWord returns the 32 bits of offered DeviceFeatureSel selects.
func (r *Regs) DeviceFeatureWord(offered uint64) uint32 {
	if r.DeviceFeatureSel >= 2 {
		return 0
	}
	return uint32(offered >> (32 * r.DeviceFeatureSel))
}

// DriverFeatureWord returns the 32 bits of the driver's features
// DriverFeatureSel selects.
func (r *Regs) DriverFeatureWord() uint32 {
	if r.DriverFeatureSel >= 2 {
		return 0
	}
	return uint32(r.DriverFeatures >> (32 * r.DriverFeatureSel))
}

// SetDriverFeatureWord stores 32 bits of the driver's features, until
// FEATURES_OK freezes them.
func (r *Regs) SetDriverFeatureWord(v uint32) {
	if r.DriverFeatureSel >= 2 || r.Status&StatusFeaturesOK != 0 {
		return
	}
	shift := 32 * r.DriverFeatureSel
	r.DriverFeatures = r.DriverFeatures&^(0xffffffff<<shift) | uint64(v)<<shift
}

// Configurable returns the selected queue if the driver may still change
// its size and addresses: it is not enabled and DRIVER_OK is not set
// (§4.1.4.3.2, §4.2.2.3.2); otherwise nil.
func (r *Regs) Configurable() *QueueRegs {
	q := r.Selected()
	if q == nil || q.Enable || r.Status&StatusDriverOK != 0 {
		return nil
	}
	return q
}

// WriteStatus applies a status the driver wrote, other than 0 (a reset,
// which the transport does): FEATURES_OK is kept only if the driver
// accepted VERSION_1 and nothing that was not offered (the driver reads the
// status back to learn it was refused). It reports whether the device is to
// be activated now: DRIVER_OK with FEATURES_OK, not yet active.
func (r *Regs) WriteStatus(s uint8, offered uint64) (activate bool) {
	if s&StatusFeaturesOK != 0 && r.Status&StatusFeaturesOK == 0 {
		if r.DriverFeatures&^offered != 0 || r.DriverFeatures&FeatureVersion1 == 0 {
			s &^= StatusFeaturesOK
		}
	}
	r.Status = s
	return s&StatusDriverOK != 0 && s&StatusFeaturesOK != 0 && !r.Active
}

// BuildQueues returns the queues to activate a device with: one per enabled
// queue (nil for the others), configured with the negotiated features and
// validated against mem. The first queue the driver got wrong is the error.
func (r *Regs) BuildQueues(mem *memory.Guest) ([]*Queue, error) {
	f := r.DriverFeatures
	queues := make([]*Queue, len(r.Queues))
	for i, qr := range r.Queues {
		if !qr.Enable {
			continue
		}
		if qr.Size > qr.Max {
			return nil, fmt.Errorf("virtio: queue %d: size %d above the maximum %d", i, qr.Size, qr.Max)
		}
		q := &Queue{Size: qr.Size, Desc: qr.Desc, Driver: qr.Driver, Device: qr.Device, Ready: true,
			EventIdx: f&FeatureEventIdx != 0, IndirectDesc: f&FeatureIndirectDesc != 0}
		if err := q.Validate(mem); err != nil {
			return nil, fmt.Errorf("virtio: queue %d: %w", i, err)
		}
		queues[i] = q
	}
	return queues, nil
}

// Start activates dev with the queues the driver enabled and the features
// it accepted, as a transport does at DRIVER_OK. The registers are read
// under mu, the transport's lock over them; dev.Activate runs without it,
// since a device may start goroutines that call back into the transport.
// The error — a queue the driver got wrong, or the device's own — is the
// transport's to answer with DEVICE_NEEDS_RESET.
func (r *Regs) Start(mu *sync.Mutex, mem *memory.Guest, dev Device, interrupt func(int)) error {
	mu.Lock()
	features := r.DriverFeatures
	queues, err := r.BuildQueues(mem)
	mu.Unlock()
	if err != nil {
		return err
	}
	return dev.Activate(mem, features, queues, interrupt)
}

// MarkNeedsReset sets DEVICE_NEEDS_RESET and bumps the configuration
// generation: the device cannot go on until the driver resets it. The
// transport then sends a configuration change notification.
func (r *Regs) MarkNeedsReset() {
	r.Status |= StatusDeviceNeedsReset
	r.Generation++
}

// TransportEvents is a transport's side of Events, the same on every
// transport: under the transport's lock, a device that needs a reset marks
// the registers so (if it is active) and a configuration change bumps the
// generation, each followed by the transport's configuration interrupt (for
// a driver that has set DRIVER_OK).
type TransportEvents struct {
	Mu   *sync.Mutex // the transport's register lock
	Regs *Regs
	// ConfigInterrupt sends the configuration change notification; it is
	// called with Mu held.
	ConfigInterrupt func()
	Log             *slog.Logger
	Name            string // the transport, for the log: "virtio-pci"
	Type            uint16 // the device's type, for the log
}

// NeedsReset is Events.NeedsReset.
func (e TransportEvents) NeedsReset(err error) {
	e.Log.Error(e.Name+": device needs a reset", "type", e.Type, "err", err)
	e.Mu.Lock()
	defer e.Mu.Unlock()
	if e.Regs.Active {
		e.Regs.MarkNeedsReset()
		e.ConfigInterrupt()
	}
}

// ConfigChanged is Events.ConfigChanged.
func (e TransportEvents) ConfigChanged() {
	e.Mu.Lock()
	defer e.Mu.Unlock()
	e.Regs.Generation++
	if e.Regs.Status&StatusDriverOK != 0 {
		e.ConfigInterrupt()
	}
}
