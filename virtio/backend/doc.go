// Package backend runs a virtio device in a process of its own, the split
// vhost-user and ACRN's device model make: ember keeps the transport
// (virtio-pci's configuration space, common configuration, ISR and MSI-X)
// and the back-end process gets what the data path needs — the guest's RAM
// as memfds, each queue's layout when the driver sets DRIVER_OK, a kick
// eventfd per queue (the driver notified) and a call eventfd per queue (the
// device used buffers: interrupt the driver). The messages are ember's
// device-model protocol's framing with ops of their own
// (docs/ioreq-protocol.md, "Virtio back-ends").
//
// Remote is ember's side: a virtio.Device whose queues are served
// elsewhere. Serve is the back-end's side: it serves any virtio.Device
// (virtio/blk's Disk for `ember backend blk`) over one connection, with the
// device's own request code running on a memory.Guest built over the shared
// memfds, so every access still goes through the checked accessor. A
// device that waits on kick eventfds on a thread of its own (a
// virtio.KickWaiter: the Disk) is given the kick eventfds themselves, so
// a guest's notification, which KVM signals in ember, wakes that thread
// directly, as a vhost-user back-end's polls its kick fds.
//
// Each side takes the other for hostile. ember checks every message a
// back-end sends (its device description, replies, events) and treats a
// malformed one, a reply that does not come in time and a closed socket
// alike: the back-end is gone, the device is marked DEVICE_NEEDS_RESET with
// a configuration change interrupt, and the VM goes on. A back-end checks
// every queue index, size and address against the device and guest RAM, and
// every descriptor it is handed. What a back-end is trusted with is what
// ACRN trusts its device model with: it maps the guest's RAM, so it can
// give its guest wrong data, but it cannot make ember read or write outside
// that RAM, crash, or hang.
package backend
