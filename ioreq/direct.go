package ioreq

import (
	"ember/acrn/iorequest"
	"ember/devices"
)

// DeviceClient returns the in-process client of dev, a register-level device
// claimed at base: a request's value reaches it little-endian in data
// (DeviceHandler). A Dispatcher may also call it without a request
// (Direct), which no one outside the process can tell apart.
func DeviceClient(name string, base uint64, dev devices.Device) Client {
	return &deviceClient{inProcess{name, DeviceHandler(base, dev)}, base, dev}
}

type deviceClient struct {
	inProcess
	base uint64
	dev  devices.Device
}

// Direct performs a guest port (iorequest.ReqPortIO) or MMIO access of len(data)
// bytes at addr on the vCPU's own goroutine without a request, when the
// request path would hand it to an in-process client: a DeviceClient, whose
// device it calls, or the built-in Unclaimed default, which it answers. A
// read fills data; a write consumes it. It reports false, having done
// nothing, for every other access: another client (an out-of-process device
// model or a Service VM sees its requests in the shared buffer, so those
// take Emulate), PCI configuration mechanism #1's ports, or a malformed
// access, which Emulate refuses and logs.
//
// This is the exit path's fast path: what an in-process device sees and
// what the guest gets are the same as through Emulate, but no 256-byte
// request is built, no slot changes state and no value is copied back.
func (d *Dispatcher) Direct(typ iorequest.ReqType, addr uint64, write bool, data []byte) bool {
	size := uint64(len(data))
	switch {
	case size != 1 && size != 2 && size != 4 && size != 8:
		return false
	case typ == iorequest.ReqPortIO && (size == 8 || addr+size > 1<<16 || d.conf1 && addr+size > PCIConfigAddressPort && addr <= PCIConfigDataPort+3):
		return false
	case typ != iorequest.ReqPortIO && typ != iorequest.ReqMMIO:
		return false
	}
	c, n := d.router.lookup(typ, addr, size)
	switch c := c.(type) {
	case *deviceClient:
		n.Add(1)
		if write {
			c.dev.Write(addr-c.base, data)
		} else {
			c.dev.Read(addr-c.base, data)
		}
		return true
	case *Unclaimed:
		n.Add(1)
		c.count(write)
		if !write {
			devices.FillOnes(data)
		}
		return true
	}
	return false
}
