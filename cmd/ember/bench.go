package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"ember/bench"
	"ember/guest"
	"ember/hv"
	"ember/machine"
)

func newBenchCmd() *cobra.Command {
	var (
		short    bool
		jsonPath string
		p        = bench.DefaultParams
	)
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Measure ember against a raw-ioctl C loop and QEMU, side by side",
		Long: `Measure ember and its baselines on the same guest bytes in one run and
print a table of the results and their ratios:

  exit round trip   ns per PIO / MMIO exit: the raw-ioctl C baseline (built
                    here with gcc), ember per client kind, QEMU from Debian
  start latency     process start to first console byte and to exit
  memory            VMM peak RSS minus touched guest RAM, 128 MiB guest
  density, churn    tiny VMs held by one process; create-run-destroy rate

QEMU (qemu-system-x86) is installed with apt-get if missing. If a baseline
cannot be run, bench fails instead of printing a table without it.`,
		Example: `  ember bench
  ember bench --short --json /tmp/bench.json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			flags := cmd.Flags()
			if short {
				sp := bench.ShortParams
				for name, dst := range map[string]any{"n": &p.N, "n0": &p.N0, "reps": &p.Reps,
					"start-reps": &p.StartReps, "density-cap": &p.DensityCap, "churn-time": &p.ChurnTime} {
					if flags.Changed(name) {
						continue
					}
					switch d := dst.(type) {
					case *int:
						*d = map[string]int{"n": sp.N, "n0": sp.N0, "reps": sp.Reps, "start-reps": sp.StartReps, "density-cap": sp.DensityCap}[name]
					case *time.Duration:
						*d = sp.ChurnTime
					}
				}
			}
			exe, err := os.Executable()
			if err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt)
			defer stop()
			r, err := bench.Run(ctx, bench.Options{
				Params: p, Short: short, Ember: exe, Log: cmd.ErrOrStderr(),
				Command: "ember " + strings.Join(os.Args[1:], " "),
			})
			if err != nil {
				return err
			}
			if err := r.WriteTable(cmd.OutOrStdout()); err != nil {
				return err
			}
			if jsonPath != "" {
				return r.WriteJSONFile(jsonPath)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.BoolVar(&short, "short", false, "few iterations (CI): "+bench.ShortParams.String())
	f.StringVar(&jsonPath, "json", "", "also write the report as JSON to this file")
	f.IntVar(&p.N, "n", p.N, "exits per measured run (a multiple of 16)")
	f.IntVar(&p.N0, "n0", p.N0, "exits of the run subtracted from it (a multiple of 16)")
	f.IntVar(&p.Reps, "reps", p.Reps, "repetitions of the exit measurements (medians are reported)")
	f.IntVar(&p.StartReps, "start-reps", p.StartReps, "repetitions of the start-latency runs")
	f.IntVar(&p.DensityCap, "density-cap", p.DensityCap, "most tiny VMs the density run creates")
	f.DurationVar(&p.ChurnTime, "churn-time", p.ChurnTime, "how long the churn run lasts")
	cmd.AddCommand(newBenchBootCmd(), newBenchImagesCmd())
	return cmd
}

// newBenchImagesCmd writes the exit round-trip guests, patched with an exit
// count, so a row of the table can be reproduced by hand with ember run
// --bios and QEMU's -bios.
func newBenchImagesCmd() *cobra.Command {
	var n int
	cmd := &cobra.Command{
		Use:   "images DIR",
		Short: "Write the benchmark's guests (PIO, MMIO, hello) as ROMs for ember run --bios and qemu -bios",
		Long: `Write bench_pio.rom and bench_mmio.rom (each makes --n exits, then writes 0
to the exit port) and bench_hello.rom (prints a line and exits) into DIR, and
print how to time them by hand:

  time ember run -q --bios DIR/bench_pio.rom
  time qemu-system-x86_64 -accel kvm -M microvm -nodefaults -display none -bios DIR/bench_pio.rom \
       -device isa-debug-exit,iobase=0xf4,iosize=4

(QEMU's isa-debug-exit ends QEMU with status (0 << 1) | 1 = 1.)`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return writeBenchImages(cmd.OutOrStdout(), args[0], n)
		},
	}
	cmd.Flags().IntVar(&n, "n", bench.DefaultParams.N, "exits each of the PIO and MMIO images makes (a multiple of 16)")
	return cmd
}

// writeBenchImages writes the patched images into dir.
func writeBenchImages(w io.Writer, dir string, n int) error {
	if n < 0 || n%16 != 0 {
		return fmt.Errorf("--n must be a non-negative multiple of 16, not %d", n)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for _, g := range []struct {
		name  string
		image []byte
		count uint32
	}{
		{"bench_pio.rom", guest.BenchPIO.Code, uint32(n)},
		{"bench_mmio.rom", guest.BenchMMIO.Code, uint32(n)},
		{"bench_hello.rom", guest.BenchHello.Code, 0},
	} {
		img, err := bench.Patch(g.image, g.count)
		if err != nil {
			return err
		}
		path := filepath.Join(dir, g.name)
		if err := os.WriteFile(path, img, 0o644); err != nil {
			return err
		}
		fmt.Fprintf(w, "%s\ttime ember run -q --bios %s\n", g.name, path)
	}
	return nil
}

// newBenchBootCmd is the ember side of the whole-process rows: it boots one
// bench image (a 64 KiB reset-vector image) the way QEMU's -bios does.
func newBenchBootCmd() *cobra.Command {
	var image, memory string
	cmd := &cobra.Command{
		Use:    "boot",
		Short:  "Boot a 64 KiB reset-vector image at 0xF0000 (used by the harness)",
		Hidden: true,
		Args:   cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return benchBoot(cmd.Context(), image, memory, cmd.OutOrStdout())
		},
	}
	cmd.Flags().StringVar(&image, "image", "", "the image file")
	cmd.Flags().StringVar(&memory, "memory", "128M", "guest RAM")
	return cmd
}

func benchBoot(ctx context.Context, path, memory string, stdout io.Writer) error {
	img, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	size, err := machine.ParseSize(memory)
	if err != nil {
		return err
	}
	if ctx == nil {
		ctx = context.Background()
	}
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt)
	defer stop()
	h, err := hv.Open()
	if err != nil {
		return explainKVM(err)
	}
	defer h.Close()
	st, err := bench.Boot(ctx, h, img, bench.BootConfig{MemorySize: size, Console: stdout})
	if err != nil {
		return fmt.Errorf("bench boot: %w", err)
	}
	return statusOf(st.Result)
}
