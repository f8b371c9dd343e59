package pc

import (
	"encoding/binary"
	"fmt"
	"strings"
	"testing"
	"time"

	"ember/devices/testdev"
	"ember/devices/uart"
	"ember/hv"
	"ember/kvm"
	"ember/layout"
	"ember/pc/fwtables"
	"ember/virtio"
	"ember/virtio/mmio"
)

// TestVirtioMMIOSlotsFitTheLayout: every virtio-mmio device the platform
// offers has a whole register block of its own in the layout's area,
// overlapping no other range of the PC's guest-physical map, and no more
// are offered than there is room for.
func TestVirtioMMIOSlotsFitTheLayout(t *testing.T) {
	type span struct {
		name        string
		start, size uint64
	}
	platform := []span{
		{"RAM below the hole", 0, layout.MMIOHoleStart},
		{"the PCI window", layout.PCIMMIO32Start, layout.PCIMMIO32End - layout.PCIMMIO32Start + 1},
		{"the IOAPIC", layout.IOAPIC, 0x1000},
		{"an HPET", 0xfed00000, 0x400},
		{"the LAPIC", layout.LAPIC, 0x1000},
		{"KVM's identity map and TSS", layout.KVMIdentityMap, 0x4000},
		{"pc-testdev's memory", testdev.IOMemBase, 0x10000},
		{"a firmware ROM", layout.FirmwareTop - 16<<20, 16 << 20},
		{"RAM above 4 GiB", layout.MMIOHoleEnd, 1 << 40},
	}
	if layout.VirtioMMIOSize < mmio.Size {
		t.Fatalf("layout gives %#x-byte blocks; virtio-mmio's registers take %#x", layout.VirtioMMIOSize, mmio.Size)
	}
	if MaxVirtioMMIO < 4 {
		t.Errorf("room for %d virtio-mmio devices, want at least 4", MaxVirtioMMIO)
	}
	var taken []span
	for i := range MaxVirtioMMIO {
		base, _, err := MMIOSlot(i)
		if err != nil {
			t.Fatalf("slot %d: %v", i, err)
		}
		s := span{fmt.Sprintf("virtio-mmio device %d", i), base, layout.VirtioMMIOSize}
		if base < layout.VirtioMMIO || base+s.size > layout.VirtioMMIOEnd {
			t.Errorf("%s at %#x is outside the area %#x-%#x", s.name, base, layout.VirtioMMIO, layout.VirtioMMIOEnd)
		}
		for _, o := range append(platform, taken...) {
			if base < o.start+o.size && o.start < base+s.size {
				t.Errorf("%s at %#x overlaps %s at %#x", s.name, base, o.name, o.start)
			}
		}
		taken = append(taken, s)
	}
	for _, i := range []int{-1, MaxVirtioMMIO} {
		if _, _, err := MMIOSlot(i); err == nil || !strings.Contains(err.Error(), "no room for virtio-mmio device") {
			t.Errorf("slot %d: err %v", i, err)
		}
	}
}

// TestVirtioMMIOLinesAreFree: each virtio-mmio device has an ISA line of
// its own (Linux maps ISA lines to IRQs without ACPI's help), which no
// platform device and no virtio-pci INTx drives: two devices driving one
// line with KVM_IRQ_LINE levels would lower each other's interrupt.
func TestVirtioMMIOLinesAreFree(t *testing.T) {
	used := map[uint32]string{0: "PIT", irqKeyboard: "i8042", 2: "PIC cascade", uart.COM1IRQ: "COM1", irqRTC: "RTC", fwtables.IRQSCI: "ACPI SCI"}
	for _, g := range intxGSIs {
		used[g] = "virtio-pci INTx"
	}
	for i := range MaxVirtioMMIO {
		_, gsi, _ := MMIOSlot(i)
		if gsi >= 16 {
			t.Errorf("device %d on GSI %d, not an ISA line", i, gsi)
		}
		if dev, ok := used[gsi]; ok {
			t.Errorf("device %d on GSI %d, the %s's line", i, gsi, dev)
		}
		used[gsi] = fmt.Sprintf("virtio-mmio device %d", i)
	}
}

// TestVirtioMMIOCmdline: the arguments Linux gets name each device's block
// and line, in attachment order, and nothing without devices.
func TestVirtioMMIOCmdline(t *testing.T) {
	for _, tt := range []struct {
		n    int
		want string
	}{
		{0, ""},
		{1, "virtio_mmio.device=4K@0xfec10000:6"},
		{3, "virtio_mmio.device=4K@0xfec10000:6 virtio_mmio.device=4K@0xfec11000:7 virtio_mmio.device=4K@0xfec12000:3"},
	} {
		p := &Platform{}
		for i := range tt.n {
			base, gsi, _ := MMIOSlot(i)
			p.mmio = append(p.mmio, mmioDevice{base: base, gsi: gsi})
		}
		if got := p.VirtioMMIOCmdline(); got != tt.want {
			t.Errorf("%d devices: %q, want %q", tt.n, got, tt.want)
		}
	}
}

