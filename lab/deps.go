package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
)

// cacheDir is where the lab keeps what it downloads and builds between runs:
// the kernel package's files, and one directory per run.
func cacheDir() (string, error) {
	base, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("lab: no cache directory: %w", err)
	}
	dir := filepath.Join(base, "ember", "lab")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("lab: %w", err)
	}
	return dir, nil
}

// qemuBinary is the emulator the lab runs.
const qemuBinary = "qemu-system-x86_64"

// ensureQEMU returns the path of qemu-system-x86_64, installing Debian's
// qemu-system-x86 first if it is missing.
func ensureQEMU(p *progress) (string, error) {
	if path, err := exec.LookPath(qemuBinary); err == nil {
		return path, nil
	}
	p.say("installing qemu-system-x86 (apt-get)")
	if err := aptInstall("qemu-system-x86"); err != nil {
		return "", fmt.Errorf("lab needs %s from Debian's qemu-system-x86 package: %w", qemuBinary, err)
	}
	return exec.LookPath(qemuBinary)
}

// aptInstall installs Debian packages, refreshing the package lists once if
// the first attempt fails (a new machine has none).
func aptInstall(pkgs ...string) error {
	args := append([]string{"install", "-y", "-q", "--no-install-recommends"}, pkgs...)
	if _, err := apt("apt-get", args...); err == nil {
		return nil
	}
	if _, err := apt("apt-get", "update", "-q"); err != nil {
		return err
	}
	_, err := apt("apt-get", args...)
	return err
}

// apt runs an apt tool non-interactively and returns its output.
func apt(tool string, args ...string) ([]byte, error) {
	cmd := exec.Command(tool, args...)
	cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return out.Bytes(), fmt.Errorf("%s %s: %w\n%s", tool, strings.Join(args, " "), err, tail(out.String(), 10))
	}
	return out.Bytes(), nil
}

var dependsRE = regexp.MustCompile(`Depends: (linux-image-[0-9][^\s]*)`)

// kernelPackage names the versioned package a Debian meta-package (such as
// linux-image-amd64) depends on, e.g. linux-image-6.1.0-57-amd64.
func kernelPackage(meta string) (string, error) {
	find := func() string {
		out, err := apt("apt-cache", "depends", meta)
		if err != nil {
			return ""
		}
		if m := dependsRE.FindSubmatch(out); m != nil {
			return string(m[1])
		}
		return ""
	}
	if name := find(); name != "" {
		return name, nil
	}
	if _, err := apt("apt-get", "update", "-q"); err != nil {
		return "", err
	}
	if name := find(); name != "" {
		return name, nil
	}
	return "", fmt.Errorf("apt-cache knows no kernel package behind %s", meta)
}

// downloadDeb fetches a package's .deb into dir (apt-get download) and
// returns its path.
func downloadDeb(pkg, dir string) (string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	glob := filepath.Join(dir, pkg+"_*.deb")
	if m, _ := filepath.Glob(glob); len(m) > 0 {
		return m[0], nil
	}
	cmd := exec.Command("apt-get", "download", pkg)
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("apt-get download %s: %w\n%s", pkg, err, tail(string(out), 10))
	}
	m, _ := filepath.Glob(glob)
	if len(m) == 0 {
		return "", fmt.Errorf("apt-get download %s left no %s", pkg, glob)
	}
	return m[0], nil
}

// tail returns the last n lines of s.
func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
