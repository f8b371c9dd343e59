package kvm

import (
	"fmt"
	"os"
	"strings"

	"ember/kvm/kvmcap"

	"golang.org/x/sys/unix"
)

// APIVersion is the only KVM API version this binding speaks. KVM has reported
// 12 since Linux 2.6.22 and promises never to change it.
const APIVersion = 12

// DevicePath is where the KVM device node lives.
const DevicePath = "/dev/kvm"

// System ioctl numbers (include/uapi/linux/kvm.h).
var (
	kvmGetAPIVersion          = io(0x00)
	kvmCreateVM               = io(0x01)
	kvmGetMSRIndexList        = iowr(0x02, 4)
	kvmCheckExtension         = io(0x03)
	kvmGetVCPUMmapSize        = io(0x04)
	kvmGetSupportedCPUID      = iowr(0x05, 8)
	kvmGetEmulatedCPUID       = iowr(0x09, 8)
	kvmGetMSRFeatureIndexList = iowr(0x0a, 4)
	kvmGetSupportedHVCPUID    = iowr(0xc1, 8)
)

// System is an open /dev/kvm: the handle for system ioctls, which query and set
// attributes of the whole KVM subsystem and create VMs.
type System struct {
	fd int
}

// Open opens /dev/kvm and checks with KVM_GET_API_VERSION that it speaks API
// version 12; any other version is refused with ErrAPIVersion.
func Open() (*System, error) {
	return OpenPath(DevicePath)
}

// OpenPath is Open on another device node (a test or a container may move it).
func OpenPath(path string) (*System, error) {
	fd, err := unix.Open(path, unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("kvm: open %s: %w", path, err)
	}
	s := &System{fd: fd}
	v, err := s.APIVersion()
	if err != nil {
		s.Close()
		return nil, err
	}
	if v != APIVersion {
		s.Close()
		return nil, fmt.Errorf("%w: %s reports %d, ember needs %d", ErrAPIVersion, path, v, APIVersion)
	}
	return s, nil
}

