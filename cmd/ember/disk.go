package main

import (
	"fmt"
	"io"
	"strings"

	"ember/hv"
	"ember/pc"
	"ember/virtio/blk"
	"ember/virtio/console"
	virtionet "ember/virtio/net"
	"ember/virtio/rng"
	"ember/virtio/vsock"
)

// parseDisk parses a --disk value:
// PATH[,readonly][,serial=ID][,queues=N][,cache=none|writeback].
func parseDisk(spec string) (blk.Config, error) {
	parts := strings.Split(spec, ",")
	c := blk.Config{Path: parts[0]}
	if c.Path == "" {
		return c, fmt.Errorf("--disk %q: no path", spec)
	}
	for _, p := range parts[1:] {
		k, v, _ := strings.Cut(p, "=")
		switch k {
		case "readonly", "ro":
			c.ReadOnly = true
		case "serial":
			if len(v) > 20 {
				return c, fmt.Errorf("--disk %q: serial longer than 20 bytes", spec)
			}
			c.Serial = v
		case "cache":
			switch v {
			case "none":
				c.Direct = true
			case "writeback":
			default:
				return c, fmt.Errorf("--disk %q: cache must be none or writeback", spec)
			}
		case "queues":
			if _, err := fmt.Sscan(v, &c.Queues); err != nil || c.Queues < 1 || c.Queues > 16 {
				return c, fmt.Errorf("--disk %q: queues must be 1 to 16", spec)
			}
		default:
			return c, fmt.Errorf("--disk %q: unknown option %q (readonly, serial=ID, queues=N, cache=none)", spec, p)
		}
	}
	return c, nil
}

// addVirtio gives the VM the virtio devices p asks for: the disks (closed
// with the VM, after a last flush), the network interfaces, the entropy
// source and the console. For a
// virtio console it returns the writer that feeds the guest's input.
func addVirtio(vm *hv.VM, plat *pc.Platform, p *prepared) (io.Writer, error) {
	for _, c := range p.disks {
		c.Logger = vm.Logger()
		d, err := blk.Open(c)
		if err != nil {
			return nil, err
		}
		vm.OnClose(func() { d.Flush(); d.Close() })
		if _, err := plat.AddVirtio(vm, d); err != nil {
			return nil, err
		}
	}
	for _, n := range p.nets {
		c := n.config()
		c.Logger = vm.Logger()
		d, err := virtionet.New(c)
		if err != nil {
			return nil, fmt.Errorf("--net tap=%s: %w", n.tap, err)
		}
		vm.OnClose(func() { d.Close() })
		if _, err := plat.AddVirtio(vm, d); err != nil {
			return nil, err
		}
	}
	if p.vsock != nil {
		c := *p.vsock
		c.Logger = vm.Logger()
		d, err := vsock.New(c)
		if err != nil {
			return nil, fmt.Errorf("--vsock: %w", err)
		}
		vm.OnClose(func() { d.Close() })
		if _, err := plat.AddVirtio(vm, d); err != nil {
			return nil, err
		}
	}
	if p.rng {
		if _, err := plat.AddVirtio(vm, rng.New(vm.Logger())); err != nil {
			return nil, err
		}
	}
	if !p.hvc {
		return nil, nil
	}
	// The guest's input comes through a pipe, closed with the VM, so the
	// device's reader ends with the boot and the next boot gets its own.
	pr, pw := io.Pipe()
	dev, err := console.New(console.Config{Output: vm.Config().Console, Input: pr, Cols: 80, Rows: 25, Logger: vm.Logger()})
	if err != nil {
		return nil, err
	}
	vm.OnClose(func() { pw.Close(); dev.Close() })
	if _, err := plat.AddVirtio(vm, dev); err != nil {
		return nil, err
	}
	return pw, nil
}
