package machine

import (
	"errors"
	"fmt"
	stdnet "net"
	"os"
	"runtime"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"ember/boot"
	"ember/guest"
	"ember/hv"
	"ember/kvm"
	"ember/multiboot"
	"ember/pc"
	"ember/virtio/balloon"
	"ember/virtio/blk"
	virtionet "ember/virtio/net"
	"ember/virtio/vsock"
	"ember/vmm"
	"ember/x86"
)

// MaxCPUs is the most vCPUs a machine may have: the ACPI MADT and MP table
// give each an 8-bit xAPIC ID. The host's KVM may allow fewer (Build checks).
const MaxCPUs = 255

// ErrInvalid marks a Config that Prepare refuses for its values (not for a
// file it could not read), so an API can answer it as the caller's mistake.
var ErrInvalid = errors.New("invalid configuration")

// Prepared is a validated Config with its files read: everything Build
// needs, so building cannot fail for a mistake in the configuration.
type Prepared struct {
	Config Config    // the configuration, defaults filled in
	Name   string    // what the machine boots: a guest's name or a file's path
	HV     hv.Config // the VM's memory, vCPUs and CPUID mask

	prog    guest.Program    // a tiny guest, or
	linux   *vmm.LinuxImages // a kernel, or
	bios    []byte           // a firmware ROM
	disks   []diskSpec
	nets    []virtionet.Config
	vsock   *vsock.Config
	balloon *balloonSpec
	fwcfg   *pc.FWCfgKernel // a kernel for the firmware, through fw_cfg
	mb      *multibootSpec  // a multiboot kernel
	memory  uint64
}

// multibootSpec is a multiboot kernel and what it is given.
type multibootSpec struct {
	kernel []byte
	cfg    multiboot.Config
}

// balloonSpec is a checked Balloon.
type balloonSpec struct {
	cfg    balloon.Config
	target uint64
}

// Linux reports whether the machine boots a kernel, whose console takes
// input (a tiny guest's does not).
func (p *Prepared) Linux() bool { return p.linux != nil }

// invalid wraps a refusal of a configuration value in ErrInvalid.
func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, args...))
}

// Prepare validates c (after WithDefaults) and reads its kernel, initrd or
// ROM. Every refusal names the field and the reason; values wrong in
// themselves wrap ErrInvalid, files that cannot be read wrap the os error.
func (c Config) Prepare() (*Prepared, error) {
	c = c.WithDefaults()
	size, err := ParseSize(c.Memory)
	if err != nil {
		return nil, invalid("%v", err)
	}
	if err := checkMemory(size); err != nil {
		return nil, err
	}
	if c.CPUs < 1 || c.CPUs > MaxCPUs {
		return nil, invalid("cpus must be at least 1 and at most %d, not %d", MaxCPUs, c.CPUs)
	}
	if c.Reboot != RebootExit && c.Reboot != RebootRestart {
		return nil, invalid("reboot must be exit or restart, not %q", c.Reboot)
	}
	if err := x86.CheckCPUIDMask(c.CPUIDMask); err != nil {
		return nil, invalid("cpuid_mask: %v", err)
	}
	if c.ConsoleDevice != ConsoleSerial && c.ConsoleDevice != ConsoleVirtio {
		return nil, invalid("console_device must be serial or virtio, not %q", c.ConsoleDevice)
	}
	if err := c.checkTransport(); err != nil {
		return nil, err
	}
	p := &Prepared{Config: c, memory: size, HV: hv.Config{MemorySize: size, VCPUs: c.CPUs, CPUIDMask: c.CPUIDMask, HyperV: c.HyperV, DeviceModelSocket: c.DeviceModelSocket}}
	if err := p.prepareDevices(); err != nil {
		return nil, err
	}
	switch {
	case c.BIOS != "":
		err = p.prepareBIOS()
	case c.Kernel != "":
		err = p.prepareLinux()
	default:
		prog, ok := guest.ByName(c.Guest)
		if !ok {
			return nil, invalid("no built-in guest %q (see 'ember run --help')", c.Guest)
		}
		p.Name, p.prog = prog.Name, prog
	}
	if err != nil {
		return nil, err
	}
	return p, nil
}

