package pc

import (
	"fmt"
	"log/slog"

	"golang.org/x/sys/unix"

	"ember/devices"
	"ember/devices/debugexit"
	"ember/devices/hypervtestdev"
	"ember/devices/testdev"
	"ember/hv"
	"ember/hv/synic"
	"ember/memory"
)

// abiPorts are hv's guest-ABI ports a QEMU test device may be placed over.
var abiPorts = []struct {
	base, size uint64
	name       string
}{
	{hv.PortConsole, 1, "console"},
	{hv.PortExit, 4, "exit"},
}

// testDeviceRange is one range a test device claims.
type testDeviceRange struct {
	name       string
	base, size uint64
	mmio       bool
	dev        devices.Device
}

// attachTestDevices makes QEMU's isa-debug-exit and pc-testdev
// (Config.TestDevices) and claims their ranges. The debug exit ends the run
// the way hv's exit port does, with hv.StopExit and the device's status.
// Where one covers an ABI port of hv's, the ABI port gives way: QEMU's
// layout is what the test guests are written for.
func (p *Platform) attachTestDevices(vm *hv.VM, cfg Config) error {
	log := vm.Logger()
	port, size := uint64(cfg.DebugExitPort), uint64(cfg.DebugExitSize)
	if port == 0 {
		port = debugexit.DefaultPort
	}
	if size == 0 {
		size = debugexit.DefaultSize
	}
	if port+size > 1<<16 {
		return fmt.Errorf("pc: isa-debug-exit at %#x+%#x: past the last I/O port", port, size)
	}
	p.DebugExit = debugexit.New(debugexit.Config{
		Exit:   func(status int) { vm.StopWith(hv.Result{Reason: hv.StopExit, Status: status}) },
		Logger: log,
	})
	p.TestDev = testdev.New(testdev.Config{
		IRQ:    func(n int) devices.IRQLine { return irqLine{vm.KVM(), log, uint32(n)} },
		Flush:  flushPage(vm.Memory(), log),
		Logger: log,
	})
	ranges := []testDeviceRange{{"isa-debug-exit", port, size, false, p.DebugExit}}
	for _, r := range p.TestDev.Regions() {
		ranges = append(ranges, testDeviceRange{r.Name, r.Base, r.Size, r.MMIO, r.Dev})
	}
	for _, abi := range abiPorts {
		for _, r := range ranges {
			if r.mmio || r.base >= abi.base+abi.size || abi.base >= r.base+r.size {
				continue
			}
			if err := vm.PIO.Unregister(abi.base); err != nil {
				return fmt.Errorf("pc: %s over the ABI %s port %#x: %w", r.name, abi.name, abi.base, err)
			}
			log.Debug("a test device takes the place of an ABI port", "device", r.name, "port", abi.name, "base", abi.base)
			break
		}
	}
	for _, r := range ranges {
		bus := vm.PIO
		if r.mmio {
			bus = vm.MMIO
		}
		if err := bus.Register(r.base, r.size, r.name, r.dev); err != nil {
			return fmt.Errorf("pc: test devices: %w", err)
		}
	}
	return nil
}

// attachHyperVTestDev makes QEMU's hyperv-testdev (Config.HyperVTestDev) on
// the VM's SynICs and claims its port; closing the VM drops the routes and
// connections the guest left.
func (p *Platform) attachHyperVTestDev(vm *hv.VM) error {
	if p.SynIC == nil {
		return fmt.Errorf("pc: hyperv-testdev: %w", synic.ErrNoHyperV)
	}
	d := hypervtestdev.New(synicAdapter{p.SynIC}, vm.NumVCPUs(), vm.Logger())
	if err := vm.PIO.Register(hypervtestdev.Port, hypervtestdev.Size, "hyperv-testdev", d); err != nil {
		return fmt.Errorf("pc: hyperv-testdev: %w", err)
	}
	vm.OnClose(func() {
		if err := d.Close(); err != nil {
			vm.Logger().Warn("hyperv-testdev: closing its routes", "err", err)
		}
	})
	p.HyperVTestDev = d
	return nil
}

// synicAdapter gives hypervtestdev the VM's SynIC service, whose routes it
// takes as its Route interface.
type synicAdapter struct{ *synic.Service }

func (a synicAdapter) NewSINTRoute(vp, sint uint32, messages bool) (hypervtestdev.Route, error) {
	r, err := a.NewRoute(vp, sint, messages)
	if err != nil {
		return nil, err
	}
	return r, nil
}

// flushPage returns pc-testdev's page flush: it makes the host drop KVM's
// mappings of one guest page, so the guest's next access to it faults into
// KVM again, which is what kvm-unit-tests checks the shadow and nested page
// tables with. Changing the protection of the host page makes the kernel
// invalidate it through KVM's MMU notifier. QEMU makes the page
// inaccessible for that moment; ember only read-only, so a host thread that
// reads guest memory meanwhile (a device, another vCPU's emulation) still
// can. One that writes it then would fault: the devices that write guest
// memory on their own threads are virtio's, which a test machine has no
// reason to have.
func flushPage(mem *memory.Guest, log *slog.Logger) func(gpa uint64) {
	return func(gpa uint64) {
		page, err := mem.Slice(gpa, memory.PageSize)
		if err != nil {
			log.Debug("pc-testdev: flush of a page that is not RAM", "gpa", gpa)
			return
		}
		if err := unix.Mprotect(page, unix.PROT_READ); err != nil {
			log.Warn("pc-testdev: flushing a guest page failed", "gpa", gpa, "err", err)
			return
		}
		if err := unix.Mprotect(page, unix.PROT_READ|unix.PROT_WRITE); err != nil {
			log.Error("pc-testdev: a flushed guest page stays read-only", "gpa", gpa, "err", err)
		}
	}
}
