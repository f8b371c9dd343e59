package pc

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"log/slog"
	"strconv"
	"strings"

	"ember/devices/fwcfg"
	"ember/layout"
	"ember/memory"
)

// e820 types of the fw_cfg memory map.
const (
	e820RAM      = 1
	e820Reserved = 2
)

// FWCfgKernel is a Linux kernel for firmware to boot, handed over through
// fw_cfg the way QEMU hands over -kernel, -initrd and -append when it runs
// firmware: SeaBIOS's and OVMF's direct kernel boot (and QEMU's linuxboot
// option ROMs) read the kernel, initrd and command line items and load
// them where the items' addresses say. ember itself loads nothing: this is
// for a machine started from firmware (LoadFirmware); a kernel ember boots
// itself goes through package boot instead.
//
// The kernel is split as QEMU splits it: the real-mode setup, the first
// (setup_sects+1)*512 bytes (setup_sects 0 meaning 4), is KeySetupData,
// with its setup header filled in as a boot loader would (the command
// line's address, the heap end with CAN_USE_HEAP, the initrd's address and
// size, the video mode of a vga= option); the rest, the protected-mode
// kernel, is KeyKernelData, to go at 1 MiB. A kernel with boot protocol
// 2.02 or later has its setup at 0x10000 and its command line at 0x20000;
// older ones at 0x90000 and just below 0x9a000, and a kernel without
// LOADED_HIGH (a zImage) has its protected-mode part at 0x10000. The initrd
// goes at the top of RAM below 4 GiB, page-aligned, below the kernel's
// initrd_addr_max (no limit below 4 GiB with XLF_CAN_BE_LOADED_ABOVE_4G)
// and clear of the last 160 KiB, which QEMU keeps for the ACPI tables
// firmware builds there. type_of_loader is 0xff (no assigned loader ID),
// as in ember's own boot path, where QEMU writes its own ID (0xb0).
type FWCfgKernel struct {
	// Kernel is a Linux kernel image with a setup header ("HdrS" at
	// 0x202): a bzImage, or a zImage. Multiboot and ELF (PVH) kernels are
	// not taken here.
	Kernel []byte
	// Initrd is the initial ramdisk, empty for none. It needs boot
	// protocol 2.00.
	Initrd []byte
	// Cmdline is the kernel command line; it may not contain NUL.
	Cmdline string
}

// Setup header fields (Linux's Documentation/arch/x86/boot.rst) the fw_cfg
// kernel items read or fill in.
const (
	hdrOldCmdlineMagic  = 0x020 // cl_magic: 0xA33F for the pre-2.02 protocol
	hdrOldCmdlineOffset = 0x022 // cl_offset: the command line, from the setup's start
	hdrSetupSects       = 0x1f1
	hdrVidMode          = 0x1fa
	hdrMagic            = 0x202
	hdrVersion          = 0x206
	hdrTypeOfLoader     = 0x210
	hdrLoadflags        = 0x211
	hdrRamdiskImage     = 0x218
	hdrRamdiskSize      = 0x21c
	hdrHeapEndPtr       = 0x224
	hdrCmdLinePtr       = 0x228
	hdrInitrdAddrMax    = 0x22c
	hdrXLoadflags       = 0x236
	hdrEnd              = 0x238 // the header fields read here end before this

	hdrSMagic             = 0x53726448 // "HdrS"
	oldCmdlineMagic       = 0xa33f
	loaderUnassigned      = 0xff
	loadedHigh            = 1 << 0
	canUseHeap            = 1 << 7
	xlfCanBeLoadedAbove4G = 1 << 1

	// Where the setup, command line and protected-mode kernel go.
	realAddrHigh    = 0x10000
	cmdlineAddrHigh = 0x20000
	realAddrLow     = 0x90000
	cmdlineEndLow   = 0x9a000
	protAddrHigh    = layout.HighRAM
	protAddrLow     = 0x10000

	// fwcfgACPIDataSize is the RAM below 4 GiB an initrd keeps clear of:
	// QEMU's room for the ACPI tables (128 KiB) and other firmware data
	// (32 KiB).
	fwcfgACPIDataSize = 0x20000 + 0x8000
	oldInitrdAddrMax  = 0x37ffffff
)

// newFWCfg returns the fw_cfg device for a machine with the RAM mem and
// ncpus vCPUs, QEMU's items filled in (fillFWCfg) and, with a kernel, the
// kernel items. Its DMA interface works on mem.
func newFWCfg(mem *memory.Guest, ncpus int, kernel *FWCfgKernel, log *slog.Logger) (*fwcfg.FWCfg, error) {
	f := fwcfg.New(fwcfg.Config{Memory: mem, Logger: log})
	if err := fillFWCfg(f, mem, ncpus); err != nil {
		return nil, err
	}
	if kernel != nil {
		below, _ := ramAround4G(mem)
		if err := addFWCfgKernel(f, *kernel, below); err != nil {
			return nil, err
		}
	}
	return f, nil
}

