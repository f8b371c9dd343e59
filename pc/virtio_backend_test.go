package pc

import (
	"testing"
	"time"

	"ember/hv"
	"ember/kvm"
	"ember/virtio/backend/backendtest"
	virtiopci "ember/virtio/pci"
	"ember/virtio/virtiotest"
)

// newBackendPC creates a PC VM of 2 MiB (memfd-backed) whose virtio-pci
// function's device is a backend.Remote, served over a socketpair by a
// back-end in this process whose device is a kickDevice, and a driver for
// the function. The VM closes before the Remote, as a machine's does (the
// function takes the Remote's eventfds out of KVM while they are open).
func newBackendPC(t *testing.T, h *hv.Hypervisor) (*hv.VM, *kickDevice, *virtiopci.Function, *driver) {
	t.Helper()
	dev := newKickDevice()
	vm, err := h.NewVM(hv.Config{MemorySize: 2 << 20, SharedMemory: true})
	if err != nil {
		t.Fatal(err)
	}
	remote := backendtest.Serve(t, dev, vm.Memory())
	t.Cleanup(func() { vm.Close() })
	p, err := Attach(vm, Config{})
	if err != nil {
		t.Fatal(err)
	}
	f, err := p.AddVirtio(vm, remote)
	if err != nil {
		t.Fatal(err)
	}
	return vm, dev, f, newDriver(t, f)
}

// TestVirtioBackendKicksThroughKVM: with the device served by a back-end,
// a guest's notification is signalled by KVM on the back-end's own kick
// eventfd: the back-end's device hears of it, with no exit and without
// ember's notification goroutine (no notification counted by the
// function), also after the driver moved BAR0 and after a reset and a new
// start.
func TestVirtioBackendKicksThroughKVM(t *testing.T) {
	h := openHV(t)
	for _, tc := range []struct {
		name    string
		moveTo  uint32
		restart bool
	}{
		{"at BAR0", 0, false},
		{"after the driver moved BAR0", 0xc0100000, false},
		{"after a reset and a new start", 0, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			vm, dev, f, d := newBackendPC(t, h)
			d.start()
			if tc.moveTo != 0 {
				d.cfgWrite(0x10, tc.moveTo, 4)
				d.bar0 = uint64(tc.moveTo)
			}
			if tc.restart {
				d.write(d.common+virtiotest.CommonDeviceStatus, 0, 1) // reset
				if s := f.Stats(); s.DirectKicks != 0 {
					t.Fatalf("%d direct kicks after the reset", s.DirectKicks)
				}
				d.start()
			}
			if s := f.Stats(); s.DirectKicks != 2 {
				t.Fatalf("%d queues kicked directly, want 2", s.DirectKicks)
			}
			runToExit(t, vm, notifyCode, kvm.Regs{RAX: 1, RBX: d.bar0 + d.notify + d.notifyMult, RCX: 64})
			select {
			case q := <-dev.kicks:
				if q != 1 {
					t.Errorf("the back-end heard of queue %d, want 1", q)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("the back-end never heard of the notifications")
			}
			if s := f.Stats(); s.NotifyEventFD != 0 || s.NotifyMMIO != 0 || vm.Exits() > 2 {
				t.Errorf("%d exits, %d notifications through ember's eventfd, %d through MMIO: want none through ember",
					vm.Exits(), s.NotifyEventFD, s.NotifyMMIO)
			}
		})
	}
}

// TestVirtioBackendCallsThroughKVM: the back-end's calls reach the guest
// (the virq guest's handler for vector 0x40) on KVM's irqfd while the
// queue's vector is live, with no signal from ember; a call while the
// vector is masked is relayed into the PBA and delivered on unmask, once;
// then KVM takes the calls again; the function's reset unbinds everything.
func TestVirtioBackendCallsThroughKVM(t *testing.T) {
	h := openHV(t)
	vm, dev, f, d := newBackendPC(t, h)
	d.start()
	d.setMSIX(true, false)
	d.setEntry(1, 0xfee00000, 0x40, false)
	if s := f.Stats(); s.DirectCalls != 1 {
		t.Fatalf("%d queues with direct calls, want 1 (queue 0; queue 1's vector is masked)", s.DirectCalls)
	}
	reports, done := startVirq(t, vm, 3)
	expectReport(t, reports, done, 0)

	dev.Interrupt(0) // the back-end signals its call eventfd
	expectReport(t, reports, done, 1)

	d.setMask(1, true)
	dev.Interrupt(0)
	for deadline := time.Now().Add(10 * time.Second); d.pending() != 1<<1; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("masked vector: PBA %#x, want 0x2", d.pending())
		}
	}
	d.setMask(1, false)
	expectReport(t, reports, done, 2)

	dev.Interrupt(0)
	expectReport(t, reports, done, 3)
	if res := <-done; res.Reason != hv.StopExit || res.Status != 0x56 {
		t.Errorf("Run = %v, want exit 0x56 after 3 interrupts", res)
	}
	if s := f.Stats(); s.IRQFD != 1 || s.MSI != 0 || s.INTx != 0 || s.DirectCalls != 1 {
		t.Errorf("stats %+v: want 1 signal by ember (the pending one), the others by KVM", s)
	}
	f.Reset()
	if n, s := vm.EventFDs().MSIRoutes(), f.Stats(); n != 0 || s.DirectCalls != 0 || s.DirectKicks != 0 {
		t.Errorf("after the function's reset: %d MSI routes, stats %+v", n, s)
	}
}
