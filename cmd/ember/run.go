package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"sort"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"ember/boot"
	"ember/guest"
	"ember/hv"
	"ember/hypercall"
	"ember/kvm"
	"ember/pc"
	"ember/virtio/blk"
	"ember/virtio/vsock"
	"ember/vmm"
	"ember/x86"
)

// Exit statuses of `ember run` when the guest did not choose its own.
const (
	exitShutdown = 125 // the guest triple-faulted or shut down
	exitVMError  = 126 // a vCPU failed or ember could not run the VM
	exitHost     = 130 // stopped from the host (Ctrl-C, Ctrl-A x, timeout)
)

// Reboot policies for --reboot.
const (
	rebootExit    = "exit"
	rebootRestart = "restart"
)

type runOptions struct {
	guest       string
	memory      string
	cpus        int
	timeout     time.Duration
	quiet       bool
	kernel      string
	initrd      string
	cmdline     string
	bootMode    string
	console     string
	consoleFile string
	reboot      string
	cpuidMask   []string
	dmSocket    string   // --device-model-socket
	rng         bool     // --rng
	disks       []string // --disk
	consoleDev  string   // --console-device
	nets        []string // --net
	bios        string   // --bios
	vsock       string   // --vsock
}

// defaultLinuxMemory is the RAM a Linux guest gets when --memory is not given.
const defaultLinuxMemory = "512M"

