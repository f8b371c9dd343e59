package bench

import (
	"bytes"
	"context"
	_ "embed"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

//go:embed csrc/kvm_exit.c
var cSource []byte

// BuildC compiles the raw-ioctl C baseline (kvm_exit.c) with gcc into dir and
// returns the program's path.
func BuildC(ctx context.Context, dir string) (string, error) {
	src := filepath.Join(dir, "kvm_exit.c")
	if err := os.WriteFile(src, cSource, 0o644); err != nil {
		return "", fmt.Errorf("bench: C baseline: %w", err)
	}
	bin := filepath.Join(dir, "kvm_exit")
	out, err := exec.CommandContext(ctx, "gcc", "-O2", "-Wall", "-Werror", "-o", bin, src).CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("bench: building the C baseline with gcc: %w\n%s", err, out)
	}
	return bin, nil
}

// RunC runs the C baseline on the image file and returns the time it spent
// from its first KVM_RUN to the exit-port write, and the exits it counted.
func RunC(ctx context.Context, bin, image string) (time.Duration, int, error) {
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, bin, image)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return 0, 0, fmt.Errorf("bench: C baseline on %s: %w\n%s", filepath.Base(image), err, stderr.Bytes())
	}
	var exits, ns uint64
	var status int
	if _, err := fmt.Sscanf(stdout.String(), "exits=%d ns=%d status=%d", &exits, &ns, &status); err != nil {
		return 0, 0, fmt.Errorf("bench: C baseline printed %q: %w", stdout.String(), err)
	}
	if status != 0 {
		return 0, 0, fmt.Errorf("bench: C baseline: guest exit status %d", status)
	}
	return time.Duration(ns), int(exits), nil
}

// QEMUBinary is the QEMU the harness compares against (Debian's qemu-system-x86).
const QEMUBinary = "qemu-system-x86_64"

// QEMUArgs are the options that make QEMU's microvm as small as it goes and
// run a bench image: the image as -bios, isa-debug-exit on ember's exit port.
func QEMUArgs(image string, memMiB int, extra ...string) []string {
	args := []string{
		"-enable-kvm",
		"-M", "microvm,x-option-roms=off,pit=off,pic=off,rtc=off,isa-serial=off,auto-kernel-cmdline=off",
		"-nodefaults", "-no-user-config", "-display", "none", "-no-reboot",
		"-m", fmt.Sprintf("%dM", memMiB),
		"-bios", image,
		"-device", "isa-debug-exit,iobase=0xf4,iosize=4",
	}
	return append(args, extra...)
}

// EnsureQEMU installs qemu-system-x86 with apt-get if QEMU is missing, and
// returns its version line. Failing to get QEMU is an error: it is a baseline.
func EnsureQEMU(ctx context.Context, log io.Writer) (string, error) {
	if _, err := exec.LookPath(QEMUBinary); err != nil {
		fmt.Fprintf(log, "bench: %s missing; installing qemu-system-x86 with apt-get\n", QEMUBinary)
		for _, args := range [][]string{{"update", "-q"}, {"install", "-y", "-q", "--no-install-recommends", "qemu-system-x86"}} {
			cmd := exec.CommandContext(ctx, "apt-get", args...)
			cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
			cmd.Stdout, cmd.Stderr = log, log
			if err := cmd.Run(); err != nil {
				return "", fmt.Errorf("bench: installing QEMU (apt-get %s): %w", args[0], err)
			}
		}
	}
	out, err := exec.CommandContext(ctx, QEMUBinary, "--version").Output()
	if err != nil {
		return "", fmt.Errorf("bench: %s --version: %w", QEMUBinary, err)
	}
	line, _, _ := strings.Cut(string(out), "\n")
	return strings.TrimSpace(line), nil
}

// RunQEMU runs QEMU on the image until the guest writes 0 to the exit port
// (isa-debug-exit: process status 1) and returns the process's wall time.
func RunQEMU(ctx context.Context, image string) (time.Duration, error) {
	var stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, QEMUBinary, QEMUArgs(image, 128)...)
	cmd.Stderr = &stderr
	start := time.Now()
	err := cmd.Run()
	d := time.Since(start)
	if err := qemuGuestExit(err); err != nil {
		return 0, fmt.Errorf("bench: QEMU on %s: %w\n%s", filepath.Base(image), err, stderr.Bytes())
	}
	return d, nil
}

// qemuGuestExit checks that QEMU ended because the guest wrote 0 to
// isa-debug-exit, which makes QEMU exit with status (0<<1)|1.
func qemuGuestExit(err error) error {
	var ee *exec.ExitError
	if errors.As(err, &ee) && ee.ExitCode() == 1 {
		return nil
	}
	if err == nil {
		return errors.New("exited 0, not through isa-debug-exit")
	}
	return err
}
