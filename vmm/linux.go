package vmm

import (
	"fmt"

	"ember/boot"
	"ember/kvm"
	"ember/memory"
	"ember/x86"
)

// LinuxImages is what SetupLinuxImages puts into guest RAM: the seed's
// linux_setup_images arguments for x86, where the boot parameters (the zero
// page, with the e820 map and command line) play the device tree's part.
type LinuxImages struct {
	Kernel  []byte    // a bzImage or an ELF vmlinux
	Initrd  []byte    // optional initial RAM disk
	Cmdline string    // the kernel command line
	Mode    boot.Mode // how to enter the kernel; ModeAuto decompresses a bzImage on the host
}

// linuxStack is the boot stack pointer: inside the page the boot package leaves
// to the caller (0x8000-0x8fff), below package x86's page tables, and clear of
// the zero page at 0x7000.
const linuxStack = 0x8ff0

// SetupLinuxImages copies a Linux kernel, initrd and command line into guest
// RAM ready for execution, as libvmm's linux_setup_images does, and returns
// where execution starts. The kernel is checked to be a Linux image (a bzImage
// with a supported boot protocol, or an ELF vmlinux); anything else, and a
// command line or initrd that does not fit, is an error from package boot
// (errors.Is(err, boot.ErrNotBzImage) and friends), with nothing written.
//
//	entry, err := vmm.SetupLinuxImages(vm.Memory(), vmm.LinuxImages{Kernel: k, Cmdline: "console=ttyS0"})
//	if err != nil { ... }
//	vm.SetEntry(0, vmm.CPUEntry(entry))
func SetupLinuxImages(mem *memory.Guest, img LinuxImages) (*boot.Entry, error) {
	e, err := boot.LoadLinux(mem, boot.LinuxConfig{
		Kernel: img.Kernel, Initrd: img.Initrd, Cmdline: img.Cmdline, Mode: img.Mode,
	})
	if err != nil {
		return nil, fmt.Errorf("vmm: setting up Linux: %w", err)
	}
	return e, nil
}

// CPUEntry is the boot vCPU state for a loaded image: the mode the boot
// protocol asks for, RIP, and the register that points at the boot
// parameters (RSI for the zero page, RBX for PVH's start info).
func CPUEntry(e *boot.Entry) x86.Entry {
	out := x86.Entry{Mode: e.Mode, RIP: e.RIP, RSP: linuxStack, Regs: kvm.Regs{RSI: e.RSI, RBX: e.RBX}}
	if e.Mode == boot.RealMode {
		out.RIP = uint64(e.CS)<<4 + e.RIP
	}
	return out
}
