package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"ember/internal/gobuild"
	"ember/internal/linuxguest"
	"ember/lab/job"
)

// timeVirtioCmd is the hidden command `lab virtio` runs inside the lab.
const timeVirtioCmd = "time-virtio"

// virtioDiskMiB is the size of the benchmark's disk image.
const virtioDiskMiB = 256

func newVirtioCmd(o *options) *cobra.Command {
	var kernel string
	var reps int
	cmd := &cobra.Command{
		Use:   "virtio [--kernel vmlinuz] [--reps N]",
		Short: "measure virtio-blk from inside a Linux guest under ember and under QEMU, in the lab",
		Long: `virtio boots Debian's kernel (--kernel, default $EMBER_KERNEL: a
.../boot/vmlinuz-VERSION whose tree has the virtio modules, as .ci/run
extracts it) with a 256 MiB raw disk, under ember (virtio-blk on virtio-pci)
and under QEMU (-accel kvm -M pc, virtio-blk-pci, the same image and page
cache), and runs a small guest program (internal/linuxguest/blkbench) that
reads and writes /dev/vda with O_DIRECT: 1 MiB sequential reads and writes
(MB/s) and 4 KiB random reads with 16 in flight (IOPS). It prints the
medians of --reps boots each, and ember's ratio to QEMU.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if kernel == "" {
				kernel = os.Getenv("EMBER_KERNEL")
			}
			if kernel == "" {
				return fmt.Errorf("--kernel or $EMBER_KERNEL: a Debian kernel with its virtio modules (see .ci/run)")
			}
			s, err := newSession(o)
			if err != nil {
				return err
			}
			defer s.close()
			s.p.say("building ember and the guest's benchmark")
			bench, err := gobuild.BuildStatic(cmd.Context(), s.dir, "ember/internal/linuxguest/blkbench")
			if err != nil {
				return err
			}
			prog, err := os.ReadFile(bench)
			if err != nil {
				return err
			}
			ird, err := linuxguest.BuildFromSystem(kernel, linuxguest.File{Path: "bin/blkbench", Data: prog})
			if err != nil {
				return err
			}
			if ird.Modules == 0 {
				return fmt.Errorf("%s: no virtio modules next to it (lib/modules/VERSION)", kernel)
			}
			irdPath := filepath.Join(s.dir, "bench-initramfs.cpio")
			if err := os.WriteFile(irdPath, ird.Data, 0o644); err != nil {
				return err
			}
			// The kernel is read inside the lab, where only the cache is
			// shared: copy it into the session's directory.
			kb, err := os.ReadFile(kernel)
			if err != nil {
				return err
			}
			kPath := filepath.Join(s.dir, "vmlinuz")
			if err := os.WriteFile(kPath, kb, 0o644); err != nil {
				return err
			}
			ember, err := gobuild.Build(cmd.Context(), s.dir, "ember/cmd/ember")
			if err != nil {
				return err
			}
			self, err := gobuild.Build(cmd.Context(), s.dir, "ember/lab")
			if err != nil {
				return err
			}
			wd, _ := os.Getwd()
			return s.run(cmd.Context(), job.Job{Steps: []job.Step{{
				Label: "virtio benchmark",
				Dir:   wd,
				Args: []string{self, timeVirtioCmd, "--ember", ember, "--kernel", kPath, "--initrd", irdPath,
					"--reps", strconv.Itoa(reps)},
				Env: labEnv(),
			}}})
		},
	}
	cmd.Flags().StringVar(&kernel, "kernel", "", "the kernel to boot (default $EMBER_KERNEL)")
	cmd.Flags().IntVar(&reps, "reps", 3, "boots per subject; the table shows medians")
	return cmd
}

// benchCmdline is the guest command line of every benchmark boot.
const benchCmdline = "console=ttyS0 ember.end=poweroff ember.bench=1"

func newTimeVirtioCmd() *cobra.Command {
	var ember, kernel, initrd, disk string
	var reps int
	cmd := &cobra.Command{
		Use:    timeVirtioCmd,
		Hidden: true,
		Args:   cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if disk == "" {
				// The lab's own file system, not the share with the host.
				disk = filepath.Join(os.TempDir(), "ember-bench-disk.img")
			}
			if err := os.WriteFile(disk, bytes.Repeat([]byte{0x5a}, virtioDiskMiB<<20), 0o644); err != nil {
				return err
			}
			defer os.Remove(disk)
			subjects := []subject{
				{name: "ember (virtio-pci)", argv: []string{ember, "run", "--kernel", kernel, "--initrd", initrd,
					"--memory", "512M", "--cpus", "2", "--disk", disk, "--cmdline", benchCmdline}},
				{name: "QEMU -M pc (virtio-blk-pci)", argv: []string{qemuBinary, "-accel", "kvm", "-cpu", "host", "-M", "pc",
					"-m", "512M", "-smp", "2", "-nodefaults", "-no-user-config", "-display", "none", "-serial", "stdio",
					"-drive", "file=" + disk + ",if=none,id=d0,format=raw,cache=writeback", "-device", "virtio-blk-pci,drive=d0",
					"-kernel", kernel, "-initrd", initrd, "-append", benchCmdline}},
			}
			return benchVirtio(cmd.Context(), os.Stdout, subjects, reps)
		},
	}
	f := cmd.Flags()
	f.StringVar(&ember, "ember", "", "ember binary")
	f.StringVar(&kernel, "kernel", "", "kernel")
	f.StringVar(&initrd, "initrd", "", "initramfs")
	f.StringVar(&disk, "disk", "", "where to make the disk image (default in the lab's temporary directory)")
	f.IntVar(&reps, "reps", 3, "boots per subject")
	return cmd
}

// benchLine matches the guest program's results.
var benchLine = regexp.MustCompile(`ember-bench: (seq-read MB/s|rand-read IOPS|seq-write MB/s) ([0-9.]+)`)

// benchMeasures are the guest program's measures, in its order.
var benchMeasures = []string{"seq-read MB/s", "rand-read IOPS", "seq-write MB/s"}

// benchVirtio boots every subject reps times, interleaved, and prints the
// medians of each measure with ember's ratio to QEMU (the last subject).
func benchVirtio(ctx context.Context, w io.Writer, subjects []subject, reps int) error {
	got := make([]map[string][]float64, len(subjects))
	for i := range got {
		got[i] = map[string][]float64{}
	}
	for r := 0; r < reps; r++ {
		for i, s := range subjects {
			m, err := benchBoot(ctx, s.argv)
			if err != nil {
				fmt.Fprintf(w, "boot %d/%d %-28s failed, booting again (lab flake?): %v\n", r+1, reps, s.name, firstLine(err))
				m, err = benchBoot(ctx, s.argv)
			}
			if err != nil {
				return fmt.Errorf("%s: %w", s.name, err)
			}
			fmt.Fprintf(w, "boot %d/%d %-28s %v\n", r+1, reps, s.name, m)
			for k, v := range m {
				got[i][k] = append(got[i][k], v)
			}
		}
	}
	med := func(v []float64) float64 {
		v = slices.Clone(v)
		slices.Sort(v)
		return v[len(v)/2]
	}
	fmt.Fprintf(w, "\nvirtio-blk from inside Debian's kernel, O_DIRECT on /dev/vda (%d MiB raw image, host page cache), 2 vCPUs, inside the lab; median of %d\n", virtioDiskMiB, reps)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprint(tw, "measure")
	for _, s := range subjects {
		fmt.Fprintf(tw, "\t%s", s.name)
	}
	fmt.Fprintln(tw, "\tember ÷ QEMU")
	for _, k := range benchMeasures {
		fmt.Fprint(tw, k)
		for i := range subjects {
			fmt.Fprintf(tw, "\t%.1f", med(got[i][k]))
		}
		fmt.Fprintf(tw, "\t%.2f\n", med(got[0][k])/med(got[len(got)-1][k]))
	}
	return tw.Flush()
}

// benchBoot runs one boot to its end and returns the guest's measures.
func benchBoot(ctx context.Context, argv []string) (map[string]float64, error) {
	con, _, err := runBoot(ctx, argv, 5*time.Minute)
	if err != nil {
		return nil, err
	}
	out := con.String()
	m := map[string]float64{}
	for _, g := range benchLine.FindAllStringSubmatch(out, -1) {
		v, _ := strconv.ParseFloat(g[2], 64)
		m[g[1]] = v
	}
	if len(m) != len(benchMeasures) {
		return nil, fmt.Errorf("the guest reported %v:\n%s", m, tail(strings.TrimSpace(out), 20))
	}
	return m, nil
}
