package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"ember/virtio/blk"
)

// timeVirtioCmd is the hidden command `lab virtio` runs inside the lab.
const timeVirtioCmd = "time-virtio"

// virtioDiskMiB is the size of the benchmark's disk image.
const virtioDiskMiB = 256

func newVirtioCmd(o *options) *cobra.Command {
	return newGuestBenchCmd(o, guestBench{
		use:   "virtio [--kernel vmlinuz] [--reps N]",
		short: "measure virtio-blk from inside a Linux guest under ember and under QEMU, in the lab",
		long: `virtio boots Debian's kernel (--kernel, default $EMBER_KERNEL: a
.../boot/vmlinuz-VERSION whose tree has the virtio modules, as .ci/run
extracts it) with a 256 MiB raw disk, under ember (virtio-blk on virtio-pci,
the disk served in ember's process and, as a second subject, by 'ember
backend blk' in a process of its own) and under QEMU (-accel kvm -M pc,
virtio-blk-pci, the same image and page cache; and, as QEMU's counterpart
of ember's back-end process, vhost-user-blk-pci served by
qemu-storage-daemon), and runs a small guest program (internal/linuxguest/blkbench) that
reads and writes /dev/vda with O_DIRECT: 1 MiB sequential reads and writes
(MB/s, and each pass's median and slowest 1 MiB block in ms) and 4 KiB
random reads with 16 in flight (IOPS). It prints the
medians of --reps boots each, and ember's ratios to the others. After
"--", --only boots the subjects whose name starts with its value, and
--compare BIN boots each of ember's subjects a second time with the ember
binary BIN (a host path: the lab sees the host's files), as "ember-B ...", right after
the first: an A/B comparison of two builds in one lab; --queues N gives the
disk N request queues under both VMMs (default 2, one a vCPU, QEMU's own
default); --limit adds a subject with no VM, the guest's program run on
the lab itself on the image through the page cache: the copies a device
makes and nothing else, the limit of the guest's figures; --format qcow2
serves the disk to every subject as a qcow2 image (qemu-img converts the
raw one, its clusters all allocated, 64 KiB each) instead of raw.`,
		prog:  "blkbench",
		inner: timeVirtioCmd,
	})
}

// benchCmdline is the guest command line of every benchmark boot.
const benchCmdline = "console=ttyS0 ember.end=poweroff ember.bench=1"

