package main

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// mountEarly gives the initramfs /dev, /proc and /sys.
func mountEarly() error {
	for _, m := range []struct{ src, dst, fstype string }{
		{"devtmpfs", "/dev", "devtmpfs"},
		{"proc", "/proc", "proc"},
		{"sysfs", "/sys", "sysfs"},
	} {
		if err := mount(m.src, m.dst, m.fstype, 0, ""); err != nil {
			return err
		}
	}
	return nil
}

// mountHostRoot assembles newRoot: the host's root filesystem (virtio-9p tag
// "hostroot", read-only) under an overlay whose writable layer is lab memory,
// so tests can write where they would on the host (the go build cache, /tmp)
// without touching the host, and see the host's files where they are (/tmp
// included). Then the usual kernel filesystems inside it.
func mountHostRoot() error {
	if err := mount("hostroot", "/lower", "9p", unix.MS_RDONLY,
		"trans=virtio,version=9p2000.L,msize=512000,cache=loose"); err != nil {
		return fmt.Errorf("mounting the host's root over virtio-9p: %w", err)
	}
	if err := mount("tmpfs", "/upper", "tmpfs", 0, "mode=0755"); err != nil {
		return err
	}
	for _, d := range []string{"/upper/data", "/upper/work"} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
	}
	if err := mount("overlay", newRoot, "overlay", 0,
		"lowerdir=/lower,upperdir=/upper/data,workdir=/upper/work"); err != nil {
		return fmt.Errorf("overlay on the host root: %w", err)
	}
	for _, m := range []struct{ src, dst, fstype, data string }{
		{"proc", "/proc", "proc", ""},
		{"sysfs", "/sys", "sysfs", ""},
		{"devtmpfs", "/dev", "devtmpfs", ""},
		{"devpts", "/dev/pts", "devpts", "ptmxmode=0666"},
		{"tmpfs", "/dev/shm", "tmpfs", ""},
		{"tmpfs", "/run", "tmpfs", "mode=0755"},
	} {
		if err := mount(m.src, newRoot+m.dst, m.fstype, 0, m.data); err != nil {
			return err
		}
	}
	return nil
}

// mount creates dst if needed and mounts src there.
func mount(src, dst, fstype string, flags uintptr, data string) error {
	if err := os.MkdirAll(dst, 0o755); err != nil {
		return fmt.Errorf("mkdir %s: %w", dst, err)
	}
	if err := unix.Mount(src, dst, fstype, flags, data); err != nil {
		return fmt.Errorf("mount %s on %s (%s): %w", src, dst, fstype, err)
	}
	return nil
}

// openRaw opens a serial port with no line discipline: bytes pass unchanged
// (no \n to \r\n), which the host relies on to split lines.
func openRaw(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		return nil, err
	}
	t, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	if err != nil {
		f.Close()
		return nil, err
	}
	t.Iflag &^= unix.IGNBRK | unix.BRKINT | unix.PARMRK | unix.ISTRIP | unix.INLCR | unix.IGNCR | unix.ICRNL | unix.IXON
	t.Oflag &^= unix.OPOST
	t.Lflag &^= unix.ECHO | unix.ECHONL | unix.ICANON | unix.ISIG | unix.IEXTEN
	t.Cflag &^= unix.CSIZE | unix.PARENB
	t.Cflag |= unix.CS8
	t.Cflag = t.Cflag&^unix.CBAUD | unix.B115200
	if err := unix.IoctlSetTermios(int(f.Fd()), unix.TCSETS, t); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}
