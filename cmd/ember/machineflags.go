package main

import (
	"fmt"
	"os"
	"sort"
	"strings"

	"github.com/spf13/pflag"

	"ember/guest"
	"ember/machine"
)

// machineOptions are the flags that describe a machine, shared by
// `ember run` and `ember vm create`: they become a machine.Config, the
// same one the daemon's API and --config files hold.
type machineOptions struct {
	config     string // --config: a JSON machine.Config the flags add to
	guest      string
	memory     string
	cpus       int
	kernel     string
	initrd     string
	cmdline    string
	bootMode   string
	reboot     string
	cpuidMask  []string
	hyperV     bool     // --hyperv
	dmSocket   string   // --device-model-socket
	rng        bool     // --rng
	disks      []string // --disk
	consoleDev string   // --console-device
	transport  string   // --virtio-transport
	nets       []string // --net
	bios       string   // --bios
	vsock      string   // --vsock
	balloon    string   // --balloon
	modules    []string // --module
	testDevs   bool     // --test-devices
	debugExit  uint16   // --debug-exit-port
	hvTestDev  bool     // --hyperv-testdev
	iommu      bool     // --iommu
	edu        bool     // --edu
	changed    func(flag string) bool
}

// addFlags defines the machine flags on f.
func (o *machineOptions) addFlags(f *pflag.FlagSet) {
	names := make([]string, 0, len(guest.All))
	for _, p := range guest.All {
		names = append(names, p.Name)
	}
	sort.Strings(names)
	o.changed = f.Changed
	f.StringVar(&o.config, "config", "", "a JSON machine configuration (README, \"Machine configuration\"); flags given with it override its fields")
	f.StringVar(&o.guest, "guest", "demo", "built-in tiny guest to boot: "+strings.Join(names, ", "))
	f.StringVar(&o.memory, "memory", "2M", "guest RAM, e.g. 2M, 512M, 1G (default "+machine.DefaultLinuxMemory+" with --kernel)")
	f.IntVar(&o.cpus, "cpus", 1, "number of vCPUs")
	f.StringVar(&o.kernel, "kernel", "", "kernel to boot: a Linux bzImage or ELF vmlinux, or a multiboot (v1) kernel")
	f.StringVar(&o.bios, "bios", "", "a firmware ROM (whole pages, at most 16 MiB) to boot from the reset vector: mapped below 4 GiB, its last 128 KiB also below 1 MiB")
	f.StringVar(&o.initrd, "initrd", "", "initial RAM disk for --kernel")
	f.StringVar(&o.cmdline, "cmdline", "", "kernel command line for --kernel (default console=ttyS0 for Linux, empty for a multiboot kernel)")
	f.StringVar(&o.bootMode, "boot", machine.BootAuto, "how to enter --kernel: decompress, bzimage, pvh, or auto (decompress where KVM emulates guest ring 0, else bzimage)")
	f.StringVar(&o.reboot, "reboot", machine.RebootExit, "what a guest reboot does: exit or restart")
	f.StringSliceVar(&o.cpuidMask, "cpuid-mask", nil, "CPUID features to hide, e.g. cx16,xsave (names as in /proc/cpuinfo)")
	f.BoolVar(&o.hyperV, "hyperv", false, "offer the Hyper-V enlightenments this host's KVM supports (CPUID leaves at 0x40000000, KVM's move to 0x40000100; a SynIC with its timers on every vCPU), as QEMU's -cpu hv_passthrough")
	f.StringVar(&o.dmSocket, "device-model-socket", "", "unix socket to create for out-of-process device models (docs/ioreq-protocol.md)")
	f.StringArrayVar(&o.disks, "disk", nil, "a raw or qcow2 disk image as a virtio-blk device: PATH[,readonly][,serial=ID][,queues=N][,cache=none][,format=raw|qcow2], or backend=SOCKET for a disk served by 'ember backend blk' (repeatable; cache=none bypasses the host's page cache; an image in another format, VMDK say, is refused unless format=raw)")
	f.StringVar(&o.consoleDev, "console-device", machine.ConsoleSerial, "the guest's console device: serial (COM1) or virtio (virtio-console, Linux's hvc0: boot with console=hvc0)")
	f.StringVar(&o.transport, "virtio-transport", machine.TransportPCI, "how the virtio devices reach the guest: pci (virtio-pci functions) or mmio (virtio-mmio v2, for kernels built with CONFIG_VIRTIO_MMIO_CMDLINE_DEVICES: ember appends virtio_mmio.device= to a Linux kernel's command line; not with --bios)")
	f.StringArrayVar(&o.nets, "net", nil, "a virtio-net device on a TAP interface: tap=NAME[,mac=MAC][,vhost=on][,queues=N][,threads=N] (repeatable; vhost=on has the kernel's vhost-net move the packets; queues=N gives the guest N queue pairs on a multi-queue TAP; threads=N serves them on N threads, by default one a pair where the host has a CPU for each beside the vCPUs, else one; creating the TAP needs CAP_NET_ADMIN, or have root create it with ip tuntap, with multi_queue for queues=N)")
	f.StringVar(&o.vsock, "vsock", "", "a virtio-vsock device: cid=N,socket=PATH (the guest reaches host port P at PATH_P; a host program connects to PATH and writes \"CONNECT P\\n\" to reach guest port P)")
	f.BoolVar(&o.rng, "rng", false, "give the guest a virtio-rng device, fed from the host's getrandom")
	f.StringArrayVar(&o.modules, "module", nil, "a boot module for a multiboot --kernel: PATH[,CMDLINE] (repeatable; after --initrd, which is the first module)")
	f.StringVar(&o.balloon, "balloon", "", "a virtio-balloon device: [target=SIZE][,deflate-on-oom][,stats=INTERVAL] (target: memory the guest is asked to give back)")
	f.BoolVar(&o.testDevs, "test-devices", false, "add QEMU's isa-debug-exit (port 0xf4: a write of v exits with (v<<1)|1) and pc-testdev, as kvm-unit-tests uses them; they replace ember's exit and console ports (docs/qemu-devices.md)")
	f.Uint16Var(&o.debugExit, "debug-exit-port", 0, "move the isa-debug-exit port of --test-devices (default 0xf4)")
	f.BoolVar(&o.hvTestDev, "hyperv-testdev", false, "add QEMU's hyperv-testdev (port 0x3000), with which kvm-unit-tests' SynIC tests make SINT routes and message and event connections; needs --hyperv (docs/qemu-devices.md)")
	f.BoolVar(&o.iommu, "iommu", false, "add a VT-d remapping unit at 0xfed90000 (DMA and interrupt remapping, an ACPI DMAR table), as QEMU's -device intel-iommu,intremap=on; not with virtio devices (docs/qemu-devices.md)")
	f.BoolVar(&o.edu, "edu", false, "add QEMU's edu PCI device (1234:11e8: DMA engine, INTx, MSI), through the --iommu unit when there is one (docs/qemu-devices.md)")
}

