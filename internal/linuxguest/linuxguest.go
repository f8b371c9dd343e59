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

// The files of the ext4 check (ember.ext4=1): the init mounts /dev/vda,
// prints HostFile and writes GuestFileText into GuestFile.
const (
	HostFile      = "from-the-host.txt"
	GuestFile     = "from-the-guest.txt"
	GuestFileText = "written by the guest on ext4 over virtio-blk"
)

// The addresses of the network check (ember.net=1): the init gives eth0
// GuestIP/24 and pings HostIP, the host's end of the TAP.
const (
	GuestIP = "10.0.2.15"
	HostIP  = "10.0.2.1"
)

// S3Resumed is what the init prints when the command line has ember.s3=1
// and Linux came back from suspend to RAM (ACPI S3), woken by the RTC alarm,
// followed by the CPUs online again, " (cpus online 0-1)".
const S3Resumed = "ember-init: resumed from S3"

// DiskMarker is what the init writes to sector 1 of /dev/vda when the
// command line has ember.diskwrite=1.
const DiskMarker = "written by the guest through virtio-blk"

// Answer is the line a driver types at MarkPrompt, and Echo what the init
// then prints.
const (
	Answer = "hello from ember's console"
	Echo   = "ember-init: read [" + Answer + "]"
)

// BalloonKiB is how much the balloon check (ember.balloon=1) waits to see
// leave MemTotal: a 16 MiB balloon target.
const BalloonKiB = "16384"

// initScript is /init.
const initScript = `#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
echo "` + MarkStarted + `"
end=poweroff
for a in $(cat /proc/cmdline); do
	case "$a" in ember.end=*) end="${a#ember.end=}";; esac
done
echo "ember-init: initrd sha256 $(sha256sum /data/blob | cut -d' ' -f1)"
echo "ember-init: cmdline $(cat /proc/cmdline)"
echo "ember-init: cpus $(grep -c ^processor /proc/cpuinfo)"
memtotal=$(awk '/^MemTotal/ {print $2}' /proc/meminfo)
echo "ember-init: memtotal $memtotal kB"
for m in /lib/modules/*.ko; do [ -e "$m" ] && insmod "$m"; done
case " $(cat /proc/cmdline) " in *" ember.balloon=1 "*)
	# The balloon inflates to its target once the driver is up; without
	# deflate-on-oom its pages leave MemTotal. Wait for ` + BalloonKiB + ` kB of it.
	n=0
	while [ $n -lt 120 ] && [ $((memtotal - $(awk '/^MemTotal/ {print $2}' /proc/meminfo))) -lt ` + BalloonKiB + ` ]; do sleep 0.5; n=$((n+1)); done
	echo "ember-init: balloon memtotal $memtotal -> $(awk '/^MemTotal/ {print $2}' /proc/meminfo) kB";;
esac
case " $(cat /proc/cmdline) " in *" ember.hvc=1 "*)
	if [ -c /dev/hvc0 ]; then
		exec </dev/hvc0 >/dev/hvc0 2>&1
		echo "ember-init: console hvc0"
	fi;;
esac
if [ -d /sys/bus/virtio/devices ]; then
	echo "ember-init: virtio devices $(cat /sys/bus/virtio/devices/*/device 2>/dev/null | tr '\n' ' ')"
	# The driver claims a BAR in I/O space only for the notification
	# capability it chose: a device notified through ports counts here.
	echo "ember-init: virtio functions notified through ports $(grep -c virtio-pci-modern /proc/ioports)"
fi
[ -c /dev/hwrng ] && echo "ember-init: hwrng $(head -c 4096 /dev/hwrng | wc -c) bytes"
if [ -b /dev/vda ]; then
	echo "ember-init: vda sha256 $(head -c 65536 /dev/vda | sha256sum | cut -d' ' -f1)"
	echo "ember-init: vda queues $(ls /sys/block/vda/mq 2>/dev/null | wc -l)"
	case " $(cat /proc/cmdline) " in *" ember.diskwrite=1 "*)
		echo "` + DiskMarker + `" | dd of=/dev/vda bs=512 seek=1 count=1 conv=notrunc,sync 2>/dev/null && sync && echo "ember-init: vda written";;
	esac
	case " $(cat /proc/cmdline) " in *" ember.ext4=1 "*)
		mkdir -p /mnt && mount -t ext4 /dev/vda /mnt &&
		echo "ember-init: ext4 read [$(cat /mnt/` + HostFile + `)]" &&
		echo "` + GuestFileText + `" > /mnt/` + GuestFile + ` && sync && umount /mnt && echo "ember-init: ext4 written";;
	esac
fi
case " $(cat /proc/cmdline) " in *" ember.net=1 "*)
	ip link set lo up
	if ip addr add ` + GuestIP + `/24 dev eth0 && ip link set eth0 up && ping -c 3 -W 5 ` + HostIP + ` >/dev/null; then
		echo "ember-init: ping ` + HostIP + ` ok"
	else
		echo "ember-init: ping ` + HostIP + ` failed"
	fi
	echo "ember-init: eth0 queues $(ls /sys/class/net/eth0/queues | tr '\n' ' ')"
	# A ping from each CPU leaves by that CPU's transmit queue: with a
	# queue pair a CPU, each pair carries one.
	for c in $(seq 0 $(($(nproc) - 1))); do
		taskset -c $c ping -c 1 -W 5 ` + HostIP + ` >/dev/null && echo "ember-init: ping from cpu $c ok"
	done;;
esac
for a in $(cat /proc/cmdline); do
	case "$a" in ember.netbench=*) [ -x /bin/netbench ] && /bin/netbench "${a#ember.netbench=}";; esac
done
case " $(cat /proc/cmdline) " in *" ember.bench=1 "*)
	[ -x /bin/blkbench ] && /bin/blkbench;;
esac
case " $(cat /proc/cmdline) " in *" ember.vsock=1 "*)
	[ -x /bin/vsockcheck ] && /bin/vsockcheck;;
esac
if [ -b /dev/vdb ]; then
	if echo x | dd of=/dev/vdb bs=512 count=1 conv=notrunc,sync 2>/dev/null; then
		echo "ember-init: vdb writable"
	else
		echo "ember-init: vdb write refused"
	fi
fi
case " $(cat /proc/cmdline) " in *" ember.s3=1 "*)
	# Suspend to RAM with the RTC alarm armed to wake the machine 2 s later.
	echo "ember-init: sleep states [$(cat /sys/power/state 2>/dev/null)] mem_sleep [$(cat /sys/power/mem_sleep 2>/dev/null)]"
	w=/sys/class/rtc/rtc0/wakealarm
	if [ -e $w ] && echo 0 > $w && echo +2 > $w && echo mem > /sys/power/state; then
		echo "` + S3Resumed + ` (cpus online $(cat /sys/devices/system/cpu/online))"
	else
		echo "ember-init: S3 failed"
	fi;;
esac
echo "` + MarkPrompt + `"
read -r line
echo "ember-init: read [$line]"
echo "ember-init: $end"
$end -f
`