// checkTransport refuses a virtio transport other than pci or mmio, and
// mmio where it cannot serve: behind firmware (which finds devices by PCI
// and passes the kernel a command line ember does not write) or for more
// devices than the platform has virtio-mmio lines.
func (c Config) checkTransport() error {
	switch c.VirtioTransport {
	case TransportPCI:
		return nil
	case TransportMMIO:
	default:
		return invalid("virtio_transport must be pci or mmio, not %q", c.VirtioTransport)
	}
	if c.BIOS != "" {
		return invalid("virtio_transport mmio needs a kernel booted directly, not bios: firmware finds devices by PCI enumeration")
	}
	if n := c.virtioDevices(); n > pc.MaxVirtioMMIO {
		return invalid("virtio_transport mmio: %d virtio devices, but the PC platform has room for %d (one per free ISA interrupt line); use pci", n, pc.MaxVirtioMMIO)
	}
	return nil
}

// virtioDevices counts the virtio devices c asks for.
func (c Config) virtioDevices() int {
	n := len(c.Disks) + len(c.Nets)
	for _, b := range []bool{c.Vsock != nil, c.Balloon != nil, c.RNG, c.ConsoleDevice == ConsoleVirtio} {
		if b {
			n++
		}
	}
	return n
}

// checkMemory refuses a size no host could give: more than its RAM.
func checkMemory(size uint64) error {
	var si unix.Sysinfo_t
	if err := unix.Sysinfo(&si); err != nil {
		return nil // nothing to compare with; KVM will say
	}
	if total := uint64(si.Totalram) * uint64(si.Unit); size > total {
		return invalid("memory %d bytes is more than this host's %d bytes of RAM", size, total)
	}
	return nil
}

// prepareDevices checks the virtio devices and turns them into the
// devices' configurations.
func (p *Prepared) prepareDevices() error {
	c := p.Config
	for _, d := range c.Disks {
		if d.Backend != "" {
			if d != (Disk{Backend: d.Backend}) {
				return invalid("disk backend=%s: the image and its options are the back-end's (ember backend blk --disk)", d.Backend)
			}
			p.HV.SharedMemory = true // the back-end maps the guest's RAM
			p.disks = append(p.disks, diskSpec{backend: d.Backend})
			continue
		}
		bc, err := d.BlkConfig()
		if err != nil {
			return err
		}
		if _, err := os.Stat(d.Path); err != nil {
			return fmt.Errorf("disk: %w", err)
		}
		if err := blk.CheckFormat(bc); err != nil {
			return err
		}
		p.disks = append(p.disks, diskSpec{blk: bc})
	}
	for _, n := range c.Nets {
		nc, err := n.config()
		if err != nil {
			return err
		}
		if nc.Threads == 0 && !nc.Vhost {
			nc.Threads = NetThreads(max(nc.Queues, 1), c.CPUs, runtime.NumCPU())
		}
		p.nets = append(p.nets, nc)
	}
	if c.Balloon != nil {
		b, err := c.Balloon.spec(p.memory)
		if err != nil {
			return err
		}
		p.balloon = b
	}
	if c.DebugExitPort != 0 && !c.TestDevices {
		return invalid("debug_exit_port goes with test_devices")
	}
	if c.HyperVTestDev && !c.HyperV {
		return invalid("hyperv_testdev needs hyperv")
	}
	if c.IOMMU && c.virtioDevices() > 0 {
		return invalid("iommu: virtio devices are not behind it (their MSI-X messages would not be remapped)")
	}
	if c.Vsock != nil {
		v := c.Vsock
		if v.CID < 3 || v.CID > 0xfffffffe {
			return invalid("vsock: cid must be a number from 3 to 4294967294, not %d", v.CID)
		}
		if v.Socket == "" {
			return invalid("vsock: both cid=N and socket=PATH are needed")
		}
		p.vsock = &vsock.Config{CID: v.CID, Path: v.Socket}
	}
	return nil
}

// diskSpec is a disk as Prepare checked it: served in ember's process
// (blk), or by the back-end listening on a socket (backend).
type diskSpec struct {
	blk     blk.Config
	backend string
}

// MinStatsInterval is the shortest balloon statistics interval.
const MinStatsInterval = 100 * time.Millisecond

