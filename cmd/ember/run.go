package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"time"

	"github.com/spf13/cobra"

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
	machineOptions
	timeout     time.Duration
	quiet       bool
	console     string
	consoleFile string
	goTrace     string
}

func newRunCmd() *cobra.Command {
	o := runOptions{}
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
130 if it was stopped from the host.

A guest that seems stuck can be looked at without stopping it: SIGUSR1
(kill -USR1 PID) makes run print the VM's state on standard error — each
vCPU's registers, pending events and local APIC, the PICs and IOAPIC, COM1,
and every virtio device's status and queue indices.`,
		Example: `  ember run
  ember run --guest long64
  ember run --kernel vmlinuz --initrd initrd.img --cmdline "console=ttyS0" --cpus 2 --memory 512M`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return run(cmd.Context(), o, cmd.InOrStdin(), cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	f := cmd.Flags()
	o.machineOptions.addFlags(f)
	f.DurationVar(&o.timeout, "timeout", 0, "stop the guest after this long (0: no limit)")
	f.BoolVarP(&o.quiet, "quiet", "q", false, "do not print the summary line")
	f.StringVar(&o.console, "console", consoleStdio, "where guest console output goes: stdio, file or none")
	f.StringVar(&o.consoleFile, "console-file", "", "file for --console=file")
	f.StringVar(&o.goTrace, "go-trace", "", "write a Go execution trace of ember itself to this file (go tool trace: where its goroutines waited)")
	return cmd
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
	cfg, err := o.machineConfig()
	if err != nil {
		return err
	}
	stopTrace, err := startGoTrace(o.goTrace)
	if err != nil {
		return err
	}
	defer stopTrace()
	p, err := cfg.Prepare()
	if err != nil {
		return err
	}
	hc, closeService, err := openService()
	if err != nil {
		return err
	}
	defer closeService()
	out, closeOut, err := openConsole(o.console, o.consoleFile, stdout)
	if err != nil {
		return err
	}
	defer closeOut()
	opts := machine.Options{Console: out, Logger: slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))}

	// A Linux guest on the stdio console reads the terminal.
	var input *consoleInput
	raw := false
	if p.Linux() && o.console == consoleStdio {
		raw = isTerminal(stdin)
		defer rawTerminal(stdin)()
		input = startConsoleInput(ctx, stdin)
	}
	reports := startStateReporter(stderr, raw)
	defer reports.stop()
	for {
		res, exits, err := bootOnce(ctx, hc, p, opts, input, reports)
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
// down. input, if not nil, feeds the machine's console while it runs;
// reports shows its state on SIGUSR1.
// Every guest, tiny ones too, gets the PC platform, so they can use COM1,
// the i8042 reset line, the PIT and the other vCPUs as Linux would.
func bootOnce(ctx context.Context, hc *hypercall.Service, p *machine.Prepared, o machine.Options, input *consoleInput, reports *stateReporter) (hv.Result, uint64, error) {
	m, err := machine.Build(hc, p, o)
	if err != nil {
		return hv.Result{}, 0, err
	}
	defer m.Close()
	defer reports.attach(m)()
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
