package pci

import (
	"ember/devices"
	"ember/virtio"
)

// Offsets in struct virtio_pci_common_cfg (virtio 1.2, §4.1.4.3).
const (
	ccDeviceFeatureSelect = 0x00
	ccDeviceFeature       = 0x04
	ccDriverFeatureSelect = 0x08
	ccDriverFeature       = 0x0c
	ccConfigMSIXVector    = 0x10
	ccNumQueues           = 0x12
	ccDeviceStatus        = 0x14
	ccConfigGeneration    = 0x15
	ccQueueSelect         = 0x16
	ccQueueSize           = 0x18
	ccQueueMSIXVector     = 0x1a
	ccQueueEnable         = 0x1c
	ccQueueNotifyOff      = 0x1e
	ccQueueDesc           = 0x20
	ccQueueDriver         = 0x28
	ccQueueDevice         = 0x30
)

// noVector is VIRTIO_MSI_NO_VECTOR.
const noVector = virtio.NoVector

// common is the state behind the common configuration structure: the
// transport-independent registers, and what only virtio-pci has.
type common struct {
	virtio.Regs
	configVector uint16
	isr          uint8
}

// init resets the registers for queues of the given maximum sizes.
func (c *common) init(sizes []uint16) {
	*c = common{configVector: noVector}
	c.Regs.Init(sizes)
}

// offered returns every feature bit the function offers.
func (f *Function) offered() uint64 { return virtio.Offered(f.dev) }

// readCommon reads the common configuration at off.
func (f *Function) readCommon(off uint64, data []byte) {
	f.mu.Lock()
	defer f.mu.Unlock()
	c := &f.regs
	q := c.Selected()
	if q == nil {
		q = &virtio.QueueRegs{Vector: noVector}
	}
	var v uint64
	switch off {
	case ccDeviceFeatureSelect:
		v = uint64(c.DeviceFeatureSel)
	case ccDeviceFeature:
		v = uint64(c.DeviceFeatureWord(f.offered()))
	case ccDriverFeatureSelect:
		v = uint64(c.DriverFeatureSel)
	case ccDriverFeature:
		v = uint64(c.DriverFeatureWord())
	case ccConfigMSIXVector:
		v = uint64(c.configVector)
	case ccNumQueues:
		v = uint64(len(c.Queues))
	case ccDeviceStatus:
		v = uint64(c.Status)
	case ccConfigGeneration:
		v = uint64(c.Generation)
	case ccQueueSelect:
		v = uint64(c.QueueSel)
	case ccQueueSize:
		v = uint64(q.Size)
	case ccQueueMSIXVector:
		v = uint64(q.Vector)
	case ccQueueEnable:
		v = boolBit(q.Enable)
	case ccQueueNotifyOff:
		v = uint64(c.QueueSel)
	case ccQueueDesc, ccQueueDesc + 4:
		v = q.Desc >> (8 * (off - ccQueueDesc))
	case ccQueueDriver, ccQueueDriver + 4:
		v = q.Driver >> (8 * (off - ccQueueDriver))
	case ccQueueDevice, ccQueueDevice + 4:
		v = q.Device >> (8 * (off - ccQueueDevice))
	}
	devices.PutUint(data, v)
}

func boolBit(b bool) uint64 {
	if b {
		return 1
	}
	return 0
}

