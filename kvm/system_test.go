package kvm

import (
	"errors"
	"io/fs"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"ember/kvm/kvmcap"

	"golang.org/x/sys/unix"
)

func TestOpenSpeaksAPIVersion12(t *testing.T) {
	sys := openKVM(t)
	v, err := sys.APIVersion()
	if err != nil {
		t.Fatalf("APIVersion: %v", err)
	}
	if v != 12 {
		t.Errorf("APIVersion() = %d, want 12", v)
	}
	if sys.Fd() < 0 {
		t.Errorf("Fd() = %d on an open System", sys.Fd())
	}
	if err := Available(); err != nil {
		t.Errorf("Available() = %v on a host where Open works", err)
	}
}

func TestOpenPathRefusesANonKVMDevice(t *testing.T) {
	// /dev/null opens fine, but knows no KVM ioctl.
	_, err := OpenPath("/dev/null")
	wantErrno(t, err, "KVM_GET_API_VERSION", unix.ENOTTY)
}

func TestOpenPathMissingNode(t *testing.T) {
	path := filepath.Join(t.TempDir(), "kvm")
	_, err := OpenPath(path)
	if !errors.Is(err, fs.ErrNotExist) || !errors.Is(err, unix.ENOENT) {
		t.Fatalf("OpenPath(%s) = %v, want ENOENT", path, err)
	}
	if !strings.Contains(err.Error(), path) {
		t.Errorf("error %q does not name the path", err)
	}
}

func TestSystemClosedTwice(t *testing.T) {
	sys := openKVM(t)
	if err := sys.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := sys.Close(); !errors.Is(err, ErrClosed) {
		t.Errorf("second Close = %v, want ErrClosed", err)
	}
	if _, err := sys.APIVersion(); !errors.Is(err, unix.EBADF) {
		t.Errorf("APIVersion after Close = %v, want EBADF", err)
	}
}

func TestCheckExtension(t *testing.T) {
	sys := openKVM(t)
	tests := []struct {
		cap     kvmcap.Cap
		atLeast int // every x86 KVM of the last decade answers at least this
	}{
		{kvmcap.UserMemory, 1},
		{kvmcap.IRQChip, 1},
		{kvmcap.SetTssAddr, 1},
		{kvmcap.NrMemslots, 32},
		{kvmcap.MaxVCPUs, 1},
		{kvmcap.MaxVCPUID, 1},
		{kvmcap.ImmediateExit, 1},
		{kvmcap.ExtCPUID, 1},
		{kvmcap.Cap(0xffff), 0}, // unknown capabilities answer 0, not an error
	}
	for _, tt := range tests {
		t.Run(tt.cap.String(), func(t *testing.T) {
			v, err := sys.CheckExtension(tt.cap)
			if err != nil {
				t.Fatalf("CheckExtension(%v): %v", tt.cap, err)
			}
			if v < tt.atLeast || (tt.atLeast == 0 && v != 0) {
				t.Errorf("CheckExtension(%v) = %d, want >= %d", tt.cap, v, tt.atLeast)
			}
		})
	}
}

func TestCapabilitiesSortedAndPresent(t *testing.T) {
	sys := openKVM(t)
	caps, err := sys.Capabilities()
	if err != nil {
		t.Fatalf("Capabilities: %v", err)
	}
	if len(caps) == 0 {
		t.Fatal("Capabilities() is empty")
	}
	if !slices.IsSortedFunc(caps, func(a, b CapValue) int { return int(a.Cap) - int(b.Cap) }) {
		t.Errorf("Capabilities() not sorted: %v", caps)
	}
	seen := map[kvmcap.Cap]bool{}
	for _, c := range caps {
		if c.Value <= 0 {
			t.Errorf("%v listed with value %d", c.Cap, c.Value)
		}
		if seen[c.Cap] {
			t.Errorf("%v listed twice", c.Cap)
		}
		seen[c.Cap] = true
		if v, _ := sys.CheckExtension(c.Cap); v != c.Value {
			t.Errorf("%v listed as %d, CheckExtension says %d", c.Cap, c.Value, v)
		}
	}
	if !seen[kvmcap.UserMemory] {
		t.Errorf("Capabilities() lacks KVM_CAP_USER_MEMORY: %v", caps)
	}
}

