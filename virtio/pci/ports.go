package pci

import "ember/devices"

// Ports returns BAR1 as a device for the VM's port bus, at the port the
// BAR holds (Config.PortBAR, then wherever MovePortBAR moves it): a write at
// offset 4*q notifies queue q, as the same write to BAR0's notification
// region does; reads give zeros. A transport that puts an ioeventfd on a
// queue's port (PortNotifyOffset) only sees the writes that arrive while
// there is none.
func (f *Function) Ports() devices.Device { return ports{f} }

// PortNotifyOffset returns the offset in BAR1 of queue q's notification
// register, where a transport may put an ioeventfd.
func (f *Function) PortNotifyOffset(q int) uint64 { return uint64(q) * NotifyMultiplier }

// HasPorts says whether the function has BAR1 (Config.PortBAR).
func (f *Function) HasPorts() bool { return f.bars[portBAR].size != 0 }

// ports is BAR1 as a devices.Device.
type ports struct{ f *Function }

// Read reads as zeros: BAR1 holds only notification registers, which are
// write-only (virtio 1.2, §4.1.4.4).
func (ports) Read(_ uint64, data []byte) { clear(data) }

// Write notifies the queue whose register off is in.
func (p ports) Write(off uint64, _ []byte) {
	if off < PortBARSize {
		p.f.notify(int(off/NotifyMultiplier), &p.f.stats.NotifyPort)
	}
}
