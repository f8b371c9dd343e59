package pc

import (
	"testing"

	"ember/hv"
	"ember/internal/kvmtest"
	virtionet "ember/virtio/net"
)

// TestVirtioVhostNetThroughKVM: once the driver has started a virtio-net
// device whose queues vhost-net serves, and unmasked its vectors, both
// queues' notifications are KVM ioeventfds on vhost's kick eventfds and
// both queues' calls are bound to their vectors' irqfds, so neither a
// notification nor an interrupt passes through ember; the function's
// reset unbinds them all.
func TestVirtioVhostNetThroughKVM(t *testing.T) {
	h := openHV(t)
	kvmtest.RequireVhostNet(t)
	dev, err := virtionet.New(virtionet.Config{TAP: "embertest%d", Vhost: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dev.Close() }) // after the VM's, as a machine closes them
	vm, f, d := newVirtioPCWith(t, h, hv.Config{}, dev)
	d.start()
	d.setMSIX(true, false)
	d.setEntry(1, 0xfee00000, 0x40, false)
	d.setEntry(2, 0xfee00000, 0x41, false)
	if s := f.Stats(); s.DirectKicks != 2 || s.DirectCalls != 2 {
		t.Errorf("stats %+v: want both queues' kicks and calls through KVM", s)
	}
	f.Reset()
	if n, s := vm.EventFDs().MSIRoutes(), f.Stats(); n != 0 || s.DirectCalls != 0 || s.DirectKicks != 0 {
		t.Errorf("after the function's reset: %d MSI routes, stats %+v", n, s)
	}
}
