package machine

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
)

// Config says what machine to build. Its JSON form is what `ember run
// --config FILE` reads and what the daemon's API takes; the field names are
// `ember run`'s flag names. Zero fields take the defaults WithDefaults gives.
type Config struct {
	// Guest names a built-in tiny guest (`ember run --help` lists them);
	// the default when there is neither Kernel nor BIOS is "demo".
	Guest string `json:"guest,omitempty"`
	// Kernel is the path of a Linux kernel (bzImage or ELF vmlinux), or of
	// a multiboot (v1) kernel, which is told apart by its header.
	Kernel string `json:"kernel,omitempty"`
	// Initrd is the initial RAM disk for Kernel; a multiboot kernel gets
	// it as its first module.
	Initrd string `json:"initrd,omitempty"`
	// Modules are a multiboot kernel's boot modules, after Initrd.
	Modules []Module `json:"modules,omitempty"`
	Cmdline string   `json:"cmdline,omitempty"` // kernel command line; default console=ttyS0
	// Boot is how Kernel is entered: auto, decompress, bzimage or pvh.
	Boot string `json:"boot,omitempty"`
	// BIOS is the path of a firmware ROM booted from the reset vector.
	// With Kernel too, the firmware finds the kernel, Initrd and Cmdline
	// in fw_cfg, as QEMU's -bios with -kernel offers them.
	BIOS string `json:"bios,omitempty"`
	// CPUs is the number of vCPUs, 1 to MaxCPUs; default 1.
	CPUs int `json:"cpus,omitempty"`
	// Memory is the guest RAM as `ember run --memory` takes it ("512M");
	// default 2M for a tiny guest or firmware, 512M for a kernel.
	Memory string `json:"memory,omitempty"`
	// CPUIDMask names CPUID features to hide (x86.CPUIDFeatures).
	CPUIDMask []string `json:"cpuid_mask,omitempty"`
	// HyperV offers the Hyper-V enlightenments the host's KVM supports
	// (CPUID leaves, SynIC and its timers), as QEMU's -cpu hv_passthrough.
	HyperV bool `json:"hyperv,omitempty"`
	// Reboot is what a guest reboot does: exit (default) or restart.
	Reboot string `json:"reboot,omitempty"`
	// ConsoleDevice is the guest's console: serial (COM1, default) or
	// virtio (virtio-console, Linux's hvc0).
	ConsoleDevice string   `json:"console_device,omitempty"`
	Disks         []Disk   `json:"disks,omitempty"`   // virtio-blk devices
	Nets          []Net    `json:"nets,omitempty"`    // virtio-net devices
	Vsock         *Vsock   `json:"vsock,omitempty"`   // a virtio-vsock device
	RNG           bool     `json:"rng,omitempty"`     // a virtio-rng device
	Balloon       *Balloon `json:"balloon,omitempty"` // a virtio-balloon device
	// VirtioTransport is how the virtio devices reach the guest: pci
	// (virtio-pci functions, default, found by PCI enumeration) or mmio
	// (virtio-mmio version 2 register blocks, for kernels built with
	// CONFIG_VIRTIO_MMIO_CMDLINE_DEVICES; ember appends their
	// virtio_mmio.device= arguments to a Linux kernel's command line).
	VirtioTransport string `json:"virtio_transport,omitempty"`
	// TestDevices adds QEMU's isa-debug-exit and pc-testdev, as
	// kvm-unit-tests uses them (docs/qemu-devices.md); they take the place
	// of ember's exit and console ports. Off by default.
	TestDevices bool `json:"test_devices,omitempty"`
	// DebugExitPort moves the isa-debug-exit port from 0xf4 (with
	// TestDevices only).
	DebugExitPort uint16 `json:"debug_exit_port,omitempty"`
	// HyperVTestDev adds QEMU's hyperv-testdev, with which kvm-unit-tests'
	// SynIC tests drive the host's side of the SynIC
	// (docs/qemu-devices.md); it needs HyperV. Off by default.
	HyperVTestDev bool `json:"hyperv_testdev,omitempty"`
	// IOMMU adds a VT-d remapping unit (DMA and interrupt remapping) at
	// Q35's address with its ACPI DMAR table, as QEMU's -device
	// intel-iommu,intremap=on (docs/qemu-devices.md). It refuses virtio
	// devices, whose MSI-X messages it would not remap. Off by default.
	IOMMU bool `json:"iommu,omitempty"`
	// EDU adds QEMU's edu educational PCI device, whose DMA and
	// interrupts kvm-unit-tests' intel_iommu remaps (docs/qemu-devices.md).
	// Off by default.
	EDU bool `json:"edu,omitempty"`
	// DeviceModelSocket is a unix socket to create for out-of-process
	// device models (docs/ioreq-protocol.md).
	DeviceModelSocket string `json:"device_model_socket,omitempty"`
}

// Disk is a raw image file given to the guest as a virtio-blk device, or
// a virtio-blk device served by a back-end process (Backend).
type Disk struct {
	Path     string `json:"path,omitempty"`
	ReadOnly bool   `json:"readonly,omitempty"`
	Serial   string `json:"serial,omitempty"` // GET_ID answer, at most 20 bytes
	Queues   int    `json:"queues,omitempty"` // request queues, 1 to 16; default 1
	// Cache is writeback (the host's page cache, default) or none (O_DIRECT).
	Cache string `json:"cache,omitempty"`
	// Format is "" (a raw or a qcow2 image, told apart by its signature;
	// one that begins with another format's, a VMDK say, is refused),
	// "raw" (the file as it is, whatever its first bytes hold) or "qcow2"
	// (refused unless it is one).
	Format string `json:"format,omitempty"`
	// Backend is the SOCK_SEQPACKET socket of a process serving the disk
	// (`ember backend blk`, docs/ioreq-protocol.md): ember keeps the
	// virtio-pci function and the back-end serves the queues. The image
	// and its options are the back-end's, so Path and the others stay
	// empty; the guest's RAM becomes memfd-backed.
	Backend string `json:"backend,omitempty"`
}