// mmioNotifyCode writes EAX to [EBX] ECX times, 4 bytes at a time (a
// driver's QueueNotify write), then exits.
var mmioNotifyCode = []byte{
	0x89, 0x03, //       mov %eax, (%ebx)
	0xe2, 0xfc, //       loop .-4
	0x31, 0xc0, //       xor %eax, %eax
	0xe7, hv.PortExit, // out %eax, $PORT_EXIT
	0xf4, //             hlt
}

// TestVirtioMMIONotifyThroughIOEventFD: a guest's write of a queue's index
// to a virtio-mmio device's QueueNotify is matched by KVM's ioeventfd for
// that queue and reaches the device without an exit; a value no queue has
// exits to the register block, which ignores it.
func TestVirtioMMIONotifyThroughIOEventFD(t *testing.T) {
	h := openHV(t)
	const n = 64
	for _, tc := range []struct {
		name  string
		value uint32
		slot  int // which device is written to; those before it are attached too
	}{
		{"queue 0 of the first device", 0, 0},
		{"queue 1 of the first device", 1, 0},
		{"queue 1 of the third device", 1, 2},
		{"a queue the device does not have: exits, and nobody is notified", 7, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			vm, err := h.NewVM(hv.Config{MemorySize: 2 << 20})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { vm.Close() })
			p, err := Attach(vm, Config{})
			if err != nil {
				t.Fatal(err)
			}
			var dev *kickDevice
			var tr *mmio.Transport
			for range tc.slot + 1 {
				dev = newKickDevice()
				if tr, err = p.AddVirtioMMIO(vm, dev); err != nil {
					t.Fatal(err)
				}
			}
			startMMIODriver(t, tr)
			base, _, _ := MMIOSlot(tc.slot)
			runToExit(t, vm, mmioNotifyCode, kvm.Regs{RAX: uint64(tc.value), RBX: base + mmio.NotifyOffset, RCX: n})
			if tc.value >= 2 {
				if vm.Exits() < n || len(dev.Notified()) != 0 {
					t.Errorf("%d exits for %d writes, notifications %v: want every write through MMIO, none passed on", vm.Exits(), n, dev.Notified())
				}
				return
			}
			select {
			case <-dev.kicks:
			case <-time.After(10 * time.Second):
				t.Fatal("the device never heard of the writes")
			}
			if vm.Exits() > 2 {
				t.Errorf("%d exits for %d writes: want them through the ioeventfd", vm.Exits(), n)
			}
			for _, q := range dev.Notified() {
				if q != int(tc.value) {
					t.Errorf("queue %d notified, want only %d", q, tc.value)
				}
			}
		})
	}
}

// startMMIODriver brings a virtio-mmio device to DRIVER_OK from the host,
// as a guest's driver would through its registers, with both queues in
// guest RAM at 1 MiB.
func startMMIODriver(t *testing.T, tr *mmio.Transport) {
	t.Helper()
	get := func(off uint64) uint32 {
		var b [4]byte
		tr.Read(off, b[:])
		return binary.LittleEndian.Uint32(b[:])
	}
	set := func(off uint64, v uint32) {
		var b [4]byte
		binary.LittleEndian.PutUint32(b[:], v)
		tr.Write(off, b[:])
	}
	const status, featSel, feat, queueSel, queueNum, queueReady = 0x70, 0x24, 0x20, 0x30, 0x38, 0x44
	set(status, virtio.StatusAcknowledge|virtio.StatusDriver)
	set(featSel, 1)
	set(feat, 1) // VIRTIO_F_VERSION_1
	set(status, virtio.StatusAcknowledge|virtio.StatusDriver|virtio.StatusFeaturesOK)
	for q := range 2 {
		set(queueSel, uint32(q))
		set(queueNum, 64)
		ring := uint64(1<<20 + q*0x3000)
		for i, a := range []uint64{ring, ring + 0x1000, ring + 0x2000} {
			set(0x80+uint64(i)*0x10, uint32(a))
		}
		set(queueReady, 1)
	}
	set(status, virtio.StatusAcknowledge|virtio.StatusDriver|virtio.StatusFeaturesOK|virtio.StatusDriverOK)
	if s := get(status); s&virtio.StatusDriverOK == 0 || s&virtio.StatusDeviceNeedsReset != 0 {
		t.Fatalf("status %#x after DRIVER_OK", s)
	}
}