// machineConfig is the machine the options describe: --config's file, if
// any, with the flags given on the command line over it (all the flags,
// with their defaults, without --config).
func (o machineOptions) machineConfig() (machine.Config, error) {
	var c machine.Config
	if o.config != "" {
		b, err := os.ReadFile(o.config)
		if err != nil {
			return c, fmt.Errorf("--config: %w", err)
		}
		if c, err = machine.ParseConfig(b); err != nil {
			return c, fmt.Errorf("--config %s: %w", o.config, err)
		}
	}
	changed := func(name string) bool { return o.changed != nil && o.changed(name) }
	set := func(name string) bool { return o.config == "" || changed(name) }
	// --guest and --memory have defaults for a tiny guest: given only when
	// typed, so a kernel or a ROM gets machine's defaults.
	take(changed("guest"), &c.Guest, o.guest)
	take(changed("memory"), &c.Memory, o.memory)
	if set("cpus") && o.cpus < 1 { // 0 in a Config means the default, but not on the command line
		return c, fmt.Errorf("--cpus must be at least 1, not %d", o.cpus)
	}
	take(set("cpus"), &c.CPUs, o.cpus)
	take(set("kernel"), &c.Kernel, o.kernel)
	take(set("initrd"), &c.Initrd, o.initrd)
	take(set("cmdline"), &c.Cmdline, o.cmdline)
	take(set("boot"), &c.Boot, o.bootMode)
	take(set("bios"), &c.BIOS, o.bios)
	take(set("reboot"), &c.Reboot, o.reboot)
	take(set("console-device"), &c.ConsoleDevice, o.consoleDev)
	take(set("device-model-socket"), &c.DeviceModelSocket, o.dmSocket)
	take(set("virtio-transport"), &c.VirtioTransport, o.transport)
	take(set("cpuid-mask"), &c.CPUIDMask, o.cpuidMask)
	take(set("hyperv"), &c.HyperV, o.hyperV)
	take(set("rng"), &c.RNG, o.rng)
	take(set("test-devices"), &c.TestDevices, o.testDevs)
	take(set("debug-exit-port"), &c.DebugExitPort, o.debugExit)
	take(set("hyperv-testdev"), &c.HyperVTestDev, o.hvTestDev)
	take(set("iommu"), &c.IOMMU, o.iommu)
	take(set("edu"), &c.EDU, o.edu)
	return c, addDeviceFlags(&c, o)
}

// addDeviceFlags adds --disk, --net and --vsock to c.
func addDeviceFlags(c *machine.Config, o machineOptions) error {
	for _, s := range o.disks {
		d, err := machine.ParseDisk(s)
		if err != nil {
			return err
		}
		c.Disks = append(c.Disks, d)
	}
	for _, s := range o.nets {
		n, err := machine.ParseNet(s)
		if err != nil {
			return err
		}
		c.Nets = append(c.Nets, n)
	}
	for _, s := range o.modules {
		m, err := machine.ParseModule(s)
		if err != nil {
			return err
		}
		c.Modules = append(c.Modules, m)
	}
	if o.balloon != "" {
		b, err := machine.ParseBalloon(o.balloon)
		if err != nil {
			return err
		}
		c.Balloon = &b
	}
	if o.vsock != "" {
		v, err := machine.ParseVsock(o.vsock)
		if err != nil {
			return err
		}
		c.Vsock = &v
	}
	return nil
}

// take sets *dst to v when ok: when a flag counts over the machine's
// defaults or its --config file.
func take[T any](ok bool, dst *T, v T) {
	if ok {
		*dst = v
	}
}
