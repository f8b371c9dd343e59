package main

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"ember/internal/kvmtest"
	"ember/internal/linuxguest"
)

// TestLinuxUsesVirtioDevices boots Debian's kernel with --rng and a --disk:
// its virtio-pci driver must find both by PCI enumeration, its virtio-rng
// driver must read entropy through the queue, it must read the disk's
// contents as the host wrote them, and a sector it writes and syncs must be
// in the image file when ember has exited. The boot log must stay clean.
func TestLinuxUsesVirtioDevices(t *testing.T) {
	kernel, ird := requireLinux(t)
	if !ird.virtio {
		const why = "the kernel's tree has no virtio modules (.ci/run extracts them next to boot/)"
		if os.Getenv(kvmtest.RequireEnv) != "" {
			t.Fatal(why)
		}
		t.Skip("skipping: " + why)
	}
	image := make([]byte, 1<<20)
	rand.Read(image)
	path := filepath.Join(t.TempDir(), "disk.img")
	if err := os.WriteFile(path, image, 0o644); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(image[:65536])
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	const cmdline = "console=ttyS0 ember.end=poweroff ember.diskwrite=1"
	r := bootLinuxRetryingInLab(t, ctx, kernel, ird, nil, "--rng", "--disk", path+",serial=ember0", "--cmdline", cmdline)
	checkUserspace(t, r, ird, cmdline, 1)
	for _, w := range []string{
		"ember-init: virtio devices 0x0002 0x0004 ", // block and rng, found on the PCI bus
		"ember-init: hwrng 4096 bytes",              // read through the rng's queue
		"ember-init: vda sha256 " + hex.EncodeToString(sum[:]),
		"ember-init: vda written",
	} {
		if !strings.Contains(r.out, w) {
			t.Errorf("the guest did not print %q; its console:\n%s", w, tailString(r.out, 6000))
		}
	}
	if r.status != 0 {
		t.Errorf("ember exited %d: %s", r.status, strings.TrimSpace(r.summary))
	}
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if want := linuxguest.DiskMarker + "\n"; !strings.HasPrefix(string(got[512:1024]), want) {
		t.Errorf("sector 1 of the image holds %q, want the guest's %q", got[512:512+len(want)], want)
	}
	if string(got[1024:]) != string(image[1024:]) {
		t.Error("the guest's write changed more than sector 1")
	}
}
