package vmm

import (
	"fmt"

	"ember/hv"
	"ember/kvm"
	"ember/x86"
)

// BootEntry is the CPU state Start gives the boot vCPU: 64-bit long mode at
// ring 0 with the low 4 GiB identity-mapped (package x86), RIP = pc,
// RSI = params and RDI = initrd.
//
// For Linux's 64-bit boot protocol params is the zero page (struct
// boot_params) and pc the kernel's 64-bit entry (startup_64, load address +
// 0x200); the kernel finds the initrd through the zero page
// (hdr.ramdisk_image, which SetupLinuxImages fills), so RDI is ignored there.
// It is the seed's dtb and initrd arguments mapped onto x86: the boot
// parameters take the device tree's place.
func BootEntry(pc, params, initrd uint64) x86.Entry {
	return x86.Entry{Mode: x86.LongMode, RIP: pc, Regs: kvm.Regs{RSI: params, RDI: initrd}}
}

// Start boots the guest, as libvmm's guest_start passes control to the
// kernel entry point: vCPU bootVCPU starts in BootEntry(pc, params, initrd),
// the other vCPUs wait for INIT/SIPI from it, and the guest runs in the
// background until it exits, shuts down or fails, or the host ends it
// (Restart, Close). Start returns at once; Wait returns how the run ended.
// Starting a guest that is running gives ErrStarted; a guest whose run has
// ended may be started again (its state is not reset: that is Restart).
//
//	g.VM().LoadImage(code, 0x10000)
//	if err := g.Start(0, 0x10000, 0, 0); err != nil { ... }
//	res, err := g.Wait()
func (g *Guest) Start(bootVCPU int, pc, params, initrd uint64) error {
	return g.StartEntry(bootVCPU, BootEntry(pc, params, initrd))
}

// StartEntry is Start with the boot vCPU's state spelled out, for images that
// start in another mode or need another stack (CPUEntry gives it for Linux).
func (g *Guest) StartEntry(bootVCPU int, e x86.Entry) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return ErrClosed
	}
	if g.run != nil && !g.run.Finished() {
		return ErrStarted
	}
	return g.startLocked(bootVCPU, e)
}

// startLocked sets up the vCPUs and starts a run. The caller holds g.mu and
// has made sure no run is in progress.
func (g *Guest) startLocked(bootVCPU int, e x86.Entry) error {
	if bootVCPU < 0 || bootVCPU >= g.vm.NumVCPUs() {
		return fmt.Errorf("vmm: no vCPU %d (the guest has %d)", bootVCPU, g.vm.NumVCPUs())
	}
	if err := g.vm.SetEntry(bootVCPU, e); err != nil {
		return fmt.Errorf("vmm: %w", err)
	}
	if g.vm.NumVCPUs() > 1 && !g.cfg.NoIRQChip {
		// KVM creates vCPU 0 runnable and the others waiting for INIT (with
		// the in-kernel LAPIC); make the boot vCPU the one that runs.
		for i := 0; i < g.vm.NumVCPUs(); i++ {
			s := kvm.MPStateUninitialized
			if i == bootVCPU {
				s = kvm.MPStateRunnable
			}
			if err := g.vm.VCPU(i).KVM().SetMPState(s); err != nil {
				return fmt.Errorf("vmm: vCPU %d: %w", i, err)
			}
		}
	}
	g.vm.Resume()
	g.run = g.vm.Start()
	return nil
}

// Wait blocks until the guest's current run ends and returns how: the
// guest's exit status (hv.StopExit), a shutdown, an error, or hv.StopHost if
// the host ended it (Restart, Close). A guest never started gives
// ErrNotStarted. Wait may be called any number of times, from any goroutine;
// a run that Restart replaces returns to its waiters with hv.StopHost.
func (g *Guest) Wait() (hv.Result, error) {
	g.mu.Lock()
	r := g.run
	g.mu.Unlock()
	if r == nil {
		return hv.Result{}, ErrNotStarted
	}
	return r.Wait()
}

