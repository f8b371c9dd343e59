package main

import (
	"ember/lab/internal/kernelpkg"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// labKernelMeta is the Debian package whose kernel the lab machine runs: the
// generic one, which (unlike the cloud kernel) ships kvm.ko and kvm-amd.ko.
const labKernelMeta = "linux-image-amd64"

// labModules are the modules the lab's init loads, by name; their
// dependencies are found in each module's .modinfo and loaded first.
// vhost_net is for QEMU's vhost=on, which `lab net` compares ember with.
var labModules = []string{"kvm_amd", "virtio_pci", "9pnet_virtio", "9p", "overlay", "tun", "vhost_net"}

// kernelFiles is a Debian kernel package unpacked for the lab: the kernel
// image and the modules the lab needs, in load order.
type kernelFiles struct {
	Package string
	Vmlinuz string
	Modules []string // paths, each after its dependencies
}

// ensureKernel downloads and unpacks the kernel package behind meta (once;
// later runs use the cache). modules names the modules to extract with their
// dependencies; nil extracts none.
func ensureKernel(p *progress, cache, meta string, modules []string) (kernelFiles, error) {
	pkg, err := kernelPackage(meta)
	if err != nil {
		return kernelFiles{}, fmt.Errorf("finding Debian's %s: %w", meta, err)
	}
	dir := filepath.Join(cache, pkg)
	kf := kernelFiles{Package: pkg}
	order := filepath.Join(dir, "modules.order")
	if b, err := os.ReadFile(order); err == nil {
		kf.Vmlinuz = filepath.Join(dir, "vmlinuz")
		for _, m := range strings.Fields(string(b)) {
			kf.Modules = append(kf.Modules, filepath.Join(dir, "modules", m+".ko"))
		}
		if kernelpkg.HasModules(string(b), modules) {
			return kf, nil
		}
	}
	p.say("downloading " + pkg + " (apt-get download)")
	deb, err := downloadDeb(pkg, filepath.Join(cache, "debs"))
	if err != nil {
		return kf, err
	}
	p.say("unpacking " + filepath.Base(deb))
	if err := kernelpkg.Unpack(deb, dir, modules); err != nil {
		return kf, fmt.Errorf("unpacking %s: %w", deb, err)
	}
	return ensureKernel(p, cache, meta, modules)
}
