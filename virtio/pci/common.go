package pci

import (
	"fmt"

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
const noVector = 0xffff

// transportFeatures are the feature bits the transport offers on every
// device's behalf: a modern device with indirect descriptors and event
// index suppression.
const transportFeatures = virtio.FeatureVersion1 | virtio.FeatureIndirectDesc | virtio.FeatureEventIdx

// common is the state behind the common configuration structure.
type common struct {
	deviceFeatureSel uint32
	driverFeatureSel uint32
	driverFeatures   uint64
	status           uint8
	generation       uint8
	queueSel         uint16
	configVector     uint16
	isr              uint8
	active           bool // the device was activated (DRIVER_OK)
	queues           []queueRegs
}

// queueRegs is one queue's registers.
type queueRegs struct {
	max, size            uint16
	vector               uint16
	enable               bool
	desc, driver, device uint64
}

// init resets the registers for queues of the given maximum sizes.
func (c *common) init(sizes []uint16) {
	*c = common{configVector: noVector, queues: make([]queueRegs, len(sizes))}
	for i, n := range sizes {
		c.queues[i] = queueRegs{max: n, size: n, vector: noVector}
	}
}

// selected returns the queue queue_select names, or nil.
func (c *common) selected() *queueRegs {
	if int(c.queueSel) < len(c.queues) {
		return &c.queues[c.queueSel]
	}
	return nil
}

// offered returns every feature bit the function offers.
func (f *Function) offered() uint64 { return f.dev.Features() | transportFeatures }

// readCommon reads the common configuration at off.
func (f *Function) readCommon(off uint64, data []byte) {
	f.mu.Lock()
	defer f.mu.Unlock()
	c := &f.regs
	q := c.selected()
	if q == nil {
		q = &queueRegs{vector: noVector}
	}
	var v uint64
	switch off {
	case ccDeviceFeatureSelect:
		v = uint64(c.deviceFeatureSel)
	case ccDeviceFeature:
		if c.deviceFeatureSel < 2 {
			v = f.offered() >> (32 * c.deviceFeatureSel) & 0xffffffff
		}
	case ccDriverFeatureSelect:
		v = uint64(c.driverFeatureSel)
	case ccDriverFeature:
		if c.driverFeatureSel < 2 {
			v = c.driverFeatures >> (32 * c.driverFeatureSel) & 0xffffffff
		}
	case ccConfigMSIXVector:
		v = uint64(c.configVector)
	case ccNumQueues:
		v = uint64(len(c.queues))
	case ccDeviceStatus:
		v = uint64(c.status)
	case ccConfigGeneration:
		v = uint64(c.generation)
	case ccQueueSelect:
		v = uint64(c.queueSel)
	case ccQueueSize:
		v = uint64(q.size)
	case ccQueueMSIXVector:
		v = uint64(q.vector)
	case ccQueueEnable:
		v = boolBit(q.enable)
	case ccQueueNotifyOff:
		v = uint64(c.queueSel)
	case ccQueueDesc, ccQueueDesc + 4:
		v = q.desc >> (8 * (off - ccQueueDesc))
	case ccQueueDriver, ccQueueDriver + 4:
		v = q.driver >> (8 * (off - ccQueueDriver))
	case ccQueueDevice, ccQueueDevice + 4:
		v = q.device >> (8 * (off - ccQueueDevice))
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
	c := &f.regs
	q := c.selected()
	setup := q != nil && !q.enable && c.status&virtio.StatusDriverOK == 0
	switch off {
	case ccDeviceFeatureSelect:
		c.deviceFeatureSel = uint32(v)
	case ccDriverFeatureSelect:
		c.driverFeatureSel = uint32(v)
	case ccDriverFeature:
		if c.driverFeatureSel < 2 && c.status&virtio.StatusFeaturesOK == 0 {
			shift := 32 * c.driverFeatureSel
			c.driverFeatures = c.driverFeatures&^(0xffffffff<<shift) | (v&0xffffffff)<<shift
		}
	case ccConfigMSIXVector:
		c.configVector = f.msix.accept(uint16(v))
	case ccQueueSelect:
		c.queueSel = uint16(v)
	case ccQueueSize:
		if setup {
			q.size = uint16(v)
		}
	case ccQueueMSIXVector:
		if q != nil {
			q.vector = f.msix.accept(uint16(v))
		}
	case ccQueueEnable:
		if q != nil && v == 1 && c.status&virtio.StatusDriverOK == 0 {
			q.enable = true
		}
	case ccQueueDesc, ccQueueDesc + 4:
		if setup {
			q.desc = setHalf(q.desc, off-ccQueueDesc, v, len(data))
		}
	case ccQueueDriver, ccQueueDriver + 4:
		if setup {
			q.driver = setHalf(q.driver, off-ccQueueDriver, v, len(data))
		}
	case ccQueueDevice, ccQueueDevice + 4:
		if setup {
			q.device = setHalf(q.device, off-ccQueueDevice, v, len(data))
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

// writeStatus is a write of device_status: 0 resets the device; FEATURES_OK
// is kept only if the driver accepted VERSION_1 and nothing that was not
// offered; DRIVER_OK activates the device with the enabled queues.
func (f *Function) writeStatus(s uint8) {
	f.lifecycle.Lock()
	defer f.lifecycle.Unlock()
	if s == 0 {
		f.reset()
		return
	}
	f.mu.Lock()
	c := &f.regs
	if s&virtio.StatusFeaturesOK != 0 && c.status&virtio.StatusFeaturesOK == 0 {
		if c.driverFeatures&^f.offered() != 0 || c.driverFeatures&virtio.FeatureVersion1 == 0 {
			s &^= virtio.StatusFeaturesOK // the driver sees it was refused
		}
	}
	activate := s&virtio.StatusDriverOK != 0 && !c.active && s&virtio.StatusFeaturesOK != 0
	c.status = s
	f.mu.Unlock()
	if activate {
		f.activate()
	}
}

// reset stops the device and returns every register to its power-on value.
// The caller holds f.lifecycle.
func (f *Function) reset() {
	f.dev.Reset()
	f.mu.Lock()
	defer f.mu.Unlock()
	f.regs.init(f.dev.QueueSizes())
	if f.cfg.INTx != nil {
		f.cfg.INTx.SetLevel(false)
	}
}

// activate builds the enabled queues, checks them and starts the device;
// a queue outside RAM or a device that fails sets DEVICE_NEEDS_RESET. The
// caller holds f.lifecycle.
func (f *Function) activate() {
	f.mu.Lock()
	features := f.regs.driverFeatures
	queues := make([]*virtio.Queue, len(f.regs.queues))
	var err error
	for i, r := range f.regs.queues {
		if !r.enable {
			continue
		}
		q := &virtio.Queue{Size: r.size, Desc: r.desc, Driver: r.driver, Device: r.device, Ready: true,
			EventIdx: features&virtio.FeatureEventIdx != 0, IndirectDesc: features&virtio.FeatureIndirectDesc != 0}
		if r.size > r.max {
			err = errQueueSize(i, r.size, r.max)
		} else if e := q.Validate(f.cfg.Mem); e != nil && err == nil {
			err = e
		}
		queues[i] = q
	}
	f.mu.Unlock()
	if err == nil {
		err = f.dev.Activate(f.cfg.Mem, features, queues, f.interrupt)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if err != nil {
		f.log.Error("virtio-pci: device not started", "type", f.dev.Type(), "err", err)
		f.needsReset()
		return
	}
	f.regs.active = true
}

// needsReset sets DEVICE_NEEDS_RESET and tells the driver with a
// configuration interrupt. The caller holds f.mu.
func (f *Function) needsReset() {
	f.regs.status |= virtio.StatusDeviceNeedsReset
	f.regs.generation++
	f.raise(f.regs.configVector, 2)
}

// interrupt is the device's callback: queue q has used buffers the driver
// wants to hear of.
func (f *Function) interrupt(q int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if q < 0 || q >= len(f.regs.queues) || !f.regs.active {
		return
	}
	f.raise(f.regs.queues[q].vector, 1)
}

// raise delivers an interrupt: the MSI-X vector when MSI-X is on, else the
// ISR bit (1 for a queue, 2 for configuration) and INTx. The caller holds
// f.mu.
func (f *Function) raise(vector uint16, isrBit uint8) {
	if f.msix.enabled {
		f.msix.signal(vector, f.cfg.MSI, f.log)
		return
	}
	f.regs.isr |= isrBit
	if f.cfg.INTx != nil && f.space[regCommand+1]&(commandNoINTx>>8) == 0 {
		f.cfg.INTx.SetLevel(true)
	}
}

// errQueueSize is a queue size larger than the device's maximum.
func errQueueSize(q int, size, max uint16) error {
	return fmt.Errorf("virtio-pci: queue %d: size %d above the maximum %d", q, size, max)
}