// writeCommon writes the common configuration at off. Queue registers
// other than enable and the vector change only while the queue is disabled
// and the driver has not set DRIVER_OK (§4.1.4.3.2).
func (f *Function) writeCommon(off uint64, data []byte) {
	v := devices.Uint(data)
	if off == ccDeviceStatus {
		f.writeStatus(uint8(v))
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	defer f.routeCalls() // a queue's vector may have changed
	c := &f.regs
	q, setup := c.Selected(), c.Configurable()
	switch off {
	case ccDeviceFeatureSelect:
		c.DeviceFeatureSel = uint32(v)
	case ccDriverFeatureSelect:
		c.DriverFeatureSel = uint32(v)
	case ccDriverFeature:
		c.SetDriverFeatureWord(uint32(v))
	case ccConfigMSIXVector:
		c.configVector = f.msix.accept(uint16(v))
	case ccQueueSelect:
		c.QueueSel = uint16(v)
	case ccQueueSize:
		if setup != nil {
			setup.Size = uint16(v)
		}
	case ccQueueMSIXVector:
		if q != nil {
			q.Vector = f.msix.accept(uint16(v))
		}
	case ccQueueEnable:
		if q != nil && v == 1 && c.Status&virtio.StatusDriverOK == 0 {
			q.Enable = true
		}
	case ccQueueDesc, ccQueueDesc + 4:
		if setup != nil {
			setup.Desc = setHalf(setup.Desc, off-ccQueueDesc, v, len(data))
		}
	case ccQueueDriver, ccQueueDriver + 4:
		if setup != nil {
			setup.Driver = setHalf(setup.Driver, off-ccQueueDriver, v, len(data))
		}
	case ccQueueDevice, ccQueueDevice + 4:
		if setup != nil {
			setup.Device = setHalf(setup.Device, off-ccQueueDevice, v, len(data))
		}
	}
}

// setHalf writes v (n bytes) into a 64-bit register at byte offset 0 or 4.
func setHalf(reg, off, v uint64, n int) uint64 {
	if n >= 8 {
		return v
	}
	shift := 8 * off
	mask := uint64(1)<<(8*uint(n)) - 1
	return reg&^(mask<<shift) | (v&mask)<<shift
}

// writeStatus is a write of device_status: 0 resets the device; the rest
// is virtio.Regs.WriteStatus, and DRIVER_OK activates the device with the
// enabled queues.
func (f *Function) writeStatus(s uint8) {
	f.lifecycle.Lock()
	defer f.lifecycle.Unlock()
	if s == 0 {
		f.reset()
		return
	}
	f.mu.Lock()
	activate := f.regs.WriteStatus(s, f.offered())
	f.mu.Unlock()
	if activate {
		f.activate()
	}
}

// Reset resets the function as the machine's reset does, before it clears
// guest RAM: what a write of 0 to device_status does (the device stops and
// takes its hands off guest memory, the virtio registers return to their
// power-on values), and the PCI function's own state too: the command
// register, MSI-X disabled with every vector masked and nothing pending,
// every Vector released. The BARs stay where they are, as firmware would
// leave an assignment the next kernel can keep.
func (f *Function) Reset() {
	f.lifecycle.Lock()
	defer f.lifecycle.Unlock()
	f.reset()
	f.mu.Lock()
	defer f.mu.Unlock()
	f.space[regCommand], f.space[regCommand+1] = 0, 0
	f.space[capMSIX+3] = 0 // MSI-X enable and function mask
	f.msix.reset()
}

// Close stops the device and releases the function's Vectors for good; a
// Vector is never made again. The VM's Close calls it, while the VM's
// descriptor is still open.
func (f *Function) Close() {
	f.lifecycle.Lock()
	defer f.lifecycle.Unlock()
	f.stop()
	f.mu.Lock()
	defer f.mu.Unlock()
	f.msix.close()
}

// reset stops the device and returns every register to its power-on value.
// The caller holds f.lifecycle.
func (f *Function) reset() {
	f.stop()
	f.mu.Lock()
	defer f.mu.Unlock()
	f.regs.init(f.dev.QueueSizes())
	if f.cfg.INTx != nil {
		f.cfg.INTx.SetLevel(false)
	}
}

// activate builds the enabled queues, checks them and starts the device;
// a queue outside RAM or a device that fails sets DEVICE_NEEDS_RESET. A
// started device's own eventfds then go to KVM where they can (direct.go).
// The caller holds f.lifecycle.
func (f *Function) activate() {
	err := f.regs.Start(&f.mu, f.cfg.Mem, f.dev, f.interrupt)
	f.mu.Lock()
	if err != nil {
		f.log.Error("virtio-pci: device not started", "type", f.dev.Type(), "err", err)
		f.needsReset()
		f.mu.Unlock()
		return
	}
	f.regs.Active = true
	f.routeCalls()
	f.mu.Unlock()
	f.kickDirect()
}

// needsReset sets DEVICE_NEEDS_RESET and tells the driver with a
// configuration interrupt. The caller holds f.mu.
func (f *Function) needsReset() {
	f.regs.MarkNeedsReset()
	f.raise(f.regs.configVector, 2)
}

// interrupt is the device's callback: queue q has used buffers the driver
// wants to hear of.
func (f *Function) interrupt(q int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if q < 0 || q >= len(f.regs.Queues) || !f.regs.Active {
		return
	}
	f.raise(f.regs.Queues[q].Vector, 1)
}

// raise delivers an interrupt: the MSI-X vector when MSI-X is on, else the
// ISR bit (1 for a queue, 2 for configuration) and INTx. The caller holds
// f.mu.
func (f *Function) raise(vector uint16, isrBit uint8) {
	if f.msix.enabled {
		f.msix.signal(vector)
		return
	}
	f.stats.INTx++
	f.regs.isr |= isrBit
	if f.cfg.INTx != nil && f.space[regCommand+1]&(commandNoINTx>>8) == 0 {
		f.cfg.INTx.SetLevel(true)
	}
}