// spec checks a balloon against the guest's RAM size.
func (b Balloon) spec(ram uint64) (*balloonSpec, error) {
	s := &balloonSpec{cfg: balloon.Config{DeflateOnOOM: b.DeflateOnOOM, Stats: true}}
	if b.Target != "" && b.Target != "0" {
		t, err := ParseSize(b.Target)
		if err != nil {
			return nil, invalid("balloon target: %v", err)
		}
		if t >= ram {
			return nil, invalid("balloon target %s is not less than the guest's %d bytes of RAM", b.Target, ram)
		}
		s.target = t
	}
	if b.StatsInterval != "" && b.StatsInterval != "0" {
		d, err := time.ParseDuration(b.StatsInterval)
		if err != nil || d < MinStatsInterval {
			return nil, invalid("balloon stats interval %q: a duration of at least %v", b.StatsInterval, MinStatsInterval)
		}
		s.cfg.StatsInterval = d
	}
	return s, nil
}

// BlkConfig checks a disk served in ember's process and returns its
// device configuration; `ember backend blk` checks its --disk with it too.
func (d Disk) BlkConfig() (blk.Config, error) {
	c := blk.Config{Path: d.Path, ReadOnly: d.ReadOnly, Serial: d.Serial, Queues: d.Queues, Format: d.Format}
	switch {
	case d.Backend != "":
		return c, invalid("disk backend=%s: the back-end serves the disk in a process of its own", d.Backend)
	case d.Path == "":
		return c, invalid("disk: no path")
	case len(d.Serial) > 20:
		return c, invalid("disk %s: serial longer than 20 bytes", d.Path)
	case d.Queues < 0 || d.Queues > 16:
		return c, invalid("disk %s: queues must be 1 to 16", d.Path)
	case d.Format != "" && d.Format != blk.FormatRaw && d.Format != blk.FormatQcow2:
		return c, invalid("disk %s: format must be raw or qcow2, not %q: ember serves those (qemu-img convert makes one)", d.Path, d.Format)
	}
	switch d.Cache {
	case "none":
		c.Direct = true
	case "", "writeback":
	default:
		return c, invalid("disk %s: cache must be none or writeback, not %q", d.Path, d.Cache)
	}
	return c, nil
}

// config checks a network interface and returns its device configuration.
func (n Net) config() (virtionet.Config, error) {
	c := virtionet.Config{TAP: n.TAP, Vhost: n.Vhost, Queues: n.Queues, Threads: n.Threads}
	switch {
	case n.TAP == "":
		return c, invalid("net: tap=NAME is required")
	case n.Queues < 0 || n.Queues > virtionet.MaxQueuePairs:
		return c, invalid("net tap=%s: queues must be 1 to %d", n.TAP, virtionet.MaxQueuePairs)
	case n.Threads < 0 || n.Threads > max(n.Queues, 1):
		return c, invalid("net tap=%s: threads must be 1 to queues (%d)", n.TAP, max(n.Queues, 1))
	case n.Threads > 0 && n.Vhost:
		return c, invalid("net tap=%s: threads with vhost=on: the kernel's vhost-net workers serve the queues", n.TAP)
	}
	if len(n.TAP) >= unix.IFNAMSIZ {
		return c, invalid("net: tap name %q is longer than %d bytes", n.TAP, unix.IFNAMSIZ-1)
	}
	if n.MAC != "" {
		mac, err := stdnet.ParseMAC(n.MAC)
		if err != nil || len(mac) != 6 || mac[0]&1 != 0 {
			return c, invalid("net tap=%s: mac must be a unicast 6-byte address, as 52:54:00:12:34:56", n.TAP)
		}
		c.MAC = mac
	}
	return c, nil
}

// NetThreads is how many threads serve a network interface's queue pairs
// (pairs of them) when its configuration does not say (Net.Threads), for
// a guest of vcpus vCPUs on a host of hostCPUs: a thread a pair where the
// host has a CPU for each beside the vCPUs, else one for all, as QEMU's
// main loop serves every queue. A thread is one more wanting a CPU: in
// the lab (two CPUs, a guest of two vCPUs) two pairs on one thread moved
// as much as on a thread each, with one thread and one P fewer
// (docs/performance-log.md, "Several queue pairs on one thread").
func NetThreads(pairs, vcpus, hostCPUs int) int {
	if hostCPUs >= vcpus+pairs {
		return pairs
	}
	return 1
}