// Initramfs is a built archive and the checksum its init will report.
type Initramfs struct {
	Data    []byte
	SHA256  string // hex sha256 of /data/blob
	Modules int    // kernel modules the init loads
}

// Module is a kernel module the init loads, in the order given, before it
// reports the virtio devices Linux found.
type Module struct {
	Name string // file name, e.g. virtio_pci.ko
	Data []byte
}

// File is an extra file of the initramfs: a program a check needs
// (VsockCheck's), at Path (relative, e.g. "bin/vsockcheck").
type File struct {
	Path string
	Data []byte
}

// Build makes the initramfs around busybox (the bytes of a static binary)
// and 256 KiB of random data whose checksum the init reports, with modules
// the init loads and extra files.
func Build(busybox []byte, modules []Module, extra ...File) (Initramfs, error) {
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
	if err := addModules(w, modules); err != nil {
		return Initramfs{}, err
	}
	for _, f := range extra {
		if err := w.File(f.Path, f.Data, 0o755); err != nil {
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
	return Initramfs{Data: buf.Bytes(), SHA256: hex.EncodeToString(sum[:]), Modules: len(modules)}, nil
}

// BuildFromSystem is Build with the machine's busybox-static and, if the
// directory tree of kernel (a .../boot/vmlinuz-VERSION) has them in
// lib/modules/VERSION, the virtio modules (VirtioModules).
func BuildFromSystem(kernel string, extra ...File) (Initramfs, error) {
	bb, err := os.ReadFile(BusyboxPath)
	if err != nil {
		return Initramfs{}, fmt.Errorf("%w (apt-get install busybox-static)", err)
	}
	mods, err := VirtioModules(kernel)
	if err != nil {
		return Initramfs{}, err
	}
	ird, err := Build(bb, mods, extra...)
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
