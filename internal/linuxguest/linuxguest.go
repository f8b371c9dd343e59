// Package linuxguest builds the userspace the Linux boot checks run: an
// initramfs of Debian's busybox-static whose /init reports, one
// "ember-init:" line each, what Linux found (the initrd's checksum, the
// command line, the CPUs, the memory), echoes a line typed on the console and
// then powers off or reboots, as the command line's ember.end= says. The
// boot tests of cmd/ember and `go run ./lab linux` share it.
package linuxguest

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"debug/elf"
	"encoding/hex"
	"errors"
	"fmt"
	"os"

	"ember/internal/cpio"
)

// BusyboxPath is where Debian's busybox-static installs busybox.
const BusyboxPath = "/bin/busybox"

// Lines the init prints, in order; the test and the lab wait for them.
const (
	MarkStarted = "ember-init: started"
	MarkPrompt  = "ember-init: type a line"
	MarkBanner  = "Linux version" // the kernel's, not the init's
)

// Answer is the line a driver types at MarkPrompt, and Echo what the init
// then prints.
const (
	Answer = "hello from ember's console"
	Echo   = "ember-init: read [" + Answer + "]"
)

// initScript is /init.
const initScript = `#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
echo "` + MarkStarted + `"
end=poweroff
for a in $(cat /proc/cmdline); do
	case "$a" in ember.end=*) end="${a#ember.end=}";; esac
done
echo "ember-init: initrd sha256 $(sha256sum /data/blob | cut -d' ' -f1)"
echo "ember-init: cmdline $(cat /proc/cmdline)"
echo "ember-init: cpus $(grep -c ^processor /proc/cpuinfo)"
echo "ember-init: memtotal $(awk '/^MemTotal/ {print $2}' /proc/meminfo) kB"
echo "` + MarkPrompt + `"
read -r line
echo "ember-init: read [$line]"
echo "ember-init: $end"
$end -f
`

// Initramfs is a built archive and the checksum its init will report.
type Initramfs struct {
	Data   []byte
	SHA256 string // hex sha256 of /data/blob
}

// Build makes the initramfs around busybox (the bytes of a static binary)
// and 256 KiB of random data whose checksum the init reports.
func Build(busybox []byte) (Initramfs, error) {
	if err := CheckStatic(busybox); err != nil {
		return Initramfs{}, err
	}
	blob := make([]byte, 256<<10)
	rand.Read(blob)
	var buf bytes.Buffer
	w := cpio.NewWriter(&buf)
	for _, d := range []string{"dev", "proc", "sys", "tmp", "bin", "sbin"} {
		if err := w.Dir(d, 0o755); err != nil {
			return Initramfs{}, err
		}
	}
	for _, err := range []error{
		w.File("bin/busybox", busybox, 0o755),
		w.Symlink("bin/sh", "busybox"),
		w.File("init", []byte(initScript), 0o755),
		w.File("data/blob", blob, 0o644),
		w.Close(),
	} {
		if err != nil {
			return Initramfs{}, err
		}
	}
	sum := sha256.Sum256(blob)
	return Initramfs{Data: buf.Bytes(), SHA256: hex.EncodeToString(sum[:])}, nil
}

// BuildFromSystem is Build with the machine's busybox-static.
func BuildFromSystem() (Initramfs, error) {
	bb, err := os.ReadFile(BusyboxPath)
	if err != nil {
		return Initramfs{}, fmt.Errorf("%w (apt-get install busybox-static)", err)
	}
	ird, err := Build(bb)
	if err != nil {
		return Initramfs{}, fmt.Errorf("%s: %w (apt-get install busybox-static)", BusyboxPath, err)
	}
	return ird, nil
}

// CheckStatic refuses a dynamically linked binary: the initramfs has no C
// library.
func CheckStatic(b []byte) error {
	f, err := elf.NewFile(bytes.NewReader(b))
	if err != nil {
		return err
	}
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return errors.New("not statically linked")
		}
	}
	return nil
}
