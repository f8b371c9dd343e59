package machine

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"

	"ember/guest"
	"ember/hv"
	"ember/hypercall"
	"ember/kvm/kvmcap"
	"ember/multiboot"
	"ember/pc"
	"ember/virtio"
	"ember/virtio/backend"
	"ember/virtio/balloon"
	"ember/virtio/blk"
	"ember/virtio/console"
	virtionet "ember/virtio/net"
	"ember/virtio/rng"
	"ember/virtio/vsock"
	"ember/vmm"
)

// Options are what a build takes besides the configuration: where the
// console goes and where logs go.
type Options struct {
	Console io.Writer    // the guest's console output; nil discards it
	Logger  *slog.Logger // the VM's and the devices' logs; nil is slog.Default()
}

// Machine is a built VM, ready to run: the VM, its PC platform and the
// input side of its console. Close releases all of it.
type Machine struct {
	VM       *hv.VM
	Platform *pc.Platform
	// Balloon is the virtio-balloon device, or nil without one: the host
	// sets its target and reads the guest's statistics through it.
	Balloon *balloon.Device
	// Disks are the virtio-blk devices served in ember's process, one a
	// Config.Disks entry in its order (nil for a disk a back-end process
	// serves), and Nets the virtio-net devices, one a Config.Nets entry:
	// the host reads their totals (Stats).
	Disks []*blk.Disk
	Nets  []*virtionet.Device
	hvcIn io.Writer // the virtio console's input, or nil for COM1
}

// Build makes the VM that p describes through the hypercall service (so
// its guest sees ember's hypercall ABI), with the PC platform, the virtio
// devices and the guest loaded and its boot vCPU at the entry point. On an
// error nothing of it is left.
func Build(hc *hypercall.Service, p *Prepared, o Options) (*Machine, error) {
	if max, err := hc.Hypervisor().System().CheckExtension(kvmcap.MaxVCPUs); err == nil && max > 0 && p.HV.VCPUs > max {
		return nil, fmt.Errorf("cpus %d: this host's KVM allows at most %d vCPUs per VM", p.HV.VCPUs, max)
	}
	cfg := p.HV
	cfg.Console, cfg.Logger = o.Console, o.Logger
	vm, err := hc.NewVM(cfg, hypercall.Identity{})
	if err != nil {
		return nil, err
	}
	m := &Machine{VM: vm}
	if err := m.build(p); err != nil {
		vm.Close()
		return nil, err
	}
	return m, nil
}

// build attaches the platform and devices and loads the guest.
func (m *Machine) build(p *Prepared) error {
	vm := m.VM
	plat, err := pc.Attach(vm, pc.Config{FWCfgKernel: p.fwcfg, TestDevices: p.Config.TestDevices, DebugExitPort: p.Config.DebugExitPort, HyperVTestDev: p.Config.HyperVTestDev,
		IOMMU: p.Config.IOMMU, EDU: p.Config.EDU})
	if err != nil {
		return err
	}
	m.Platform = plat
	if err := m.addVirtio(p); err != nil {
		return err
	}
	switch {
	case p.bios != nil:
		if err := pc.LoadFirmware(vm, p.bios); err != nil {
			return err
		}
		return vm.SetEntry(0, pc.ResetVector)
	case p.mb != nil:
		b, err := multiboot.Load(vm.Memory(), p.mb.kernel, p.mb.cfg)
		if err != nil {
			return err
		}
		// A multiboot kernel starts where a boot loader leaves it, after
		// the firmware initialized the PICs.
		if err := pc.SetBIOSPIC(vm); err != nil {
			return err
		}
		return vm.SetEntry(0, b.Entry)
	case p.linux != nil:
		img := *p.linux
		if args := plat.VirtioMMIOCmdline(); args != "" {
			img.Cmdline += " " + args
		}
		entry, err := vmm.SetupLinuxImages(vm.Memory(), img)
		if err != nil {
			return err
		}
		return vm.SetEntry(0, vmm.CPUEntry(entry))
	default:
		if err := vm.LoadImage(p.prog.Code, guest.LoadAddr); err != nil {
			return err
		}
		return vm.SetEntry(0, p.prog.Entry())
	}
}