func newTimeVirtioCmd() *cobra.Command {
	var f benchFlags
	var disk string
	var queues int
	var limit bool
	var format string
	cmd := &cobra.Command{
		Use:    timeVirtioCmd,
		Hidden: true,
		Args:   cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if queues < 1 || queues > blk.MaxQueues {
				return fmt.Errorf("--queues %d: 1 to %d", queues, blk.MaxQueues)
			}
			if limit && format != blk.FormatRaw {
				return fmt.Errorf("--limit reads a raw image: not with --format %s", format)
			}
			if disk == "" {
				// The lab's own memory, not the share with the host: a
				// tmpfs of its own (labinit mounts /dev/shm), as a host
				// keeps an image in memory. Not the lab's /tmp, an overlay
				// on the lab's memory whose reads no VMM can tell cannot
				// wait (it takes no RWF_NOWAIT, and says it is overlayfs).
				disk = filepath.Join("/dev/shm", "ember-bench-disk.img")
			}
			if err := os.WriteFile(disk, bytes.Repeat([]byte{0x5a}, virtioDiskMiB<<20), 0o644); err != nil {
				return err
			}
			defer os.Remove(disk)
			img, err := diskImage(cmd.Context(), disk, format)
			if err != nil {
				return err
			}
			if img != disk {
				// The lab's memory holds one image, as with a raw one.
				os.Remove(disk)
				defer os.Remove(img)
			}
			emberRun := []string{f.ember, "run", "--kernel", f.kernel, "--initrd", f.initrd,
				"--memory", "512M", "--cpus", "2", "--cmdline", benchCmdline, "--disk"}
			opts := fmt.Sprintf(",queues=%d,format=%s", queues, format)
			subjects := []subject{
				{name: "ember (virtio-pci)", argv: append(emberRun, img+opts)},
				{name: "ember back-end process", argv: backendBoot(f.ember, img, opts, emberRun)},
				{name: "QEMU -M pc (virtio-blk-pci)", argv: qemuGuest("pc", 512, 2,
					"-drive", "file="+img+",if=none,id=d0,format="+format+",cache=writeback",
					"-device", fmt.Sprintf("virtio-blk-pci,drive=d0,num-queues=%d", queues),
					"-kernel", f.kernel, "-initrd", f.initrd, "-append", benchCmdline)},
				{name: "QEMU vhost-user-blk (qemu-storage-daemon)", argv: qemuVhostUserBoot(img, format, queues, f.kernel, f.initrd)},
			}
			if limit {
				if f.prog == "" {
					return fmt.Errorf("--limit runs the guest's program on the lab: --prog names it")
				}
				// The guest's program on the lab itself, through the
				// page cache: the copies a device makes and nothing else.
				subjects = append(subjects, subject{name: limitName + " (blkbench on the image: the limit)", argv: []string{f.prog, disk}})
			}
			t, err := f.table(blkTableOf(format))
			if err != nil {
				return err
			}
			return runBench(cmd.Context(), os.Stdout, f.compared(f.pick(f.wrapped(subjects))), f.reps, t)
		},
	}
	f.add(cmd)
	cmd.Flags().StringVar(&disk, "disk", "", "where to make the disk image (default on the lab's /dev/shm, a tmpfs)")
	// Two, one a vCPU: QEMU's default for virtio-blk-pci (since 5.2), given
	// to both VMMs so that neither guest's block layer has more queues.
	cmd.Flags().IntVar(&queues, "queues", 2, "request queues of the disk, under ember and QEMU alike")
	cmd.Flags().StringVar(&format, "format", blk.FormatRaw, "the disk image's format under every subject: raw or qcow2")
	cmd.Flags().BoolVar(&limit, "limit", false, "also run the guest's program on the lab itself, on the image through the page cache: the limit of the guest's figures")
	return cmd
}

// backendBoot is a command line that serves disk, with its options opts
// (",queues=2"), from `ember backend blk` in a process of its own and
// boots run (which ends in --disk) with the disk from that back-end: the
// same virtio-blk device, out of process.
func backendBoot(ember, disk, opts string, run []string) []string {
	sock := disk + ".sock"
	return withDaemon(sock, []string{ember, "backend", "blk", "--socket", sock, "--disk", disk + opts},
		append(run, "backend="+sock))
}

// qemuVhostUserBoot is a command line that serves disk, in format, from
// qemu-storage-daemon, QEMU's own block back-end in a process of its own
// (a vhost-user-blk export with queues queues on a unix socket; the page
// cache, as the other subjects' disks), and boots QEMU with a
// vhost-user-blk-pci device on it: QEMU's counterpart of ember's back-end
// process, whose guest RAM must be a shared memfd for the daemon to map,
// as ember's is with a back-end.
func qemuVhostUserBoot(disk, format string, queues int, kernel, initrd string) []string {
	sock := disk + ".vhost-user.sock"
	daemon := []string{qemuStorageDaemon,
		"--blockdev", "driver=file,node-name=file0,cache.direct=off,filename=" + disk,
		"--blockdev", "driver=" + format + ",node-name=disk0,file=file0",
		"--export", fmt.Sprintf("type=vhost-user-blk,id=export0,node-name=disk0,writable=on,num-queues=%d,addr.type=unix,addr.path=%s", queues, sock)}
	vm := qemuGuest("pc,memory-backend=ram0", 512, 2,
		"-object", "memory-backend-memfd,id=ram0,size=512M,share=on",
		"-chardev", "socket,id=vhost0,path="+sock,
		"-device", fmt.Sprintf("vhost-user-blk-pci,chardev=vhost0,num-queues=%d", queues),
		"-kernel", kernel, "-initrd", initrd, "-append", benchCmdline)
	return withDaemon(sock, daemon, vm)
}

