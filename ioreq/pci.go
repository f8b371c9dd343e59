package ioreq

import (
	"ember/acrn/iorequest"
	"ember/devices"
)

// PCI configuration mechanism #1 ports.
const (
	PCIConfigAddressPort = 0xcf8 // CONFIG_ADDRESS: the latch
	PCIConfigDataPort    = 0xcfc // CONFIG_DATA: 0xcfc-0xcff, the selected register
)

// ConfigAddress is a value of the CONFIG_ADDRESS latch: enable bit 31, bus
// 23:16, device 15:11, function 10:8, register 7:0. The PCI specification
// makes bits 1:0 zero; QEMU's host bridges keep them and add them to the
// register CONFIG_DATA reaches, and kvm-unit-tests' configuration accessors
// rely on that (they latch an unaligned register and access 0xcfc), so
// ember keeps them too. Drivers that latch aligned registers, as Linux and
// firmware do, see no difference.
type ConfigAddress uint32

// Enabled reports bit 31: without it CONFIG_DATA reaches no function.
func (a ConfigAddress) Enabled() bool { return a&(1<<31) != 0 }

// Bus returns bits 23:16.
func (a ConfigAddress) Bus() uint32 { return uint32(a>>16) & 0xff }

// Dev returns bits 15:11.
func (a ConfigAddress) Dev() uint32 { return uint32(a>>11) & 0x1f }

// Func returns bits 10:8.
func (a ConfigAddress) Func() uint32 { return uint32(a>>8) & 7 }

// Reg returns the register, bits 7:0.
func (a ConfigAddress) Reg() uint32 { return uint32(a) & 0xff }

// PCIConfigRequest turns an access of size bytes to CONFIG_DATA+n (port
// 0xcfc+n) under the latch a into the ACRN PCICFG request: direction, size,
// value, and the bus/device/function and register a selects plus n. It
// returns false if the latch is not enabled, the port is not CONFIG_DATA, or
// the access, with the latch's register bits 1:0 added, runs past the
// dword (past 0xcff); the caller then treats the access as plain port I/O.
func PCIConfigRequest(a ConfigAddress, dir iorequest.Direction, port uint16, size int, value uint32) (iorequest.IORequest, bool) {
	var r iorequest.IORequest
	n := uint32(port) - PCIConfigDataPort
	if !a.Enabled() || port < PCIConfigDataPort || a.Reg()&3+n+uint32(size) > 4 || (size != 1 && size != 2 && size != 4) {
		return r, false
	}
	r.SetPCI(iorequest.PCIRequest{
		Direction: dir,
		Size:      uint64(size),
		Value:     value,
		Bus:       a.Bus(),
		Dev:       a.Dev(),
		Func:      a.Func(),
		Reg:       a.Reg() + n,
	})
	return r, true
}

// pciConf1 handles the conf1 ports for a dispatcher with Config.PCIConf1: a
// 4-byte access to CONFIG_ADDRESS reads or sets the latch (done, no request),
// an access to CONFIG_DATA under an enabled latch is rewritten in place as a
// PCICFG request.
func (d *Dispatcher) pciConf1(req *iorequest.IORequest, p iorequest.PIORequest) (uint64, bool) {
	switch {
	case p.Address == PCIConfigAddressPort && p.Size == 4:
		if p.Direction == iorequest.DirWrite {
			d.latch.Store(p.Value)
			return 0, true
		}
		return uint64(d.latch.Load()), true
	case p.Address >= PCIConfigDataPort && p.Address < PCIConfigDataPort+4:
		polling := req.CompletionPolling
		if r, ok := PCIConfigRequest(ConfigAddress(d.latch.Load()), p.Direction, uint16(p.Address), int(p.Size), p.Value); ok {
			*req = r
			req.CompletionPolling = polling
			req.Processed = iorequest.StatePending
		}
	}
	return 0, false
}

// ConfigSpace is the shape of a PCI host's configuration space (hv.PCIHost
// has it): reads and writes of len(data) bytes at register reg of a function.
type ConfigSpace interface {
	ConfigRead(bus, dev, fn uint8, reg uint16, data []byte)
	ConfigWrite(bus, dev, fn uint8, reg uint16, data []byte)
}

// PCIConfigHandler adapts a ConfigSpace to a Handler of ReqPCICfg requests,
// to be claimed for the PCIAddress range of the functions it serves.
func PCIConfigHandler(cs ConfigSpace) Handler {
	return HandlerFunc(func(req *iorequest.IORequest) {
		p := req.PCI()
		var buf [4]byte
		data := buf[:min(p.Size, 4)]
		bus, dev, fn, reg := uint8(p.Bus), uint8(p.Dev), uint8(p.Func), uint16(p.Reg)
		if p.Direction == iorequest.DirWrite {
			devices.PutUint(data, uint64(p.Value))
			cs.ConfigWrite(bus, dev, fn, reg, data)
			return
		}
		cs.ConfigRead(bus, dev, fn, reg, data)
		SetValue(req, devices.Uint(data))
	})
}
