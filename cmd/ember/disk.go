package main

import (
	"fmt"
	"strings"

	"ember/hv"
	"ember/pc"
	"ember/virtio/blk"
	"ember/virtio/rng"
)

// parseDisk parses a --disk value: PATH[,readonly][,serial=ID][,queues=N].
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
		case "queues":
			if _, err := fmt.Sscan(v, &c.Queues); err != nil || c.Queues < 1 || c.Queues > 16 {
				return c, fmt.Errorf("--disk %q: queues must be 1 to 16", spec)
			}
		default:
			return c, fmt.Errorf("--disk %q: unknown option %q (readonly, serial=ID, queues=N)", spec, p)
		}
	}
	return c, nil
}

// addVirtio gives the VM the virtio devices p asks for: the disks (closed
// with the VM, after a last flush) and the entropy source.
func addVirtio(vm *hv.VM, plat *pc.Platform, p *prepared) error {
	for _, c := range p.disks {
		c.Logger = vm.Logger()
		d, err := blk.Open(c)
		if err != nil {
			return err
		}
		vm.OnClose(func() { d.Flush(); d.Close() })
		if _, err := plat.AddVirtio(vm, d); err != nil {
			return err
		}
	}
	if p.rng {
		if _, err := plat.AddVirtio(vm, rng.New(vm.Logger())); err != nil {
			return err
		}
	}
	return nil
}