// fillFWCfg stores the items QEMU's PC machine has: RAM size, CPU counts,
// the (zero) UUID, no display, no boot menu, an empty boot order
// ("bootorder": no device asks for a place), firmware never rebooting
// after a failed boot ("etc/boot-fail-wait" -1, QEMU's default) and
// "etc/e820", the memory map firmware reads.
func fillFWCfg(f *fwcfg.FWCfg, mem *memory.Guest, ncpus int) error {
	f.SetU64(fwcfg.KeyRAMSize, mem.Size())
	f.SetU16(fwcfg.KeyNBCPUs, uint16(ncpus))
	f.SetU16(fwcfg.KeyMaxCPUs, uint16(ncpus))
	f.Set(fwcfg.KeyUUID, make([]byte, 16))
	f.SetU16(fwcfg.KeyNoGraphic, 1)
	f.SetU16(fwcfg.KeyBootMenu, 0)
	for _, file := range []struct {
		name string
		data []byte
	}{
		{"bootorder", nil},
		{"etc/boot-fail-wait", binary.LittleEndian.AppendUint32(nil, 0xffffffff)},
		{"etc/e820", fwcfg.E820(e820For(mem))},
	} {
		if err := f.AddFile(file.name, file.data); err != nil {
			return fmt.Errorf("pc: fw_cfg: %w", err)
		}
	}
	return nil
}

// e820For is guest RAM as a PC memory map: the first region split around
// the legacy area (the EBDA up to 1 MiB is reserved), every other region
// RAM.
func e820For(mem *memory.Guest) []fwcfg.E820Entry {
	var es []fwcfg.E820Entry
	for _, r := range mem.Regions() {
		if r.GPA != 0 || r.Size <= layout.HighRAM {
			es = append(es, fwcfg.E820Entry{Addr: r.GPA, Size: r.Size, Type: e820RAM})
			continue
		}
		es = append(es,
			fwcfg.E820Entry{Addr: 0, Size: layout.EBDA, Type: e820RAM},
			fwcfg.E820Entry{Addr: layout.EBDA, Size: layout.HighRAM - layout.EBDA, Type: e820Reserved},
			fwcfg.E820Entry{Addr: layout.HighRAM, Size: r.Size - layout.HighRAM, Type: e820RAM})
	}
	return es
}