// prepareBIOS reads and checks the ROM; a kernel or a tiny guest with it
// is refused.
func (p *Prepared) prepareBIOS() error {
	c := p.Config
	if c.Guest != "" {
		return invalid("bios boots the firmware: it does not go with a guest")
	}
	rom, err := os.ReadFile(c.BIOS)
	if err != nil {
		return fmt.Errorf("bios: %w", err)
	}
	if err := pc.CheckFirmware(rom); err != nil {
		return invalid("bios %s: %v", c.BIOS, err)
	}
	p.Name, p.bios = c.BIOS, rom
	if c.Kernel == "" {
		return nil
	}
	// The firmware boots the kernel: fw_cfg offers it, as QEMU does.
	k := &pc.FWCfgKernel{Cmdline: c.Cmdline}
	if k.Kernel, err = os.ReadFile(c.Kernel); err != nil {
		return fmt.Errorf("kernel: %w", err)
	}
	if c.Initrd != "" {
		if k.Initrd, err = os.ReadFile(c.Initrd); err != nil {
			return fmt.Errorf("initrd: %w", err)
		}
	}
	p.fwcfg = k
	return nil
}

// prepareMultiboot checks a multiboot kernel's header and reads its
// modules: the initrd first, then Modules. The kernel's and each module's
// string start with the file's path, as GRUB and QEMU give them.
func (p *Prepared) prepareMultiboot(kernel []byte) error {
	c := p.Config
	if _, err := multiboot.Parse(kernel); err != nil {
		return invalid("kernel %s: %v", c.Kernel, err)
	}
	spec := &multibootSpec{kernel: kernel, cfg: multiboot.Config{Cmdline: strings.TrimSpace(c.Kernel + " " + c.Cmdline)}}
	mods := c.Modules
	if c.Initrd != "" {
		mods = append([]Module{{Path: c.Initrd}}, mods...)
	}
	total := uint64(len(kernel))
	for _, m := range mods {
		data, err := os.ReadFile(m.Path)
		if err != nil {
			return fmt.Errorf("module: %w", err)
		}
		total += uint64(len(data))
		spec.cfg.Modules = append(spec.cfg.Modules, multiboot.Module{Data: data, Cmdline: strings.TrimSpace(m.Path + " " + m.Cmdline)})
	}
	if total >= p.memory {
		return invalid("memory %s is too small for a %d-byte kernel and its modules", c.Memory, total)
	}
	p.Name, p.mb = c.Kernel, spec
	return nil
}

// bootModes maps Config.Boot to package boot's modes.
var bootModes = map[string]boot.Mode{
	"decompress": boot.ModeDecompress,
	"bzimage":    boot.ModeBzImage,
	"pvh":        boot.ModePVH,
}

// AutoBootMode is Boot "auto". Where KVM emulates guest ring 0 one
// instruction at a time (kvm-pvm), the kernel's own decompressor takes
// minutes, so the host decompresses; on hardware virtualization the guest
// decompresses as fast as the host does (go run ./lab linux measures both)
// and the kernel is entered the standard way, as a bootloader would.
func AutoBootMode(backend string) boot.Mode {
	if backend == kvm.BackendPVM {
		return boot.ModeDecompress
	}
	return boot.ModeBzImage
}

// prepareLinux reads the kernel and initrd.
func (p *Prepared) prepareLinux() error {
	c := p.Config
	if c.Guest != "" {
		return invalid("kernel and guest exclude each other")
	}
	mode, ok := bootModes[c.Boot]
	if c.Boot == BootAuto {
		mode, ok = AutoBootMode(kvm.Backend()), true
	}
	if !ok {
		return invalid("boot must be auto, decompress, bzimage or pvh, not %q", c.Boot)
	}
	kernel, err := os.ReadFile(c.Kernel)
	if err != nil {
		return fmt.Errorf("kernel: %w", err)
	}
	if multiboot.HasHeader(kernel) {
		return p.prepareMultiboot(kernel)
	}
	if len(c.Modules) > 0 {
		return invalid("modules: %s is not a multiboot kernel", c.Kernel)
	}
	cmdline := c.Cmdline
	if cmdline == "" {
		cmdline = DefaultCmdline
	}
	img := &vmm.LinuxImages{Cmdline: cmdline, Mode: mode, Kernel: kernel}
	if c.Initrd != "" {
		if img.Initrd, err = os.ReadFile(c.Initrd); err != nil {
			return fmt.Errorf("initrd: %w", err)
		}
	}
	if uint64(len(img.Kernel))+uint64(len(img.Initrd)) >= p.memory {
		return invalid("memory %s is too small for a %d-byte kernel and a %d-byte initrd",
			c.Memory, len(img.Kernel), len(img.Initrd))
	}
	p.Name, p.linux = c.Kernel, img
	return nil
}
