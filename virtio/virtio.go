// Package virtio is what every virtio device of ember shares, whatever its
// transport: the device status and feature bits of the virtio 1.2
// specification (OASIS), split virtqueues with the checks a hostile driver
// needs (queue.go), and Device, the boundary between a device model
// (virtio/rng, virtio/blk, ...) and a transport (virtio/pci) — as rust-vmm's
// virtio-queue and crosvm's VirtioDevice draw it. A device knows nothing of
// PCI or MMIO; a transport knows nothing of what a device does.
package virtio

import "ember/memory"

// Device status bits (virtio 1.2, §2.1).
const (
	StatusAcknowledge      = 1
	StatusDriver           = 2
	StatusDriverOK         = 4
	StatusFeaturesOK       = 8
	StatusDeviceNeedsReset = 64
	StatusFailed           = 128
)

// Feature bits every transport offers or knows (virtio 1.2, §6).
const (
	FeatureIndirectDesc = 1 << 28 // VIRTIO_F_INDIRECT_DESC
	FeatureEventIdx     = 1 << 29 // VIRTIO_F_EVENT_IDX
	FeatureVersion1     = 1 << 32 // VIRTIO_F_VERSION_1: a modern device
	FeatureAccessPlat   = 1 << 33 // VIRTIO_F_ACCESS_PLATFORM (never offered)
)

// Device IDs (virtio 1.2, §5).
const (
	IDNet     = 1
	IDBlock   = 2
	IDConsole = 3
	IDRNG     = 4
	IDBalloon = 5
	IDVsock   = 19
)

// Device is one virtio device model. A transport calls it from the vCPU
// thread that touched the device's registers, or from its notification
// goroutine; the device serves its queues on goroutines of its own.
type Device interface {
	// Type returns the virtio device ID (IDBlock, IDRNG, ...).
	Type() uint16
	// Features returns the device-specific feature bits the device offers;
	// the transport adds FeatureVersion1, FeatureEventIdx and
	// FeatureIndirectDesc itself.
	Features() uint64
	// QueueSizes returns the maximum size of each of the device's queues;
	// its length is the number of queues.
	QueueSizes() []uint16
	// ReadConfig and WriteConfig access the device-specific configuration
	// space at offset off. Out-of-range reads return zeros, writes to
	// read-only fields are ignored.
	ReadConfig(off uint64, data []byte)
	WriteConfig(off uint64, data []byte)
	// Activate starts the device when the driver sets DRIVER_OK: mem is the
	// guest's RAM, features the negotiated bits, queues the queues the
	// driver enabled (nil for one it left disabled), and interrupt is what
	// the device calls for queue i when, after it put buffers in the used
	// ring, Queue.NeedsInterrupt says the driver wants to hear of them
	// (NeedsInterrupt remembers its last answer, so only the device asks
	// it). An error marks the device DEVICE_NEEDS_RESET.
	Activate(mem *memory.Guest, features uint64, queues []*Queue, interrupt func(queue int)) error
	// Notify tells an active device that the driver put buffers in queue.
	Notify(queue int)
	// Reset stops an active device and forgets its queues: the driver wrote
	// 0 to the status, or the VM is resetting. Its goroutines have returned
	// when Reset does.
	Reset()
}

// Events is how an active device tells its transport of what happens
// between Activate and Reset, where no call of the transport's is there to
// return an error.
type Events interface {
	// NeedsReset says the device stopped serving (the driver broke a
	// queue): the transport sets DEVICE_NEEDS_RESET and sends a
	// configuration change notification, and the driver resets the device.
	NeedsReset(err error)
	// ConfigChanged says the device's configuration space changed on its
	// own (a console resized): the transport bumps config_generation and
	// sends a configuration change notification.
	ConfigChanged()
}

// EventSource is implemented by devices that report Events. A transport
// that finds it calls SetEvents once, before the device is used.
type EventSource interface {
	SetEvents(Events)
}

// QueueEventFDs is implemented by a device whose queues are served outside
// ember (an out-of-process back-end) through an eventfd pair per queue:
// while it is active, queue q's notifications go to its kick eventfd
// (which Notify writes) and the back-end signals its call eventfd when the
// driver should hear of used buffers (which the device relays to the
// interrupt callback of Activate). A transport that can have KVM signal
// the kick eventfd on the guest's notification (an ioeventfd), or inject
// the queue's interrupt when the call eventfd is signalled (an irqfd), uses
// them so, and the data path skips ember's goroutines.
type QueueEventFDs interface {
	// KickFD returns queue q's kick eventfd, and false if the device is
	// not active or q is not enabled. It stays open until Reset, and the
	// transport must have taken it out of KVM before it calls Reset.
	KickFD(q int) (fd int, ok bool)
	// CallFD returns queue q's call eventfd, as KickFD does.
	CallFD(q int) (fd int, ok bool)
	// RelayCalls switches the relay of queue q's call eventfd. With on
	// false the device stops reading it (the transport bound it to an
	// irqfd) and returns whether a call was pending, which the transport
	// delivers itself; with on true it reads it again and calls interrupt
	// for each call, one signalled while it was off included. It never
	// waits for interrupt, so a transport may call it under the lock its
	// interrupt callback takes.
	RelayCalls(q int, on bool) (pending bool)
}

// KickWaiter is a device that waits itself on the kick eventfd a queue
// carries (Queue.Kick) when Activate gives it one, as it waits on those
// KVM signals: whoever activates it need not pass those notifications on
// with Notify, and a back-end process does not, so a guest's notification
// wakes the device's own thread and no goroutine between.
type KickWaiter interface {
	QueueEventFDs
	// WaitsOnKicks marks the device.
	WaitsOnKicks()
}
