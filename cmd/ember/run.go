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
)

// Exit statuses of `ember run` when the guest did not choose its own.
const (
	exitShutdown = 125 // the guest triple-faulted or shut down
	exitVMError  = 126 // a vCPU failed or ember could not run the VM
	exitHost     = 130 // stopped from the host (Ctrl-C, timeout)
)

type runOptions struct {
	guest   string
	memory  string
	cpus    int
	timeout time.Duration
	quiet   bool
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
		Short: "Boot a guest and show its console",
		Long: `Boot a guest, show its console output, and exit with the guest's status.

With no arguments, run boots the built-in demo guest: a tiny 64-bit program
that greets the console, drops to ring 3, counts primes and exits 0.

When the guest stops, run prints a one-line summary (exits handled, wall time)
on standard error. The exit status is the guest's own status (written to the
exit port), or 125 if the guest shut down (triple fault), 126 if the VM failed,
130 if it was stopped from the host.`,
		Example: `  ember run
  ember run --guest long64 --memory 4M`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runGuest(cmd.Context(), o, cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.guest, "guest", "demo", "built-in tiny guest to boot: "+strings.Join(names, ", "))
	f.StringVar(&o.memory, "memory", "2M", "guest RAM, e.g. 2M, 512M, 1G")
	f.IntVar(&o.cpus, "cpus", 1, "number of vCPUs")
	f.DurationVar(&o.timeout, "timeout", 0, "stop the guest after this long (0: no limit)")
	f.BoolVarP(&o.quiet, "quiet", "q", false, "do not print the summary line")
	return cmd
}

func runGuest(ctx context.Context, o runOptions, stdout, stderr io.Writer) error {
	prog, ok := guest.ByName(o.guest)
	if !ok {
		return fmt.Errorf("no built-in guest %q (see 'ember run --help')", o.guest)
	}
	size, err := parseSize(o.memory)
	if err != nil {
		return err
	}
	if o.cpus < 1 {
		return fmt.Errorf("--cpus must be at least 1, not %d", o.cpus)
	}
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
	h, err := hv.Open()
	if err != nil {
		return err
	}
	defer h.Close()
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	vm, err := h.NewVM(hv.Config{MemorySize: size, VCPUs: o.cpus, Console: stdout, Logger: log})
	if err != nil {
		return err
	}
	defer vm.Close()
	if err := vm.LoadImage(prog.Code, guest.LoadAddr); err != nil {
		return err
	}
	if err := vm.SetEntry(0, prog.Entry()); err != nil {
		return err
	}
	res, err := vm.Run(ctx)
	if err != nil {
		return err
	}
	if !o.quiet {
		fmt.Fprintf(stderr, "ember: %s: %v; %d exits handled in %v\n",
			prog.Name, res, vm.Exits(), time.Since(start).Round(time.Microsecond))
	}
	return statusOf(res)
}

// statusOf turns how the guest ended into the process's exit status.
func statusOf(res hv.Result) error {
	switch res.Reason {
	case hv.StopExit:
		if res.Status == 0 {
			return nil
		}
		return exitError{res.Status & 0xff}
	case hv.StopShutdown:
		return exitError{exitShutdown}
	case hv.StopHost:
		return exitError{exitHost}
	case hv.StopHalted, hv.StopReset:
		return nil
	}
	return exitError{exitVMError}
}