func newRunCmd() *cobra.Command {
	o := runOptions{}
	names := make([]string, 0, len(guest.All))
	for _, p := range guest.All {
		names = append(names, p.Name)
	}
	sort.Strings(names)
	cmd := &cobra.Command{
		Use:   "run",
		Short: "Boot a guest (the demo, a built-in tiny guest, or a Linux kernel)",
		Long: `Boot a guest, show its console, and exit with the guest's status.

With no arguments, run boots the built-in demo guest: a tiny 64-bit program
that greets the console, drops to ring 3, counts primes and exits 0.

With --kernel, run boots Linux on a PC platform (COM1 on the console, i8042,
CMOS/RTC, PCI host bridge, MP table for --cpus vCPUs). A bzImage is decompressed
on the host and entered at its 64-bit entry point (--boot=decompress, the
default); --boot=bzimage runs the kernel's own decompressor in the guest;
--boot=pvh enters a PVH-capable kernel in 32-bit mode. On a terminal, input
goes to the guest in raw mode; Ctrl-A x quits.

When the guest stops, run prints a one-line summary (exits handled, wall time)
on standard error. The exit status is the guest's own status (written to the
exit port), or 125 if the guest shut down (triple fault), 126 if the VM failed,
130 if it was stopped from the host.`,
		Example: `  ember run
  ember run --guest long64
  ember run --kernel vmlinuz --initrd initrd.img --cmdline "console=ttyS0" --cpus 2 --memory 512M`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if o.kernel != "" && !cmd.Flags().Changed("memory") {
				o.memory = defaultLinuxMemory
			}
			return run(cmd.Context(), o, cmd.InOrStdin(), cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.guest, "guest", "demo", "built-in tiny guest to boot: "+strings.Join(names, ", "))
	f.StringVar(&o.memory, "memory", "2M", "guest RAM, e.g. 2M, 512M, 1G (default "+defaultLinuxMemory+" with --kernel)")
	f.IntVar(&o.cpus, "cpus", 1, "number of vCPUs")
	f.DurationVar(&o.timeout, "timeout", 0, "stop the guest after this long (0: no limit)")
	f.BoolVarP(&o.quiet, "quiet", "q", false, "do not print the summary line")
	f.StringVar(&o.kernel, "kernel", "", "Linux kernel to boot: a bzImage or an ELF vmlinux")
	f.StringVar(&o.bios, "bios", "", "a firmware ROM (whole pages, at most 16 MiB) to boot from the reset vector: mapped below 4 GiB, its last 128 KiB also below 1 MiB")
	f.StringVar(&o.initrd, "initrd", "", "initial RAM disk for --kernel")
	f.StringVar(&o.cmdline, "cmdline", "console=ttyS0", "kernel command line for --kernel")
	f.StringVar(&o.bootMode, "boot", bootAuto, "how to enter --kernel: decompress, bzimage, pvh, or auto (decompress where KVM emulates guest ring 0, else bzimage)")
	f.StringVar(&o.console, "console", consoleStdio, "where guest console output goes: stdio, file or none")
	f.StringVar(&o.consoleFile, "console-file", "", "file for --console=file")
	f.StringVar(&o.reboot, "reboot", rebootExit, "what a guest reboot does: exit or restart")
	f.StringSliceVar(&o.cpuidMask, "cpuid-mask", nil, "CPUID features to hide, e.g. cx16,xsave (names as in /proc/cpuinfo)")
	f.StringVar(&o.dmSocket, "device-model-socket", "", "unix socket to create for out-of-process device models (docs/ioreq-protocol.md)")
	f.StringArrayVar(&o.disks, "disk", nil, "a raw disk image as a virtio-blk device: PATH[,readonly][,serial=ID][,queues=N][,cache=none] (repeatable; cache=none bypasses the host's page cache)")
	f.StringVar(&o.consoleDev, "console-device", consoleSerial, "the guest's console device: serial (COM1) or virtio (virtio-console, Linux's hvc0: boot with console=hvc0)")
	f.StringArrayVar(&o.nets, "net", nil, "a virtio-net device on a TAP interface: tap=NAME[,mac=MAC] (repeatable; creating the TAP needs CAP_NET_ADMIN, or have root create it with ip tuntap)")
	f.StringVar(&o.vsock, "vsock", "", "a virtio-vsock device: cid=N,socket=PATH (the guest reaches host port P at PATH_P; a host program connects to PATH and writes \"CONNECT P\\n\" to reach guest port P)")
	f.BoolVar(&o.rng, "rng", false, "give the guest a virtio-rng device (virtio-pci), fed from the host's getrandom")
	return cmd
}

// bootAuto lets ember choose the boot path for the host's KVM.
const bootAuto = "auto"

// autoBootMode is --boot=auto. Where KVM emulates guest ring 0 one
// instruction at a time (kvm-pvm), the kernel's own decompressor takes
// minutes, so the host decompresses; on hardware virtualization the guest
// decompresses as fast as the host does (go run ./lab linux measures both)
// and the kernel is entered the standard way, as a bootloader would.
func autoBootMode(backend string) boot.Mode {
	if backend == kvm.BackendPVM {
		return boot.ModeDecompress
	}
	return boot.ModeBzImage
}

// bootModes maps --boot to package boot's modes.
var bootModes = map[string]boot.Mode{
	"decompress": boot.ModeDecompress,
	"bzimage":    boot.ModeBzImage,
	"pvh":        boot.ModePVH,
}

// prepared is a validated run: everything read from disk, ready to boot.
type prepared struct {
	name   string
	cfg    hv.Config
	prog   guest.Program    // a tiny guest, or
	linux  *vmm.LinuxImages // a kernel
	reboot string
	rng    bool          // a virtio-rng device
	disks  []blk.Config  // virtio-blk devices
	hvc    bool          // the console is a virtio-console device
	nets   []netSpec     // virtio-net devices
	bios   []byte        // a firmware ROM, booted from the reset vector
	vsock  *vsock.Config // a virtio-vsock device
}

// prepare checks every option and reads the files, so that misconfiguration is
// reported before /dev/kvm is opened or a VM exists.
func prepare(o runOptions) (*prepared, error) {
	size, err := parseSize(o.memory)
	if err != nil {
		return nil, err
	}
	if o.cpus < 1 {
		return nil, fmt.Errorf("--cpus must be at least 1, not %d", o.cpus)
	}
	if o.reboot != rebootExit && o.reboot != rebootRestart {
		return nil, fmt.Errorf("--reboot must be exit or restart, not %q", o.reboot)
	}
	if err := x86.CheckCPUIDMask(o.cpuidMask); err != nil {
		return nil, fmt.Errorf("--cpuid-mask: %w", err)
	}
	if o.consoleDev != consoleSerial && o.consoleDev != consoleVirtio {
		return nil, fmt.Errorf("--console-device must be serial or virtio, not %q", o.consoleDev)
	}
	var vs *vsock.Config
	if o.vsock != "" {
		c, err := parseVsock(o.vsock)
		if err != nil {
			return nil, err
		}
		vs = &c
	}
	var nets []netSpec
	for _, n := range o.nets {
		spec, err := parseNet(n)
		if err != nil {
			return nil, err
		}
		nets = append(nets, spec)
	}
	var disks []blk.Config
	for _, d := range o.disks {
		c, err := parseDisk(d)
		if err != nil {
			return nil, err
		}
		if _, err := os.Stat(c.Path); err != nil {
			return nil, fmt.Errorf("--disk: %w", err)
		}
		disks = append(disks, c)
	}
	p := &prepared{reboot: o.reboot, rng: o.rng, disks: disks, nets: nets, vsock: vs, hvc: o.consoleDev == consoleVirtio, cfg: hv.Config{MemorySize: size, VCPUs: o.cpus, CPUIDMask: o.cpuidMask, DeviceModelSocket: o.dmSocket}}
	if o.bios != "" {
		return prepareBIOS(p, o)
	}
	if o.kernel == "" {
		prog, ok := guest.ByName(o.guest)
		if !ok {
			return nil, fmt.Errorf("no built-in guest %q (see 'ember run --help')", o.guest)
		}
		p.name, p.prog = prog.Name, prog
		return p, nil
	}
	mode, ok := bootModes[o.bootMode]
	if o.bootMode == bootAuto {
		mode, ok = autoBootMode(kvm.Backend()), true
	}
	if !ok {
		return nil, fmt.Errorf("--boot must be auto, decompress, bzimage or pvh, not %q", o.bootMode)
	}
	img := &vmm.LinuxImages{Cmdline: o.cmdline, Mode: mode}
	if img.Kernel, err = os.ReadFile(o.kernel); err != nil {
		return nil, fmt.Errorf("--kernel: %w", err)
	}
	if o.initrd != "" {
		if img.Initrd, err = os.ReadFile(o.initrd); err != nil {
			return nil, fmt.Errorf("--initrd: %w", err)
		}
	}
	if uint64(len(img.Kernel))+uint64(len(img.Initrd)) >= size {
		return nil, fmt.Errorf("--memory %s is too small for a %d-byte kernel and a %d-byte initrd",
			o.memory, len(img.Kernel), len(img.Initrd))
	}
	p.name, p.linux = o.kernel, img
	return p, nil
}

// prepareBIOS is prepare for --bios: the ROM is read and checked, and
// --kernel or a non-default --guest with it is refused.
func prepareBIOS(p *prepared, o runOptions) (*prepared, error) {
	if o.kernel != "" || o.guest != "demo" {
		return nil, fmt.Errorf("--bios boots the firmware: it goes with neither --kernel nor --guest")
	}
	rom, err := os.ReadFile(o.bios)
	if err != nil {
		return nil, fmt.Errorf("--bios: %w", err)
	}
	if err := pc.CheckFirmware(rom); err != nil {
		return nil, fmt.Errorf("--bios %s: %w", o.bios, err)
	}
	p.name, p.bios = o.bios, rom
	return p, nil
}

func run(ctx context.Context, o runOptions, stdin io.Reader, stdout, stderr io.Writer) error {
	if ctx == nil {
		ctx = context.Background()
	}
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt)
	defer stop()
	if o.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, o.timeout)
		defer cancel()
	}
	start := time.Now()
	p, err := prepare(o)
	if err != nil {
		return err
	}
	h, err := hv.Open()
	if err != nil {
		return explainKVM(err)
	}
	defer h.Close()
	// VMs are made through the hypercall service, so a guest's OUT to the
	// hypercall port is judged as docs/abi.md says (#UD for a plain VM).
	hc := hypercall.New(h)
	defer hc.Close()
	if max, err := h.System().CheckExtension(kvm.CapMaxVCPUs); err == nil && max > 0 && o.cpus > max {
		return fmt.Errorf("--cpus %d: this host's KVM allows at most %d vCPUs per VM", o.cpus, max)
	}
	out, closeOut, err := openConsole(o.console, o.consoleFile, stdout)
	if err != nil {
		return err
	}
	defer closeOut()
	p.cfg.Console = out
	p.cfg.Logger = slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))

	// A Linux guest on the stdio console reads the terminal through COM1.
	var input *consoleInput
	if p.linux != nil && o.console == consoleStdio {
		defer rawTerminal(stdin)()
		input = startConsoleInput(ctx, stdin)
	}
	for boots := 1; ; boots++ {
		res, exits, err := bootOnce(ctx, hc, p, input)
		if err != nil {
			return err
		}
		if !o.quiet {
			fmt.Fprintf(stderr, "ember: %s: %v; %d exits handled in %v\n",
				p.name, res, exits, time.Since(start).Round(time.Microsecond))
		}
		if res.Reason == hv.StopReset && p.reboot == rebootRestart {
			if ctx.Err() != nil { // stopped from the host between boots
				return exitError{exitHost}
			}
			continue
		}
		return statusOf(res)
	}
}

