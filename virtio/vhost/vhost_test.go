package vhost

import (
	"errors"
	"os"
	"strings"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"

	"ember/internal/kvmtest"
)

// TestOpenNetWithoutVhost: where the host has no /dev/vhost-net, OpenNet's
// error wraps ErrMissing and says which module to load.
func TestOpenNetWithoutVhost(t *testing.T) {
	if _, err := os.Stat(NetPath); err == nil {
		t.Skipf("skipping: this host has %s; TestNet runs here instead", NetPath)
	}
	_, err := OpenNet()
	if !errors.Is(err, ErrMissing) || !strings.Contains(err.Error(), "modprobe vhost_net") {
		t.Errorf("OpenNet without %s: %v", NetPath, err)
	}
}

// TestNet: the kernel takes what ember gives vhost-net — the features it
// reported, a memory table, a ring inside it and eventfds — and refuses a
// feature it did not report and an eventfd for a TAP; VringBase gives back
// the base that was set.
func TestNet(t *testing.T) {
	kvmtest.RequireVhostNet(t)
	n, err := OpenNet()
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	f, err := n.Features()
	if err != nil {
		t.Fatal(err)
	}
	const version1, eventIdx = 1 << 32, 1 << 29
	if f&version1 == 0 || f&eventIdx == 0 {
		t.Fatalf("features %#x: no VERSION_1 or EVENT_IDX", f)
	}
	if err := n.SetFeatures(f &^ FeatureLogAll &^ FeatureNetHeader); err != nil {
		t.Fatal(err)
	}
	if err := n.SetFeatures(1 << 63); err == nil {
		t.Error("vhost took a feature bit it does not have")
	}
	ram, err := unix.Mmap(-1, 0, 1<<20, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Munmap(ram)
	base := uint64(uintptr(unsafe.Pointer(&ram[0])))
	if err := n.SetMemTable([]MemoryRegion{{GuestPhys: 0x100000, Size: 1 << 20, User: base}}); err != nil {
		t.Fatal(err)
	}
	if err := n.SetVringNum(0, 256); err != nil {
		t.Fatal(err)
	}
	if err := n.SetVringBase(0, 7); err != nil {
		t.Fatal(err)
	}
	if err := n.SetVringAddr(VringAddr{Index: 0, DescUser: base, AvailUser: base + 0x1000, UsedUser: base + 0x2000}); err != nil {
		t.Fatal(err)
	}
	efd, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(efd)
	for name, set := range map[string]func(int, int) error{"kick": n.SetVringKick, "call": n.SetVringCall, "err": n.SetVringErr} {
		if err := set(0, efd); err != nil {
			t.Errorf("%s: %v", name, err)
		}
		if err := set(0, -1); err != nil {
			t.Errorf("%s unbound: %v", name, err)
		}
	}
	if b, err := n.VringBase(0); err != nil || b != 7 {
		t.Errorf("VringBase = %d, %v; want 7", b, err)
	}
	if err := n.NetSetBackend(0, efd); err == nil {
		t.Error("vhost took an eventfd for a TAP")
	}
}
