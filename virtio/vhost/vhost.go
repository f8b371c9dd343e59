// Package vhost is the Linux kernel's in-kernel virtio data path as a VMM
// drives it: /dev/vhost-net's ioctls (<linux/vhost.h>). A vhost device is
// told where the guest's RAM is in this process (SetMemTable), where each
// virtqueue's rings are (SetVringNum, SetVringAddr, SetVringBase), which
// eventfd the guest's notifications arrive on (SetVringKick, which KVM
// signals through an ioeventfd) and which it signals when the driver should
// be interrupted (SetVringCall, which KVM turns into an interrupt through an
// irqfd). Then a kernel thread moves packets between the rings and a TAP
// (NetSetBackend), and no packet passes through the VMM's own code: the
// configuration space, feature negotiation and the transport stay in ember.
//
// The guest's descriptors are read by the kernel, which translates every
// buffer address through the memory table and refuses one outside it, so a
// hostile guest can make vhost stop a queue (it signals the queue's error
// eventfd, SetVringErr) but not reach host memory outside guest RAM.
package vhost

import (
	"errors"
	"fmt"
	"os"
	"unsafe"

	"golang.org/x/sys/unix"
)

// NetPath is vhost-net's device node. The vhost_net module makes it.
const NetPath = "/dev/vhost-net"

// Feature bits vhost reports and takes (VHOST_GET_FEATURES,
// VHOST_SET_FEATURES): the virtio ones it implements, and its own.
const (
	// FeatureLogAll is VHOST_F_LOG_ALL: log every write to guest RAM (for
	// live migration; ember never sets it).
	FeatureLogAll = 1 << 26
	// FeatureNetHeader is VHOST_NET_F_VIRTIO_NET_HDR: vhost adds and strips
	// the virtio-net header itself. ember never sets it: the TAP carries the
	// header (IFF_VNET_HDR), so the guest's offloads reach the host's
	// network stack.
	FeatureNetHeader = 1 << 27
)

// ioctl request numbers (<linux/vhost.h>; VHOST_VIRTIO is 0xAF), built as
// <asm-generic/ioctl.h> does: direction, argument size, type, number.
var (
	reqGetFeatures  = ioc(iocRead, 0x00, 8)
	reqSetFeatures  = ioc(iocWrite, 0x00, 8)
	reqSetOwner     = ioc(iocNone, 0x01, 0)
	reqSetMemTable  = ioc(iocWrite, 0x03, unsafe.Sizeof(memoryHeader{}))
	reqSetVringNum  = ioc(iocWrite, 0x10, unsafe.Sizeof(VringState{}))
	reqSetVringAddr = ioc(iocWrite, 0x11, unsafe.Sizeof(VringAddr{}))
	reqSetVringBase = ioc(iocWrite, 0x12, unsafe.Sizeof(VringState{}))
	reqGetVringBase = ioc(iocRead|iocWrite, 0x12, unsafe.Sizeof(VringState{}))
	reqSetVringKick = ioc(iocWrite, 0x20, unsafe.Sizeof(VringFile{}))
	reqSetVringCall = ioc(iocWrite, 0x21, unsafe.Sizeof(VringFile{}))
	reqSetVringErr  = ioc(iocWrite, 0x22, unsafe.Sizeof(VringFile{}))
	reqNetSetBack   = ioc(iocWrite, 0x30, unsafe.Sizeof(VringFile{}))
)

// vhostType is VHOST_VIRTIO, the ioctl type byte of every vhost request.
const vhostType = 0xAF

// Directions of an ioctl request (<asm-generic/ioctl.h>).
const (
	iocNone  = 0
	iocWrite = 1
	iocRead  = 2
)

// ioc builds a vhost ioctl request number.
func ioc(dir, nr, size uintptr) uintptr { return dir<<30 | size<<16 | vhostType<<8 | nr }

// VringState is struct vhost_vring_state: a queue index and a number (its
// size, or the index of the next available entry vhost will take).
type VringState struct {
	Index uint32
	Num   uint32
}

// VringFile is struct vhost_vring_file: a queue index and a descriptor (-1
// unbinds).
type VringFile struct {
	Index uint32
	FD    int32
}

// VringAddr is struct vhost_vring_addr: where a queue's rings are, as
// addresses in this process.
type VringAddr struct {
	Index     uint32
	Flags     uint32 // VHOST_VRING_F_LOG (never set here)
	DescUser  uint64 // the descriptor table
	UsedUser  uint64 // the used ring
	AvailUser uint64 // the available ring
	LogGuest  uint64 // where the used ring's writes are logged (unused)
}

// memoryHeader is struct vhost_memory without its trailing array.
type memoryHeader struct {
	NRegions uint32
	_        uint32
}

// MemoryRegion is struct vhost_memory_region: guest-physical addresses
// [GuestPhys, GuestPhys+Size) are this process's [User, User+Size).
type MemoryRegion struct {
	GuestPhys uint64
	Size      uint64
	User      uint64
	_         uint64 // flags_padding
}

// Net is an open /dev/vhost-net: one virtio-net device's data path in the
// kernel, owned by this process.
type Net struct {
	f *os.File
}

// ErrMissing is wrapped by OpenNet's error where the host has no
// /dev/vhost-net.
var ErrMissing = errors.New("no " + NetPath)

// OpenNet opens /dev/vhost-net and makes this process its owner
// (VHOST_SET_OWNER): its kernel thread works in this process's memory, so
// every address given to it later is one of this process's.
func OpenNet() (*Net, error) {
	fd, err := unix.Open(NetPath, unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, openError(err)
	}
	n := &Net{f: os.NewFile(uintptr(fd), NetPath)}
	if err := n.do("VHOST_SET_OWNER", reqSetOwner, nil); err != nil {
		n.Close()
		return nil, err
	}
	return n, nil
}