// qemuStorageDaemon is QEMU's block back-end (Debian's qemu-system-common,
// which qemu-system-x86 brings).
const qemuStorageDaemon = "qemu-storage-daemon"

// withDaemon is a command line that starts daemon, waits (up to 5 s) for
// the unix socket sock it listens on, runs run, then stops the daemon and
// exits with run's status: a VMM with a device served by another process.
// A daemon that exits or never makes its socket fails the command line
// (status 1, with a line on standard error) before run starts. The
// daemon's standard output goes to standard error, away from the guest's
// console on standard output.
func withDaemon(sock string, daemon, run []string) []string {
	const script = `s=$1; n=$2; shift 2; d=("${@:1:n}"); shift "$n"; rm -f "$s"
"${d[@]}" >&2 & b=$!
i=0; while [ ! -S "$s" ] && kill -0 $b 2>/dev/null && [ $i -lt 100 ]; do sleep 0.05; i=$((i+1)); done
if [ ! -S "$s" ]; then echo "lab: ${d[0]} made no socket $s" >&2; kill $b 2>/dev/null; wait $b; exit 1; fi
"$@"; rc=$?; kill $b; wait $b; rm -f "$s"; exit $rc`
	argv := []string{"/bin/bash", "-c", script, "bash", sock, strconv.Itoa(len(daemon))}
	return append(append(argv, daemon...), run...)
}

// benchLine matches the guest program's results.
var benchLine = regexp.MustCompile(`ember-bench: (seq-read MB/s|rand-read IOPS|seq-write MB/s|seq-(?:read|write) (?:median|slowest) ms) ([0-9.]+)`)

// benchMeasures are the guest program's measures, in its order: the three
// rates, then how long the sequential passes' 1 MiB blocks took (a cost:
// a ratio above 1 is ember's slower).
var benchMeasures = []string{"seq-read MB/s", "rand-read IOPS", "seq-write MB/s",
	"seq-read median ms", "seq-read slowest ms", "seq-write median ms", "seq-write slowest ms"}

// blkTableOf is the virtio-blk benchmark's table for a disk image in
// format.
func blkTableOf(format string) benchTable {
	return benchTable{
		title: fmt.Sprintf("virtio-blk from inside Debian's kernel, O_DIRECT on /dev/vda (%d MiB %s image, host page cache), 2 vCPUs, inside the lab",
			virtioDiskMiB, format),
		measures: benchMeasures,
		boot:     benchBoot,
	}
}

// diskImage returns the image every subject serves, in format, made from
// the raw image at raw: raw itself, or a qcow2 image beside it that
// qemu-img converts it to (every cluster allocated, as a converted cloud
// image's data is).
func diskImage(ctx context.Context, raw, format string) (string, error) {
	switch format {
	case blk.FormatRaw:
		return raw, nil
	case blk.FormatQcow2:
		img := strings.TrimSuffix(raw, ".img") + ".qcow2"
		if out, err := exec.CommandContext(ctx, "qemu-img", "convert", "-f", "raw", "-O", "qcow2", raw, img).CombinedOutput(); err != nil {
			return "", fmt.Errorf("making the qcow2 image (qemu-img, from Debian's qemu-utils): %v: %s", err, out)
		}
		return img, nil
	}
	return "", fmt.Errorf("--format %q: raw or qcow2", format)
}

// benchBoot runs one boot to its end and returns the guest's measures.
func benchBoot(ctx context.Context, argv []string) (map[string]float64, bootOutput, error) {
	out, err := bootConsole(ctx, argv)
	if err != nil {
		return nil, out, err
	}
	m, err := parseBench(out.console)
	return m, out, err
}

// parseBench reads the guest program's measures from its console: every
// one of benchMeasures, or an error saying which are missing.
func parseBench(console string) (map[string]float64, error) {
	m := map[string]float64{}
	for _, g := range benchLine.FindAllStringSubmatch(console, -1) {
		v, _ := strconv.ParseFloat(g[2], 64)
		m[g[1]] = v
	}
	if len(m) != len(benchMeasures) {
		return nil, missing(m, console)
	}
	return m, nil
}
