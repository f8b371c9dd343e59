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

	"ember/guest"
	"ember/hv"
	"ember/hypercall"
	"ember/machine"
)

// Exit statuses of `ember run` when the guest did not choose its own.
const (
	exitShutdown = 125 // the guest triple-faulted or shut down
	exitVMError  = 126 // a vCPU failed or ember could not run the VM
	exitHost     = 130 // stopped from the host (Ctrl-C, Ctrl-A x, timeout)
)

type runOptions struct {
	config      string // --config: a JSON machine.Config the flags add to
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
	changed     func(flag string) bool
}

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
			o.changed = cmd.Flags().Changed
			return run(cmd.Context(), o, cmd.InOrStdin(), cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.config, "config", "", "a JSON machine configuration (docs/api.md, \"Machine configuration\"); flags given with it override its fields")
	f.StringVar(&o.guest, "guest", "demo", "built-in tiny guest to boot: "+strings.Join(names, ", "))
	f.StringVar(&o.memory, "memory", "2M", "guest RAM, e.g. 2M, 512M, 1G (default "+machine.DefaultLinuxMemory+" with --kernel)")
	f.IntVar(&o.cpus, "cpus", 1, "number of vCPUs")
	f.DurationVar(&o.timeout, "timeout", 0, "stop the guest after this long (0: no limit)")
	f.BoolVarP(&o.quiet, "quiet", "q", false, "do not print the summary line")
	f.StringVar(&o.kernel, "kernel", "", "Linux kernel to boot: a bzImage or an ELF vmlinux")
	f.StringVar(&o.bios, "bios", "", "a firmware ROM (whole pages, at most 16 MiB) to boot from the reset vector: mapped below 4 GiB, its last 128 KiB also below 1 MiB")
	f.StringVar(&o.initrd, "initrd", "", "initial RAM disk for --kernel")
	f.StringVar(&o.cmdline, "cmdline", "console=ttyS0", "kernel command line for --kernel")
	f.StringVar(&o.bootMode, "boot", machine.BootAuto, "how to enter --kernel: decompress, bzimage, pvh, or auto (decompress where KVM emulates guest ring 0, else bzimage)")
	f.StringVar(&o.console, "console", consoleStdio, "where guest console output goes: stdio, file or none")
	f.StringVar(&o.consoleFile, "console-file", "", "file for --console=file")
	f.StringVar(&o.reboot, "reboot", machine.RebootExit, "what a guest reboot does: exit or restart")
	f.StringSliceVar(&o.cpuidMask, "cpuid-mask", nil, "CPUID features to hide, e.g. cx16,xsave (names as in /proc/cpuinfo)")
	f.StringVar(&o.dmSocket, "device-model-socket", "", "unix socket to create for out-of-process device models (docs/ioreq-protocol.md)")
	f.StringArrayVar(&o.disks, "disk", nil, "a raw disk image as a virtio-blk device: PATH[,readonly][,serial=ID][,queues=N][,cache=none] (repeatable; cache=none bypasses the host's page cache)")
	f.StringVar(&o.consoleDev, "console-device", machine.ConsoleSerial, "the guest's console device: serial (COM1) or virtio (virtio-console, Linux's hvc0: boot with console=hvc0)")
	f.StringArrayVar(&o.nets, "net", nil, "a virtio-net device on a TAP interface: tap=NAME[,mac=MAC] (repeatable; creating the TAP needs CAP_NET_ADMIN, or have root create it with ip tuntap)")
	f.StringVar(&o.vsock, "vsock", "", "a virtio-vsock device: cid=N,socket=PATH (the guest reaches host port P at PATH_P; a host program connects to PATH and writes \"CONNECT P\\n\" to reach guest port P)")
	f.BoolVar(&o.rng, "rng", false, "give the guest a virtio-rng device (virtio-pci), fed from the host's getrandom")
	return cmd
}

// machineConfig is the machine the options describe: --config's file, if
// any, with the flags given on the command line over it (all the flags,
// with their defaults, without --config).
func machineConfig(o runOptions) (machine.Config, error) {
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
	if changed("guest") {
		c.Guest = o.guest
	}
	if changed("memory") {
		c.Memory = o.memory
	}
	strs := []struct {
		flag string
		dst  *string
		v    string
	}{
		{"kernel", &c.Kernel, o.kernel}, {"initrd", &c.Initrd, o.initrd}, {"cmdline", &c.Cmdline, o.cmdline},
		{"boot", &c.Boot, o.bootMode}, {"bios", &c.BIOS, o.bios}, {"reboot", &c.Reboot, o.reboot},
		{"console-device", &c.ConsoleDevice, o.consoleDev}, {"device-model-socket", &c.DeviceModelSocket, o.dmSocket},
	}
	for _, f := range strs {
		if set(f.flag) {
			*f.dst = f.v
		}
	}
	if set("cpus") {
		if o.cpus < 1 { // 0 in a Config means the default, but not on the command line
			return c, fmt.Errorf("--cpus must be at least 1, not %d", o.cpus)
		}
		c.CPUs = o.cpus
	}
	if set("cpuid-mask") {
		c.CPUIDMask = o.cpuidMask
	}
	if set("rng") {
		c.RNG = o.rng
	}
	return c, addDeviceFlags(&c, o)
}

// addDeviceFlags adds --disk, --net and --vsock to c.
func addDeviceFlags(c *machine.Config, o runOptions) error {
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
	if o.vsock != "" {
		v, err := machine.ParseVsock(o.vsock)
		if err != nil {
			return err
		}
		c.Vsock = &v
	}
	return nil
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
	cfg, err := machineConfig(o)
	if err != nil {
		return err
	}
	p, err := cfg.Prepare()
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
	out, closeOut, err := openConsole(o.console, o.consoleFile, stdout)
	if err != nil {
		return err
	}
	defer closeOut()
	opts := machine.Options{Console: out, Logger: slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))}

	// A Linux guest on the stdio console reads the terminal.
	var input *consoleInput
	if p.Linux() && o.console == consoleStdio {
		defer rawTerminal(stdin)()
		input = startConsoleInput(ctx, stdin)
	}
	for {
		res, exits, err := bootOnce(ctx, hc, p, opts, input)
		if err != nil {
			return err
		}
		if !o.quiet {
			fmt.Fprintf(stderr, "ember: %s: %v; %d exits handled in %v\n",
				p.Name, res, exits, time.Since(start).Round(time.Microsecond))
		}
		if res.Reason == hv.StopReset && p.Config.Reboot == machine.RebootRestart {
			if ctx.Err() != nil { // stopped from the host between boots
				return exitError{exitHost}
			}
			continue
		}
		return statusOf(res)
	}
}

// bootOnce builds a machine for p, runs it until it stops, and tears it
// down. input, if not nil, feeds the machine's console while it runs.
// Every guest, tiny ones too, gets the PC platform, so they can use COM1,
// the i8042 reset line, the PIT and the other vCPUs as Linux would.
func bootOnce(ctx context.Context, hc *hypercall.Service, p *machine.Prepared, o machine.Options, input *consoleInput) (hv.Result, uint64, error) {
	m, err := machine.Build(hc, p, o)
	if err != nil {
		return hv.Result{}, 0, err
	}
	defer m.Close()
	if input != nil {
		bootCtx, cancel := context.WithCancel(ctx)
		defer cancel()
		defer input.attach(bootCtx, m)()
	}
	res, err := m.VM.Run(ctx)
	return res, m.VM.Exits(), err
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
