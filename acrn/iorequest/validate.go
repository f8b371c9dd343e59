package iorequest

import (
	"fmt"

	"ember/acrn/internal/cabi"
)

// Validate checks the fields a handler acts on, for a request read from
// memory another party can write: a known type and state, a direction of
// READ or WRITE, an access size the instruction set can produce (PIO and PCI
// 1, 2 or 4 bytes; MMIO 1, 2, 4 or 8), a port below 0x10000, a write for WP,
// and a PCI bus/device/function/register inside configuration space. The
// error wraps acrn.ErrInvalid.
func (r *IORequest) Validate() error {
	if !r.Processed.Valid() {
		return fmt.Errorf("%w: I/O request state %v", cabi.ErrInvalid, r.Processed)
	}
	var dir Direction
	var size uint64
	switch r.Type {
	case ReqPortIO:
		p := r.PIO()
		dir, size = p.Direction, p.Size
		if size != 1 && size != 2 && size != 4 {
			return fmt.Errorf("%w: PIO access size %d", cabi.ErrInvalid, size)
		}
		if p.Address > 0xffff || p.Address+size > 0x10000 {
			return fmt.Errorf("%w: PIO port %#x size %d", cabi.ErrInvalid, p.Address, size)
		}
	case ReqMMIO, ReqWP:
		m := r.MMIO()
		dir, size = m.Direction, m.Size
		if size != 1 && size != 2 && size != 4 && size != 8 {
			return fmt.Errorf("%w: MMIO access size %d", cabi.ErrInvalid, size)
		}
		if r.Type == ReqWP && dir != DirWrite {
			return fmt.Errorf("%w: WP request with direction %v", cabi.ErrInvalid, dir)
		}
	case ReqPCICfg:
		p := r.PCI()
		dir, size = p.Direction, p.Size
		if size != 1 && size != 2 && size != 4 {
			return fmt.Errorf("%w: PCI config access size %d", cabi.ErrInvalid, size)
		}
		if p.Bus > 0xff || p.Dev > 0x1f || p.Func > 7 || p.Reg > 0xfff || uint64(p.Reg)+size > 0x1000 {
			return fmt.Errorf("%w: PCI config %02x:%02x.%x reg %#x size %d", cabi.ErrInvalid, p.Bus, p.Dev, p.Func, p.Reg, size)
		}
	default:
		return fmt.Errorf("%w: I/O request type %v", cabi.ErrInvalid, r.Type)
	}
	if dir != DirRead && dir != DirWrite {
		return fmt.Errorf("%w: %v request direction %v", cabi.ErrInvalid, r.Type, dir)
	}
	return nil
}
