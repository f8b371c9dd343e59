package vmm

import (
	"errors"
	"strings"

	"ember/pc"
	"ember/virtio"
)

// ErrNoPlatform is AddVirtio or AddVirtioMMIO on a guest without the PC
// platform.
var ErrNoPlatform = errors.New("vmm: the guest has no PC platform (AttachPC)")

// AttachPC wires the PC platform onto the guest (pc.Attach: COM1, the
// i8042, the RTC, ACPI PM, the PCI host bridge, the MP and ACPI tables), for
// a guest such as Linux that expects a PC. Call it once, before Start.
func (g *Guest) AttachPC(cfg pc.Config) (*pc.Platform, error) {
	p, err := pc.Attach(g.vm, cfg)
	if err != nil {
		return nil, err
	}
	g.mu.Lock()
	g.plat = p
	g.mu.Unlock()
	return p, nil
}

// AddVirtio puts dev on the guest's PCI bus as a virtio-pci function
// (pc.Platform.AddVirtio), as ember run's --disk, --net, --rng and
// --console-device do; a device from virtio/blk, virtio/net, virtio/rng or
// virtio/console, or one of the program's own. Reset and Restart reset it
// before guest RAM is cleared. Call it before Start.
//
//	disk, _ := blk.Open(blk.Config{Path: "disk.img"})
//	g.AttachPC(pc.Config{})
//	g.AddVirtio(disk)
//
// A disk served by another process (`ember backend blk`) is a
// backend.Remote, on a guest made with hv.Config{SharedMemory: true} so the
// back-end can map its RAM; close it after the guest:
//
//	disk, _ := backend.Dial("/run/disk.sock", backend.Config{Mem: g.VM().Memory(), Type: virtio.IDBlock})
//	g.AddVirtio(disk)
func (g *Guest) AddVirtio(dev virtio.Device) error {
	g.mu.Lock()
	p := g.plat
	g.mu.Unlock()
	if p == nil {
		return ErrNoPlatform
	}
	_, err := p.AddVirtio(g.vm, dev)
	return err
}

// AddVirtioMMIO puts dev on virtio-mmio (pc.Platform.AddVirtioMMIO), as
// ember run --virtio-transport mmio does, for a kernel built with
// CONFIG_VIRTIO_MMIO_CMDLINE_DEVICES. It returns the argument that tells
// Linux of the device (virtio_mmio.device=...), for the program to add to
// the kernel command line it gives SetupLinuxImages. Reset and Restart
// reset the device before guest RAM is cleared. Call it before Start.
func (g *Guest) AddVirtioMMIO(dev virtio.Device) (cmdlineArg string, err error) {
	g.mu.Lock()
	p := g.plat
	g.mu.Unlock()
	if p == nil {
		return "", ErrNoPlatform
	}
	if _, err := p.AddVirtioMMIO(g.vm, dev); err != nil {
		return "", err
	}
	args := strings.Fields(p.VirtioMMIOCmdline())
	return args[len(args)-1], nil
}

// resetDevices resets the platform's devices, if there is a platform. The
// caller holds g.mu.
func (g *Guest) resetDevices() {
	if g.plat != nil {
		g.plat.ResetDevices()
	}
}