func TestVCPUMmapSize(t *testing.T) {
	sys := openKVM(t)
	n, err := sys.VCPUMmapSize()
	if err != nil {
		t.Fatalf("VCPUMmapSize: %v", err)
	}
	if n < 4096 || n%4096 != 0 {
		t.Errorf("VCPUMmapSize() = %d, want a multiple of 4096", n)
	}
	if n < int(sizeof[runStruct]()) {
		t.Errorf("VCPUMmapSize() = %d, smaller than struct kvm_run (%d)", n, sizeof[runStruct]())
	}
}

// MSR indexes the tests rely on.
const (
	msrIA32TSC        = 0x10
	msrSysenterCS     = 0x174
	msrSysenterESP    = 0x175
	msrArchCapability = 0x10a
)

func TestMSRIndexListHasTSC(t *testing.T) {
	sys := openKVM(t)
	list, err := sys.MSRIndexList()
	if err != nil {
		t.Fatalf("MSRIndexList: %v", err)
	}
	// A VMX or SVM host lists well over 100 MSRs; the kvm-pvm backend on
	// ember's build machines lists 40.
	if len(list) == 0 {
		t.Fatal("MSRIndexList() is empty")
	}
	for _, want := range []uint32{msrIA32TSC, msrSysenterCS} {
		if !slices.Contains(list, want) {
			t.Errorf("MSRIndexList() lacks %#x", want)
		}
	}
}

func TestMSRFeatureIndexList(t *testing.T) {
	sys := openKVM(t)
	mustCap(t, sys, kvmcap.GetMSRFeatures)
	list, err := sys.MSRFeatureIndexList()
	if err != nil {
		t.Fatalf("MSRFeatureIndexList: %v", err)
	}
	if !slices.Contains(list, msrArchCapability) {
		t.Errorf("MSRFeatureIndexList() = %#x, lacks IA32_ARCH_CAPABILITIES (0x10a)", list)
	}
}

func TestSupportedCPUIDHasBasicLeaves(t *testing.T) {
	sys := openKVM(t)
	entries, err := sys.SupportedCPUID()
	if err != nil {
		t.Fatalf("SupportedCPUID: %v", err)
	}
	// More than the first buffer of 16 entries: proves the E2BIG growth.
	if len(entries) <= 16 {
		t.Errorf("SupportedCPUID() has %d entries, want more than 16", len(entries))
	}
	leaf := func(fn uint32) *CPUIDEntry {
		for i := range entries {
			if entries[i].Function == fn && entries[i].Index == 0 {
				return &entries[i]
			}
		}
		return nil
	}
	l0, l1 := leaf(0), leaf(1)
	if l0 == nil || l1 == nil {
		t.Fatalf("SupportedCPUID() lacks leaf 0 or 1: %+v", entries)
	}
	if l0.EAX < 1 {
		t.Errorf("leaf 0 EAX (max basic leaf) = %d", l0.EAX)
	}
	if l1.EDX&1 == 0 { // FPU
		t.Errorf("leaf 1 EDX = %#x lacks FPU", l1.EDX)
	}
	if ext := leaf(0x80000000); ext == nil || ext.EAX < 0x80000001 {
		t.Errorf("SupportedCPUID() lacks the extended leaves (KVM_CAP_EXT_CPUID): %+v", ext)
	}
}

func TestEmulatedCPUID(t *testing.T) {
	sys := openKVM(t)
	mustCap(t, sys, kvmcap.ExtEmulCPUID)
	entries, err := sys.EmulatedCPUID()
	if err != nil {
		t.Fatalf("EmulatedCPUID: %v", err)
	}
	// KVM always emulates MOVBE (leaf 1 ECX bit 22) and RDPID.
	found := false
	for _, e := range entries {
		if e.Function == 1 && e.ECX&(1<<22) != 0 {
			found = true
		}
	}
	if !found {
		t.Errorf("EmulatedCPUID() lacks MOVBE in leaf 1: %+v", entries)
	}
}

func TestErrorUnwrapsToErrno(t *testing.T) {
	err := error(&Error{Op: "KVM_RUN", Errno: unix.EFAULT})
	if !errors.Is(err, unix.EFAULT) {
		t.Error("errors.Is(Error{EFAULT}, EFAULT) = false")
	}
	if got, want := err.Error(), "kvm: KVM_RUN: bad address"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
}