// openError explains why /dev/vhost-net did not open.
func openError(err error) error {
	switch {
	case errors.Is(err, unix.ENOENT), errors.Is(err, unix.ENODEV), errors.Is(err, unix.ENXIO):
		return fmt.Errorf("vhost: %w: load the vhost_net module (modprobe vhost_net), or run without vhost: %v", ErrMissing, err)
	case errors.Is(err, unix.EACCES), errors.Is(err, unix.EPERM):
		return fmt.Errorf("vhost: %s cannot be opened by this user (it is usually root's, mode 0600): %w", NetPath, err)
	}
	return fmt.Errorf("vhost: opening %s: %w", NetPath, err)
}

// Close releases the device: the kernel stops its thread and forgets the
// queues, the memory table and every eventfd and TAP it was given.
func (n *Net) Close() error { return n.f.Close() }

// Features returns the feature bits this kernel's vhost-net implements.
func (n *Net) Features() (uint64, error) {
	var f uint64
	err := n.do("VHOST_GET_FEATURES", reqGetFeatures, unsafe.Pointer(&f))
	return f, err
}

// SetFeatures tells vhost the features the driver accepted; each must be
// one Features reported.
func (n *Net) SetFeatures(f uint64) error {
	return n.do("VHOST_SET_FEATURES", reqSetFeatures, unsafe.Pointer(&f))
}

// SetMemTable gives vhost the guest's RAM: every address in a descriptor
// must fall in one of regions, or vhost refuses the descriptor.
func (n *Net) SetMemTable(regions []MemoryRegion) error {
	hdr := unsafe.Sizeof(memoryHeader{})
	buf := make([]uint64, (hdr+uintptr(len(regions))*unsafe.Sizeof(MemoryRegion{}))/8)
	(*memoryHeader)(unsafe.Pointer(&buf[0])).NRegions = uint32(len(regions))
	copy(unsafe.Slice((*MemoryRegion)(unsafe.Pointer(&buf[hdr/8])), len(regions)), regions)
	return n.do("VHOST_SET_MEM_TABLE", reqSetMemTable, unsafe.Pointer(&buf[0]))
}

// SetVringNum sets queue index's size.
func (n *Net) SetVringNum(index int, size uint16) error {
	s := VringState{Index: uint32(index), Num: uint32(size)}
	return n.do("VHOST_SET_VRING_NUM", reqSetVringNum, unsafe.Pointer(&s))
}

// SetVringBase sets the available-ring index vhost takes queue index's
// next chain at (0 for a queue the driver has just set up).
func (n *Net) SetVringBase(index int, base uint16) error {
	s := VringState{Index: uint32(index), Num: uint32(base)}
	return n.do("VHOST_SET_VRING_BASE", reqSetVringBase, unsafe.Pointer(&s))
}

// VringBase stops queue index and returns the available-ring index of the
// next chain it would have taken.
func (n *Net) VringBase(index int) (uint16, error) {
	s := VringState{Index: uint32(index)}
	err := n.do("VHOST_GET_VRING_BASE", reqGetVringBase, unsafe.Pointer(&s))
	return uint16(s.Num), err
}

// SetVringAddr says where queue index's rings are in this process.
func (n *Net) SetVringAddr(a VringAddr) error {
	return n.do("VHOST_SET_VRING_ADDR", reqSetVringAddr, unsafe.Pointer(&a))
}

// SetVringKick sets the eventfd whose signal means the driver notified
// queue index; -1 unbinds it.
func (n *Net) SetVringKick(index, fd int) error {
	return n.file("VHOST_SET_VRING_KICK", reqSetVringKick, index, fd)
}

// SetVringCall sets the eventfd vhost signals when the driver should hear
// of queue index's used buffers; -1 unbinds it.
func (n *Net) SetVringCall(index, fd int) error {
	return n.file("VHOST_SET_VRING_CALL", reqSetVringCall, index, fd)
}

// SetVringErr sets the eventfd vhost signals when the driver broke queue
// index (a descriptor it cannot use); -1 unbinds it.
func (n *Net) SetVringErr(index, fd int) error {
	return n.file("VHOST_SET_VRING_ERR", reqSetVringErr, index, fd)
}

// NetSetBackend starts queue index on the TAP (or packet socket) fd: vhost
// moves its packets from then on. -1 stops the queue.
func (n *Net) NetSetBackend(index, fd int) error {
	return n.file("VHOST_NET_SET_BACKEND", reqNetSetBack, index, fd)
}

// file issues one of the requests that take a struct vhost_vring_file.
func (n *Net) file(name string, req uintptr, index, fd int) error {
	f := VringFile{Index: uint32(index), FD: int32(fd)}
	return n.do(name, req, unsafe.Pointer(&f))
}

// do issues one ioctl on the device, again on EINTR. The argument stays
// an unsafe.Pointer until the system call's argument list, so the stack
// it points into cannot move under the kernel (see kvm's ioctl).
func (n *Net) do(name string, req uintptr, arg unsafe.Pointer) error {
	rc, err := n.f.SyscallConn()
	if err != nil {
		return fmt.Errorf("vhost: %s: %w", name, err)
	}
	var errno unix.Errno
	if cerr := rc.Control(func(fd uintptr) {
		for {
			_, _, errno = unix.Syscall(unix.SYS_IOCTL, fd, req, uintptr(arg))
			if errno != unix.EINTR {
				return
			}
		}
	}); cerr != nil {
		return fmt.Errorf("vhost: %s: %w", name, cerr)
	}
	if errno != 0 {
		return fmt.Errorf("vhost: %s: %w", name, errno)
	}
	return nil
}