// Module is a multiboot boot module: a file and its string (by the
// convention GRUB and QEMU follow, the kernel sees "PATH CMDLINE").
type Module struct {
	Path    string `json:"path"`
	Cmdline string `json:"cmdline,omitempty"`
}

// Net is a virtio-net device on a host TAP interface.
type Net struct {
	TAP string `json:"tap"`
	MAC string `json:"mac,omitempty"` // unicast, as 52:54:00:12:34:56; default chosen by the device
	// Vhost has the kernel's vhost-net (/dev/vhost-net) move the packets,
	// as QEMU's vhost=on does (virtio/net's Config.Vhost).
	Vhost bool `json:"vhost,omitempty"`
	// Queues is the number of queue pairs, 1 to 16; default 1. More than
	// one opens as many queues of a multi-queue TAP (a TAP that exists
	// must have been made with multi_queue), and Linux uses one a vCPU.
	Queues int `json:"queues,omitempty"`
	// Threads is how many of ember's threads serve the queue pairs, 1 to
	// Queues (not with Vhost, whose pairs the kernel's workers serve).
	// Default: a thread a pair where the host has a CPU for each beside
	// the vCPUs, else one for all, as QEMU's main loop (NetThreads).
	Threads int `json:"threads,omitempty"`
}

// Balloon is a virtio-balloon device: the host asks the guest to give
// memory back (Target), and reads the guest's memory statistics.
type Balloon struct {
	// Target is the balloon's size to start with, as Memory is written
	// ("64M"; default 0): what the guest is asked to give up.
	Target string `json:"target,omitempty"`
	// DeflateOnOOM lets the guest take pages back from the balloon when
	// it runs out of memory.
	DeflateOnOOM bool `json:"deflate_on_oom,omitempty"`
	// StatsInterval is how often the guest is asked for its memory
	// statistics ("5s"); empty or "0" asks only on demand.
	StatsInterval string `json:"stats_interval,omitempty"`
}

// Vsock is a virtio-vsock device whose host side is unix sockets, as
// Firecracker's hybrid vsock: the guest reaches host port P at Socket_P, a
// host program connects to Socket and writes "CONNECT P\n".
type Vsock struct {
	CID    uint64 `json:"cid"`
	Socket string `json:"socket"`
}

// Defaults of a Config's fields.
const (
	DefaultGuest       = "demo"
	DefaultMemory      = "2M"
	DefaultLinuxMemory = "512M"
	DefaultCmdline     = "console=ttyS0"
	BootAuto           = "auto"
	RebootExit         = "exit"
	RebootRestart      = "restart"
	ConsoleSerial      = "serial"
	ConsoleVirtio      = "virtio"
	TransportPCI       = "pci"
	TransportMMIO      = "mmio"
)

// WithDefaults returns c with every unset field given its default.
func (c Config) WithDefaults() Config {
	if c.Guest == "" && c.Kernel == "" && c.BIOS == "" {
		c.Guest = DefaultGuest
	}
	if c.Memory == "" {
		c.Memory = DefaultMemory
		if c.Kernel != "" {
			c.Memory = DefaultLinuxMemory
		}
	}
	if c.CPUs == 0 {
		c.CPUs = 1
	}
	if c.Kernel != "" && c.Boot == "" {
		c.Boot = BootAuto
	}
	if c.Reboot == "" {
		c.Reboot = RebootExit
	}
	if c.ConsoleDevice == "" {
		c.ConsoleDevice = ConsoleSerial
	}
	if c.VirtioTransport == "" {
		c.VirtioTransport = TransportPCI
	}
	return c
}

// MaxConfigSize bounds a JSON configuration: a machine's configuration is a
// few hundred bytes, and a reader of untrusted input must not buffer more.
const MaxConfigSize = 1 << 20

// ParseConfig decodes a JSON configuration strictly: unknown fields, a
// value of the wrong type, trailing data and documents over MaxConfigSize
// are errors, so a misspelt field is reported rather than ignored.
func ParseConfig(b []byte) (Config, error) {
	var c Config
	if len(b) > MaxConfigSize {
		return c, fmt.Errorf("configuration is %d bytes, more than %d", len(b), MaxConfigSize)
	}
	if err := DecodeStrict(bytes.NewReader(b), &c); err != nil {
		return Config{}, fmt.Errorf("configuration: %w", err)
	}
	return c, nil
}

// DecodeStrict decodes one JSON value from r into v, refusing unknown fields
// and anything after the value. The daemon's API decodes every body with it.
func DecodeStrict(r io.Reader, v any) error {
	d := json.NewDecoder(r)
	d.DisallowUnknownFields()
	if err := d.Decode(v); err != nil {
		return err
	}
	if d.More() {
		return fmt.Errorf("data after the JSON value")
	}
	var extra json.RawMessage
	if err := d.Decode(&extra); err != io.EOF {
		return fmt.Errorf("data after the JSON value")
	}
	return nil
}
