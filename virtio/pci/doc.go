// Package pci is the virtio-pci transport, modern (virtio 1.2, §4.1): a
// virtio.Device presented as a PCI function on ember's host bridge, the way
// a stock distribution kernel finds it (by PCI enumeration).
//
// The function has one 32-bit memory BAR (BAR0, BARSize bytes) holding, at
// fixed offsets, the common configuration, the ISR status, the device
// configuration, the queue notification addresses and the MSI-X table and
// pending-bit array; its configuration space lists them with the virtio
// vendor capabilities and an MSI-X capability. It may also have an I/O BAR
// (BAR1, Config.PortBAR) holding a second set of queue notification
// registers, listed first: on AMD's SVM, KVM serves an ioeventfd on a port
// without decoding the guest's instruction, which a write to memory needs. Interrupts go out as MSI-X
// messages (one vector per queue and one for configuration changes, as
// Linux asks) or, before the driver enables MSI-X, as INTx on a level line
// with the ISR bits. Each MSI-X vector the driver unmasks can have a Vector
// of its own (Config.NewVector: a KVM irqfd in pc), so that an interrupt is
// an eventfd write rather than an ioctl; the function keeps its route on
// the vector's message, holds interrupts in the pending bits while the
// vector is masked, and falls back to Config.MSI if routing fails. Function
// is independent of KVM: it reaches the VM only through Config's
// callbacks, so it is tested without one.
package pci