// Stop pauses the guest, as libvmm's guest_stop does: every vCPU leaves the
// guest and waits, so the guest makes no progress and its memory and
// registers stay still until Resume (or Restart). Stop returns once every
// vCPU has stopped. Interrupts raised meanwhile (Inject, passthrough
// eventfds) stay pending in the interrupt controllers and are delivered on
// Resume. Stopping a stopped guest does nothing; a guest never started gives
// ErrNotStarted.
//
//	g.Stop()
//	snapshot := make([]byte, 4096)
//	g.VM().Memory().ReadAt(snapshot, 0x20000) // the guest is not writing it now
//	g.Resume()
func (g *Guest) Stop() error { return g.whileStarted(g.vm.Pause) }

// Resume lets a guest that Stop paused run on from where it was.
//
//	g.Stop()
//	// ... inspect or change guest memory ...
//	g.Resume()
func (g *Guest) Resume() error { return g.whileStarted(g.vm.Resume) }

// whileStarted calls f under g.mu if the guest has been started and not
// closed, else returns ErrNotStarted or ErrClosed.
func (g *Guest) whileStarted(f func()) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return ErrClosed
	}
	if g.run == nil {
		return ErrNotStarted
	}
	f()
	return nil
}

// Stopped reports whether Stop has paused the guest (and Resume not yet
// undone it).
func (g *Guest) Stopped() bool { return g.vm.Paused() }

// Image is a piece of a guest image: Data copied into guest RAM at Addr.
type Image struct {
	Data []byte
	Addr uint64
}

// Restart reboots the guest, possibly into another image, as libvmm's
// guest_restart does: it ends the current run (if any), resets the guest
// (see Reset), copies images into guest RAM and starts as Start(bootVCPU,
// pc, params, initrd). Registrations with the interrupt controller stay.
//
//	// Boot a different program in the same VM.
//	err := g.Restart(0, 0x10000, 0, 0, vmm.Image{Data: other, Addr: 0x10000})
func (g *Guest) Restart(bootVCPU int, pc, params, initrd uint64, images ...Image) error {
	return g.RestartEntry(bootVCPU, BootEntry(pc, params, initrd), images...)
}

// RestartEntry is Restart with the boot vCPU's state spelled out.
func (g *Guest) RestartEntry(bootVCPU int, e x86.Entry, images ...Image) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if err := g.resetLocked(bootVCPU, e); err != nil {
		return err
	}
	for _, im := range images {
		if err := g.vm.LoadImage(im.Data, im.Addr); err != nil {
			return fmt.Errorf("vmm: %w", err)
		}
	}
	return g.startLocked(bootVCPU, e)
}

// Reset ends the current run (if any) and puts the guest back to where it was
// before it first ran, without starting it: the PIC, IOAPIC and PIT, and every
// vCPU's registers, FPU, LAPIC and INIT/SIPI state, get their power-on values
// (hv.VM.Reset), and guest RAM is cleared to zeros. Images can then be loaded
// (SetupLinuxImages, VM().LoadImage) and the guest started again with Start.
//
//	g.Reset()
//	entry, _ := vmm.SetupLinuxImages(g.VM().Memory(), vmm.LinuxImages{Kernel: k})
//	g.StartEntry(0, vmm.CPUEntry(entry))
func (g *Guest) Reset() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.resetLocked(0, x86.Entry{Mode: x86.RealMode, RIP: 0xffff0})
}

func (g *Guest) resetLocked(bootVCPU int, e x86.Entry) error {
	if g.closed {
		return ErrClosed
	}
	if r := g.run; r != nil {
		r.Stop()
	}
	g.resetDevices() // they stop writing guest RAM before it is cleared
	if err := g.clearRAM(); err != nil {
		return err
	}
	if g.plat != nil {
		if err := g.plat.WriteTables(g.vm); err != nil {
			return fmt.Errorf("vmm: %w", err)
		}
	}
	if err := g.vm.Reset(bootVCPU, e); err != nil {
		return fmt.Errorf("vmm: %w", err)
	}
	return nil
}

// clearRAM gives every RAM region fresh zero pages (memory.Guest.Zero:
// anonymous RAM and the memfd-backed RAM of a VM with a device-model socket
// alike), without writing gigabytes of zeros by hand.
func (g *Guest) clearRAM() error {
	if err := g.vm.Memory().Zero(); err != nil {
		return fmt.Errorf("vmm: %w", err)
	}
	return nil
}