// addVirtio gives the VM the virtio devices p asks for: the disks (closed
// with the VM, after a last flush), the network interfaces, the vsock
// device, the entropy source and the console.
func (m *Machine) addVirtio(p *Prepared) error {
	vm, log := m.VM, m.VM.Logger()
	// attach puts d on the PCI bus or on virtio-mmio, as the
	// configuration says; add does too, and closer runs when the VM closes.
	attach := func(d virtio.Device) error {
		if p.Config.VirtioTransport == TransportMMIO {
			_, err := m.Platform.AddVirtioMMIO(vm, d)
			return err
		}
		_, err := m.Platform.AddVirtio(vm, d)
		return err
	}
	add := func(d virtio.Device, closer func() error) error {
		vm.OnClose(func() { closer() })
		return attach(d)
	}
	for _, s := range p.disks {
		if s.backend != "" {
			d, err := backend.Dial(s.backend, backend.Config{Mem: vm.Memory(), Type: virtio.IDBlock, Logger: log})
			if err != nil {
				return fmt.Errorf("disk: %w", err)
			}
			if err := add(d, d.Close); err != nil {
				return err
			}
			m.Disks = append(m.Disks, nil)
			continue
		}
		c := s.blk
		c.Logger = log
		d, err := blk.Open(c)
		if err != nil {
			return err
		}
		if err := add(d, flushCloser{d}.Close); err != nil {
			return err
		}
		m.Disks = append(m.Disks, d)
	}
	for _, c := range p.nets {
		c.Logger = log
		d, err := virtionet.New(c)
		if err != nil {
			return fmt.Errorf("net tap=%s: %w", c.TAP, err)
		}
		if err := add(d, d.Close); err != nil {
			return err
		}
		m.Nets = append(m.Nets, d)
	}
	if p.vsock != nil {
		c := *p.vsock
		c.Logger = log
		d, err := vsock.New(c)
		if err != nil {
			return fmt.Errorf("vsock: %w", err)
		}
		if err := add(d, d.Close); err != nil {
			return err
		}
	}
	if p.balloon != nil {
		c := p.balloon.cfg
		c.Logger = log
		d, err := balloon.New(c)
		if err != nil {
			return fmt.Errorf("balloon: %w", err)
		}
		if err := d.SetTarget(p.balloon.target); err != nil {
			return fmt.Errorf("balloon: %w", err)
		}
		// The balloon has no Close: a reset stops its goroutine, before
		// the RAM it releases pages of goes.
		vm.OnClose(d.Reset)
		if err := attach(d); err != nil {
			return err
		}
		m.Balloon = d
	}
	if p.Config.RNG {
		if err := attach(rng.New(log)); err != nil {
			return err
		}
	}
	if p.Config.ConsoleDevice != ConsoleVirtio {
		return nil
	}
	// The guest's input comes through a pipe, closed with the VM, so the
	// device's reader ends with the VM.
	pr, pw := io.Pipe()
	dev, err := console.New(console.Config{Output: vm.Config().Console, Input: pr, Cols: 80, Rows: 25, Logger: log})
	if err != nil {
		return err
	}
	vm.OnClose(func() { pw.Close() })
	if err := add(dev, dev.Close); err != nil {
		return err
	}
	m.hvcIn = pw
	return nil
}

// flushCloser closes a disk after a last flush, so what the guest wrote is
// on the file when the VM goes.
type flushCloser struct{ d *blk.Disk }

func (f flushCloser) Close() error {
	f.d.Flush()
	return f.d.Close()
}

// Input feeds p to the guest's console: COM1's receive FIFO, waiting while
// it is full (until ctx ends), or the virtio console, waiting until the
// guest has room. It fails once the VM is closed.
func (m *Machine) Input(ctx context.Context, p []byte) error {
	if m.hvcIn != nil {
		_, err := m.hvcIn.Write(p)
		return err
	}
	return m.Platform.COM1.Feed(ctx, bytes.NewReader(p))
}

// Close closes the VM and every device and file the machine opened.
func (m *Machine) Close() error { return m.VM.Close() }