// addFWCfgKernel stores k's kernel, setup, initrd and command line items
// (see FWCfgKernel) for a machine with below4G bytes of RAM below 4 GiB.
// The kernel and initrd items share k's memory.
func addFWCfgKernel(f *fwcfg.FWCfg, k FWCfgKernel, below4G uint64) error {
	le := binary.LittleEndian
	img := k.Kernel
	switch {
	case len(img) < hdrEnd:
		return fmt.Errorf("pc: fw_cfg kernel: %d bytes, too small for a setup header", len(img))
	case le.Uint32(img[hdrMagic:]) != hdrSMagic:
		return fmt.Errorf("pc: fw_cfg kernel: no \"HdrS\" setup header at %#x: not a Linux bzImage", hdrMagic)
	case uint64(len(img)) > 1<<32-1 || uint64(len(k.Initrd)) > 1<<32-1:
		return fmt.Errorf("pc: fw_cfg kernel: kernel (%d bytes) or initrd (%d bytes) past 4 GiB", len(img), len(k.Initrd))
	case strings.IndexByte(k.Cmdline, 0) >= 0:
		return fmt.Errorf("pc: fw_cfg kernel: the command line contains a NUL byte")
	}
	protocol := le.Uint16(img[hdrVersion:])
	sects := int(img[hdrSetupSects])
	if sects == 0 {
		sects = 4
	}
	setupSize := (sects + 1) * 512
	if setupSize > len(img) {
		return fmt.Errorf("pc: fw_cfg kernel: setup of %d bytes (setup_sects %d) but the image has %d", setupSize, sects, len(img))
	}
	setup := bytes.Clone(img[:setupSize])

	var realAddr, cmdlineAddr, protAddr uint32
	switch {
	case protocol >= 0x202 && setup[hdrLoadflags]&loadedHigh != 0:
		realAddr, cmdlineAddr, protAddr = realAddrHigh, cmdlineAddrHigh, protAddrHigh
	default:
		// Old kernels keep the command line in the 40 KiB above their
		// setup, at its end, in 16-byte units as QEMU puts it there.
		room := (len(k.Cmdline) + 16) &^ 15
		if realAddrLow+setupSize+room > cmdlineEndLow {
			return fmt.Errorf("pc: fw_cfg kernel: a %d-byte command line does not fit below %#x for boot protocol %#x", len(k.Cmdline), cmdlineEndLow, protocol)
		}
		realAddr, cmdlineAddr, protAddr = realAddrLow, cmdlineEndLow-uint32(room), protAddrHigh
		if protocol < 0x200 || setup[hdrLoadflags]&loadedHigh == 0 {
			protAddr = protAddrLow // a zImage
		}
	}

	var initrdMax uint64
	switch {
	case protocol >= 0x20c && le.Uint16(setup[hdrXLoadflags:])&xlfCanBeLoadedAbove4G != 0:
		initrdMax = 1<<32 - 1
	case protocol >= 0x203:
		initrdMax = uint64(le.Uint32(setup[hdrInitrdAddrMax:]))
	default:
		initrdMax = oldInitrdAddrMax
	}
	if below4G <= fwcfgACPIDataSize {
		initrdMax = 0
	} else if initrdMax >= below4G-fwcfgACPIDataSize {
		initrdMax = below4G - fwcfgACPIDataSize - 1
	}

	if protocol >= 0x202 {
		le.PutUint32(setup[hdrCmdLinePtr:], cmdlineAddr)
	} else {
		le.PutUint16(setup[hdrOldCmdlineMagic:], oldCmdlineMagic)
		le.PutUint16(setup[hdrOldCmdlineOffset:], uint16(cmdlineAddr-realAddr))
	}
	if mode, ok, err := vgaMode(k.Cmdline); err != nil {
		return err
	} else if ok {
		le.PutUint16(setup[hdrVidMode:], mode)
	}
	if protocol >= 0x200 {
		setup[hdrTypeOfLoader] = loaderUnassigned
	}
	if protocol >= 0x201 {
		setup[hdrLoadflags] |= canUseHeap
		le.PutUint16(setup[hdrHeapEndPtr:], uint16(cmdlineAddr-realAddr-0x200))
	}
	if len(k.Initrd) > 0 {
		if protocol < 0x200 {
			return fmt.Errorf("pc: fw_cfg kernel: boot protocol %#x is too old for an initrd", protocol)
		}
		size := uint64(len(k.Initrd))
		if size >= initrdMax {
			return fmt.Errorf("pc: fw_cfg kernel: initrd of %d bytes; at most %d fit below %#x", size, initrdMax, initrdMax+1)
		}
		addr := uint32((initrdMax - size) &^ (memory.PageSize - 1))
		le.PutUint32(setup[hdrRamdiskImage:], addr)
		le.PutUint32(setup[hdrRamdiskSize:], uint32(size))
		f.SetU32(fwcfg.KeyInitrdAddr, addr)
		f.SetU32(fwcfg.KeyInitrdSize, uint32(size))
		f.Set(fwcfg.KeyInitrdData, k.Initrd)
	}

	f.SetU32(fwcfg.KeyCmdlineAddr, cmdlineAddr)
	f.SetU32(fwcfg.KeyCmdlineSize, uint32(len(k.Cmdline)+1))
	f.Set(fwcfg.KeyCmdlineData, append([]byte(k.Cmdline), 0))
	f.SetU32(fwcfg.KeyKernelAddr, protAddr)
	f.SetU32(fwcfg.KeyKernelSize, uint32(len(img)-setupSize))
	f.Set(fwcfg.KeyKernelData, img[setupSize:])
	f.SetU32(fwcfg.KeySetupAddr, realAddr)
	f.SetU32(fwcfg.KeySetupSize, uint32(setupSize))
	f.Set(fwcfg.KeySetupData, setup)
	return nil
}

// vgaMode returns the video mode a "vga=" option of cmdline asks for, as a
// boot loader puts it in the setup header's vid_mode: "normal", "ext" and
// "ask" are 0xffff, 0xfffe and 0xfffd, anything else a number (C syntax:
// decimal, 0x hex or 0 octal) that must end the option.
func vgaMode(cmdline string) (mode uint16, ok bool, err error) {
	i := strings.Index(cmdline, "vga=")
	if i < 0 {
		return 0, false, nil
	}
	v := cmdline[i+len("vga="):]
	for _, named := range []struct {
		name string
		mode uint16
	}{{"normal", 0xffff}, {"ext", 0xfffe}, {"ask", 0xfffd}} {
		if strings.HasPrefix(v, named.name) {
			return named.mode, true, nil
		}
	}
	if end := strings.IndexByte(v, ' '); end >= 0 {
		v = v[:end]
	}
	n, err := strconv.ParseUint(v, 0, 32)
	if err != nil {
		return 0, false, fmt.Errorf("pc: fw_cfg kernel: invalid vga= option %q: %w", v, err)
	}
	return uint16(n), true, nil
}
