package linuxguest

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"ember/internal/cpio"
)

// virtioModules are the modules a Debian kernel needs for ember's virtio
// devices, in load order (each after what it depends on), relative to
// lib/modules/VERSION/kernel.
var virtioModules = []string{
	"drivers/virtio/virtio_ring.ko",
	"drivers/virtio/virtio.ko",
	"drivers/virtio/virtio_pci_legacy_dev.ko",
	"drivers/virtio/virtio_pci_modern_dev.ko",
	"drivers/virtio/virtio_pci.ko",
	"drivers/virtio/virtio_balloon.ko",
	"drivers/char/hw_random/virtio-rng.ko",
	"drivers/char/virtio_console.ko",
	"net/core/failover.ko",
	"drivers/net/net_failover.ko",
	"drivers/net/virtio_net.ko",
	"net/vmw_vsock/vsock.ko",
	"net/vmw_vsock/vmw_vsock_virtio_transport_common.ko",
	"net/vmw_vsock/vmw_vsock_virtio_transport.ko",
	"drivers/block/virtio_blk.ko",
}

// VirtioModules reads the virtio modules of the kernel at path (a
// .../boot/vmlinuz-VERSION whose package tree also has lib/modules/VERSION,
// as .ci/run extracts it). A tree without them gives none and no error: the
// kernel may have virtio built in, or the test does not need it.
func VirtioModules(kernel string) ([]Module, error) {
	if kernel == "" {
		return nil, nil
	}
	version := strings.TrimPrefix(filepath.Base(kernel), "vmlinuz-")
	dir := filepath.Join(filepath.Dir(filepath.Dir(kernel)), "lib", "modules", version, "kernel")
	var mods []Module
	for i, rel := range virtioModules {
		b, err := os.ReadFile(filepath.Join(dir, rel))
		if errors.Is(err, fs.ErrNotExist) {
			return nil, nil
		}
		if err != nil {
			return nil, err
		}
		mods = append(mods, Module{Name: fmt.Sprintf("%02d-%s", i, filepath.Base(rel)), Data: b})
	}
	return mods, nil
}

// addModules puts modules in lib/modules, where the init loads them in
// name order.
func addModules(w *cpio.Writer, modules []Module) error {
	if len(modules) == 0 {
		return nil
	}
	if err := w.Dir("lib", 0o755); err != nil {
		return err
	}
	if err := w.Dir("lib/modules", 0o755); err != nil {
		return err
	}
	for _, m := range modules {
		if err := w.File("lib/modules/"+m.Name, m.Data, 0o644); err != nil {
			return err
		}
	}
	return nil
}