// bootOnce builds a VM for p, runs it until it stops, and tears it down.
// input, if not nil, feeds the VM's COM1 while it runs. Every guest, tiny
// ones too, gets the PC platform, so they can use COM1, the i8042 reset
// line, the PIT and the other vCPUs as Linux would.
func bootOnce(ctx context.Context, hc *hypercall.Service, p *prepared, input *consoleInput) (hv.Result, uint64, error) {
	vm, err := hc.NewVM(p.cfg, hypercall.Identity{})
	if err != nil {
		return hv.Result{}, 0, err
	}
	defer vm.Close()
	plat, err := pc.Attach(vm, pc.Config{})
	if err != nil {
		return hv.Result{}, 0, err
	}
	hvcIn, err := addVirtio(vm, plat, p)
	if err != nil {
		return hv.Result{}, 0, err
	}
	if p.bios != nil {
		if err := pc.LoadFirmware(vm, p.bios); err != nil {
			return hv.Result{}, 0, err
		}
		if err := vm.SetEntry(0, pc.ResetVector); err != nil {
			return hv.Result{}, 0, err
		}
	} else if p.linux != nil {
		entry, err := vmm.SetupLinuxImages(vm.Memory(), *p.linux)
		if err != nil {
			return hv.Result{}, 0, err
		}
		if err := vm.SetEntry(0, vmm.CPUEntry(entry)); err != nil {
			return hv.Result{}, 0, err
		}
	} else {
		if err := vm.LoadImage(p.prog.Code, guest.LoadAddr); err != nil {
			return hv.Result{}, 0, err
		}
		if err := vm.SetEntry(0, p.prog.Entry()); err != nil {
			return hv.Result{}, 0, err
		}
	}
	if input != nil {
		bootCtx, cancel := context.WithCancel(ctx)
		defer cancel()
		if hvcIn != nil {
			defer input.attachWriter(vm, hvcIn)()
		} else {
			defer input.attach(bootCtx, vm, plat.COM1)()
		}
	}
	res, err := vm.Run(ctx)
	return res, vm.Exits(), err
}

// statusOf turns how the guest ended into the process's exit status.
func statusOf(res hv.Result) error {
	switch res.Reason {
	case hv.StopExit:
		if res.Status&0xff == 0 {
			return nil
		}
		return exitError{res.Status & 0xff}
	case hv.StopShutdown:
		return exitError{exitShutdown}
	case hv.StopHost:
		return exitError{exitHost}
	case hv.StopHalted, hv.StopReset, hv.StopPowerOff:
		return nil
	}
	return exitError{exitVMError}
}
