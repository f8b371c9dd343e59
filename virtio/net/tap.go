package net

import (
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// tunPath is the TUN/TAP clone device.
const tunPath = "/dev/net/tun"

// TAP is a Backend on a TAP interface: a FileBackend on /dev/net/tun
// attached with IFF_TAP|IFF_NO_PI|IFF_VNET_HDR, whose packets carry the
// 12-byte virtio-net header (TUNSETVNETHDRSZ), little-endian
// (TUNSETVNETLE), and whose receive offloads follow the guest's
// (TUNSETOFFLOAD).
type TAP struct {
	*FileBackend
	name string
}

// OpenTAP attaches to the TAP interface name, which the kernel creates if
// it does not exist (CAP_NET_ADMIN, unless it is a persistent TAP the
// caller owns). A name with "%d" is numbered by the kernel; "" means
// "tap%d". No receive offload is set until the device is activated. The
// interface is left as it is: Up brings it up.
func OpenTAP(name string) (*TAP, error) {
	return openTAP(name, 0)
}

// OpenTAPQueues attaches n queues to the multi-queue TAP interface name
// (IFF_MULTI_QUEUE), which the kernel creates if it does not exist, as
// OpenTAP does: one TAP a queue, each its own descriptor, among which the
// kernel spreads the packets it gives by flow. A TAP that exists must have
// been made multi-queue (ip tuntap add dev NAME mode tap multi_queue).
func OpenTAPQueues(name string, n int) ([]*TAP, error) {
	if n < 1 || n > maxTAPQueues {
		return nil, fmt.Errorf("virtio-net: %d TAP queues: want 1 to %d", n, maxTAPQueues)
	}
	var taps []*TAP
	for range n {
		t, err := openTAP(name, unix.IFF_MULTI_QUEUE)
		if err != nil {
			for _, t := range taps {
				t.Close()
			}
			if len(taps) == 0 && errors.Is(err, unix.EINVAL) {
				err = fmt.Errorf("%w (a TAP that exists must have been made with multi_queue for more than one queue)", err)
			}
			return nil, err
		}
		taps = append(taps, t)
		name = t.name // the kernel's choice, for "%d"
	}
	return taps, nil
}

// maxTAPQueues is the most queues the kernel lets a TAP have
// (MAX_TAP_QUEUES).
const maxTAPQueues = 256

// openTAP is OpenTAP with more TUNSETIFF flags.
func openTAP(name string, flags uint16) (*TAP, error) {
	fd, err := unix.Open(tunPath, unix.O_RDWR|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, openError(err)
	}
	name, err = attach(fd, name, flags)
	if err != nil {
		unix.Close(fd)
		return nil, err
	}
	f := os.NewFile(uintptr(fd), tunPath)
	b, err := NewFileBackend(f)
	if err != nil {
		f.Close()
		return nil, err
	}
	return &TAP{FileBackend: b, name: name}, nil
}

// openError explains why /dev/net/tun did not open.
func openError(err error) error {
	switch {
	case errors.Is(err, unix.ENOENT), errors.Is(err, unix.ENODEV), errors.Is(err, unix.ENXIO):
		return fmt.Errorf("virtio-net: %s is missing: load the tun module (modprobe tun) or create the node (mknod %s c 10 200): %w", tunPath, tunPath, err)
	case errors.Is(err, unix.EACCES), errors.Is(err, unix.EPERM):
		return fmt.Errorf("virtio-net: %s cannot be opened by this user (it is usually mode 0666; a container may deny it): %w", tunPath, err)
	}
	return fmt.Errorf("virtio-net: opening %s: %w", tunPath, err)
}

// attach makes fd the TAP interface name with the virtio-net header, and
// more flags (IFF_MULTI_QUEUE), and returns the interface's name as the
// kernel chose it.
func attach(fd int, name string, flags uint16) (string, error) {
	ifr, err := unix.NewIfreq(name)
	if err != nil {
		return "", fmt.Errorf("virtio-net: TAP name %q: %w", name, err)
	}
	ifr.SetUint16(unix.IFF_TAP | unix.IFF_NO_PI | unix.IFF_VNET_HDR | flags)
	if err := unix.IoctlIfreq(fd, unix.TUNSETIFF, ifr); err != nil {
		return "", attachError(name, err)
	}
	name = ifr.Name()
	if err := unix.IoctlSetPointerInt(fd, unix.TUNSETVNETHDRSZ, HeaderSize); err != nil {
		return "", fmt.Errorf("virtio-net: TAP %s: TUNSETVNETHDRSZ %d: %w", name, HeaderSize, err)
	}
	if err := unix.IoctlSetPointerInt(fd, unix.TUNSETVNETLE, 1); err != nil {
		return "", fmt.Errorf("virtio-net: TAP %s: TUNSETVNETLE: %w", name, err)
	}
	if err := unix.IoctlSetInt(fd, unix.TUNSETOFFLOAD, 0); err != nil {
		return "", fmt.Errorf("virtio-net: TAP %s: TUNSETOFFLOAD 0: %w", name, err)
	}
	return name, nil
}

// attachError explains why TUNSETIFF failed.
func attachError(name string, err error) error {
	switch {
	case errors.Is(err, unix.EPERM), errors.Is(err, unix.EACCES):
		return fmt.Errorf("virtio-net: creating or attaching TAP %q needs CAP_NET_ADMIN (run as root, or have root create it for this user first: ip tuntap add dev NAME mode tap user $USER && ip link set NAME up): %w", name, err)
	case errors.Is(err, unix.EBUSY):
		return fmt.Errorf("virtio-net: TAP %q is in use by another process: %w", name, err)
	case errors.Is(err, unix.EINVAL):
		return fmt.Errorf("virtio-net: TAP %q: an interface of that name that is not a TAP, or one without a virtio-net header: %w", name, err)
	}
	return fmt.Errorf("virtio-net: TAP %q: TUNSETIFF: %w", name, err)
}

// Name returns the interface's name.
func (t *TAP) Name() string { return t.name }

// SetOffload sets the receive offloads the guest takes (TUNSETOFFLOAD):
// without TunCsum the kernel checksums every packet before the TAP gives
// it, without TunTSO4 and TunTSO6 it segments every GSO packet.
func (t *TAP) SetOffload(flags int) error {
	err := t.control(func(fd int) error { return unix.IoctlSetInt(fd, unix.TUNSETOFFLOAD, flags) })
	if err != nil {
		return fmt.Errorf("virtio-net: TAP %s: TUNSETOFFLOAD %#x: %w", t.name, flags, err)
	}
	return nil
}

// Up brings the interface up (IFF_UP), as `ip link set NAME up` does:
// a TAP that is down refuses the guest's packets (EIO) and gives it none.
// An interface already up is left alone; bringing one up needs
// CAP_NET_ADMIN.
func (t *TAP) Up() error {
	sock, err := unix.Socket(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("virtio-net: TAP %s: a socket for interface ioctls: %w", t.name, err)
	}
	defer unix.Close(sock)
	ifr, err := unix.NewIfreq(t.name)
	if err != nil {
		return fmt.Errorf("virtio-net: TAP %s: %w", t.name, err)
	}
	if err := unix.IoctlIfreq(sock, unix.SIOCGIFFLAGS, ifr); err != nil {
		return fmt.Errorf("virtio-net: TAP %s: SIOCGIFFLAGS: %w", t.name, err)
	}
	flags := ifr.Uint16()
	if flags&unix.IFF_UP != 0 {
		return nil
	}
	ifr.SetUint16(flags | unix.IFF_UP)
	if err := unix.IoctlIfreq(sock, unix.SIOCSIFFLAGS, ifr); err != nil {
		if errors.Is(err, unix.EPERM) {
			return fmt.Errorf("virtio-net: bringing TAP %s up needs CAP_NET_ADMIN (or bring it up first: ip link set %s up): %w", t.name, t.name, err)
		}
		return fmt.Errorf("virtio-net: TAP %s: SIOCSIFFLAGS: %w", t.name, err)
	}
	return nil
}

// SetQueueEnabled attaches the queue of a multi-queue TAP (OpenTAPQueues)
// to its interface, or detaches it (TUNSETQUEUE): the kernel gives a
// detached queue no packets, and spreads them over the attached ones
// only. Every queue starts attached; a device detaches those of the queue
// pairs its driver does not use.
func (t *TAP) SetQueueEnabled(on bool) error {
	ifr, err := unix.NewIfreq("")
	if err != nil {
		return err
	}
	flag, what := uint16(unix.IFF_DETACH_QUEUE), "detaching"
	if on {
		flag, what = unix.IFF_ATTACH_QUEUE, "attaching"
	}
	ifr.SetUint16(flag)
	err = t.control(func(fd int) error { return unix.IoctlIfreq(fd, unix.TUNSETQUEUE, ifr) })
	if err != nil {
		return fmt.Errorf("virtio-net: TAP %s: %s a queue (TUNSETQUEUE): %w", t.name, what, err)
	}
	return nil
}