// Available reports whether /dev/kvm exists and can be opened for reading and writing.
func Available() error {
	f, err := os.OpenFile(DevicePath, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	return f.Close()
}

// Close closes /dev/kvm. VMs created from it stay valid.
func (s *System) Close() error {
	if s.fd < 0 {
		return ErrClosed
	}
	err := unix.Close(s.fd)
	s.fd = -1
	return err
}

// Fd returns the raw descriptor of /dev/kvm.
func (s *System) Fd() int { return s.fd }

// APIVersion issues KVM_GET_API_VERSION.
func (s *System) APIVersion() (int, error) {
	r, err := ioctlValue(s.fd, "KVM_GET_API_VERSION", kvmGetAPIVersion, 0)
	return int(r), err
}

// CreateVM issues KVM_CREATE_VM with the default machine type and returns the
// new VM. The VM has no memory and no vCPUs yet.
func (s *System) CreateVM() (*VM, error) {
	// Learn the kvm_run size now: CreateVCPU needs it, and the VM must keep
	// working after s is closed.
	size, err := s.VCPUMmapSize()
	if err != nil {
		return nil, err
	}
	r, err := ioctlValue(s.fd, "KVM_CREATE_VM", kvmCreateVM, 0)
	if err != nil {
		return nil, err
	}
	return &VM{fd: int(r), sys: s, runSize: size}, nil
}

// CheckExtension issues KVM_CHECK_EXTENSION on /dev/kvm: 0 means the capability
// is absent, a positive value means present (and for some capabilities, how many).
func (s *System) CheckExtension(c kvmcap.Cap) (int, error) {
	r, err := ioctlValue(s.fd, "KVM_CHECK_EXTENSION", kvmCheckExtension, uintptr(c))
	return int(r), err
}

// CapValue is a capability and what KVM_CHECK_EXTENSION answered for it.
type CapValue struct {
	Cap   kvmcap.Cap
	Value int
}

// Capabilities checks every capability package kvmcap names and returns
// those present with their values, in numeric order.
func (s *System) Capabilities() ([]CapValue, error) {
	var out []CapValue
	for _, c := range kvmcap.All() {
		v, err := s.CheckExtension(c)
		if err != nil {
			return nil, err
		}
		if v > 0 {
			out = append(out, CapValue{Cap: c, Value: v})
		}
	}
	return out, nil
}

// VCPUMmapSize issues KVM_GET_VCPU_MMAP_SIZE: the size of the region a vCPU fd
// must be mmap'd with to reach its shared kvm_run structure.
func (s *System) VCPUMmapSize() (int, error) {
	r, err := ioctlValue(s.fd, "KVM_GET_VCPU_MMAP_SIZE", kvmGetVCPUMmapSize, 0)
	return int(r), err
}

// MSRIndexList issues KVM_GET_MSR_INDEX_LIST: the MSRs KVM can save and restore.
// The list's size is not known in advance, so the call is made once to learn it
// (KVM answers E2BIG and writes the count) and again with room for it.
func (s *System) MSRIndexList() ([]uint32, error) {
	return s.msrList("KVM_GET_MSR_INDEX_LIST", kvmGetMSRIndexList)
}

// MSRFeatureIndexList issues KVM_GET_MSR_FEATURE_INDEX_LIST: the feature MSRs
// (such as IA32_ARCH_CAPABILITIES) whose supported values KVM reports.
func (s *System) MSRFeatureIndexList() ([]uint32, error) {
	return s.msrList("KVM_GET_MSR_FEATURE_INDEX_LIST", kvmGetMSRFeatureIndexList)
}

func (s *System) msrList(name string, req uintptr) ([]uint32, error) {
	n := uint32(64)
	for {
		buf := make([]uint32, 1+n)
		buf[0] = n
		_, err := ioctl(s.fd, name, req, sliceptr(buf))
		if err == nil {
			return buf[1 : 1+buf[0]], nil
		}
		if e, ok := err.(*Error); !ok || e.Errno != unix.E2BIG || buf[0] <= n {
			return nil, err
		}
		n = buf[0]
	}
}

// SupportedCPUID issues KVM_GET_SUPPORTED_CPUID: the CPUID leaves KVM can
// present to a guest, the starting point for a vCPU's KVM_SET_CPUID2. KVM does
// not say how many entries it has; it answers E2BIG when the buffer is too
// small, so the buffer grows until the call succeeds (KVM documents this dance).
func (s *System) SupportedCPUID() ([]CPUIDEntry, error) {
	return s.cpuid("KVM_GET_SUPPORTED_CPUID", kvmGetSupportedCPUID)
}

// EmulatedCPUID issues KVM_GET_EMULATED_CPUID: CPUID features KVM emulates in
// software (usable, but slowly), with the same sizing dance as SupportedCPUID.
func (s *System) EmulatedCPUID() ([]CPUIDEntry, error) {
	return s.cpuid("KVM_GET_EMULATED_CPUID", kvmGetEmulatedCPUID)
}

// SupportedHVCPUID issues KVM_GET_SUPPORTED_HV_CPUID on /dev/kvm
// (kvmcap.SysHypervCPUID): the Hyper-V enlightenment leaves (0x40000000 "Linux
// KVM Hv", its features, SynIC, timers, ...) KVM can offer a guest, with the
// same sizing dance as SupportedCPUID.
func (s *System) SupportedHVCPUID() ([]CPUIDEntry, error) {
	return s.cpuid("KVM_GET_SUPPORTED_HV_CPUID", kvmGetSupportedHVCPUID)
}

// maxCPUIDEntries bounds the sizing dance; KVM itself caps it at 256.
const maxCPUIDEntries = 4096

func (s *System) cpuid(name string, req uintptr) ([]CPUIDEntry, error) {
	for n := 16; ; n *= 2 {
		c := newCPUID2(n)
		_, err := ioctl(s.fd, name, req, c.ptr())
		if err == nil {
			return c.entries(), nil
		}
		// Older kernels answer ENOMEM rather than E2BIG for a short buffer.
		if e, ok := err.(*Error); !ok || (e.Errno != unix.E2BIG && e.Errno != unix.ENOMEM) || n >= maxCPUIDEntries {
			return nil, err
		}
	}
}

// Backends of /dev/kvm, as Backend names them.
const (
	BackendPVM   = "kvm-pvm"   // page-table KVM: guest ring 0 emulated, ring 3 native
	BackendIntel = "kvm-intel" // VMX
	BackendAMD   = "kvm-amd"   // SVM
	BackendOther = "kvm"       // none of the above could be identified
)

// Backend names the module behind /dev/kvm, from /sys/module. Callers use it
// to pick what runs fastest (a kernel decompressed on the host where guest
// ring 0 is emulated) and to label measurements; KVM's behaviour is still
// learned from its capabilities, not from this name.
func Backend() string {
	for _, b := range []string{BackendPVM, BackendIntel, BackendAMD} {
		if _, err := os.Stat("/sys/module/" + strings.ReplaceAll(b, "-", "_")); err == nil {
			return b
		}
	}
	return BackendOther
}
