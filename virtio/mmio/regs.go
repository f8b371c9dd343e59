package mmio

import (
	"ember/devices"
	"ember/virtio"
)

// Read reads the register block at off. Registers are 32 bits wide and read
// as such whatever the access size; the device configuration is read with
// the access's own size.
func (t *Transport) Read(off uint64, data []byte) {
	if off >= regConfig {
		t.dev.ReadConfig(off-regConfig, data)
		return
	}
	t.mu.Lock()
	v := t.read32(off &^ 3)
	t.mu.Unlock()
	devices.PutUint(data, uint64(v>>(8*(off&3))))
}

// read32 returns the register at off. The caller holds t.mu.
func (t *Transport) read32(off uint64) uint32 {
	r := &t.regs
	q := r.Selected()
	if q == nil {
		q = &virtio.QueueRegs{}
	}
	switch off {
	case regMagic:
		return magic
	case regVersion:
		return version
	case regDeviceID:
		return uint32(t.dev.Type())
	case regVendorID:
		return vendorID
	case regDeviceFeatures:
		return r.DeviceFeatureWord(virtio.Offered(t.dev))
	case regQueueNumMax:
		return uint32(q.Max)
	case regQueueReady:
		return uint32(boolBit(q.Enable))
	case regInterruptStatus:
		return t.isr
	case regStatus:
		return uint32(r.Status)
	case regShmLenLow, regShmLenHigh:
		return 0xffffffff // no shared memory regions
	case regConfigGeneration:
		return uint32(r.Generation)
	}
	return 0
}

func boolBit(b bool) uint32 {
	if b {
		return 1
	}
	return 0
}

// Write writes a register.
func (t *Transport) Write(off uint64, data []byte) {
	if off >= regConfig {
		t.dev.WriteConfig(off-regConfig, data)
		return
	}
	v := uint32(devices.Uint(data))
	switch off {
	case regStatus:
		t.writeStatus(uint8(v))
	case regQueueNotify:
		t.notify(int(v))
	default:
		t.mu.Lock()
		t.write32(off, v)
		t.mu.Unlock()
	}
}

// write32 writes a register other than the status and the notifier. The
// caller holds t.mu.
func (t *Transport) write32(off uint64, v uint32) {
	r := &t.regs
	q, setup := r.Selected(), r.Configurable()
	switch off {
	case regDeviceFeatSel:
		r.DeviceFeatureSel = v
	case regDriverFeatSel:
		r.DriverFeatureSel = v
	case regDriverFeatures:
		r.SetDriverFeatureWord(v)
	case regQueueSel:
		r.QueueSel = uint16(v)
	case regQueueReady:
		if q != nil && r.Status&virtio.StatusDriverOK == 0 {
			q.Enable = v == 1
		}
	case regInterruptACK:
		t.ack(v)
	}
	if setup == nil {
		return
	}
	switch off {
	case regQueueNum:
		setup.Size = uint16(v)
	case regQueueDescLow, regQueueDescHigh:
		setup.Desc = setWord(setup.Desc, off-regQueueDescLow, v)
	case regQueueDriverLow, regQueueDriverHigh:
		setup.Driver = setWord(setup.Driver, off-regQueueDriverLow, v)
	case regQueueDeviceLow, regQueueDeviceHigh:
		setup.Device = setWord(setup.Device, off-regQueueDeviceLow, v)
	}
}

// setWord sets the low (off 0) or high (off 4) half of a 64-bit register.
func setWord(reg, off uint64, v uint32) uint64 {
	shift := 8 * off
	return reg&^(0xffffffff<<shift) | uint64(v)<<shift
}

// ack clears InterruptStatus bits and lowers the line when none is left.
// An acknowledgement that leaves a bit set (a configuration change that came
// after the driver read InterruptStatus) lowers and raises the line again:
// on a PC the line is an ISA one, which a guest without an ACPI override
// programs edge-triggered, and a line that merely stayed high would never
// interrupt it again. The caller holds t.mu.
func (t *Transport) ack(bits uint32) {
	before := t.isr
	t.isr &^= bits
	if t.cfg.IRQ == nil {
		return
	}
	switch {
	case t.isr == 0:
		t.cfg.IRQ.SetLevel(false)
	case t.isr != before:
		t.cfg.IRQ.SetLevel(false)
		t.cfg.IRQ.SetLevel(true)
	}
}

// raise sets an InterruptStatus bit and the line. The caller holds t.mu.
func (t *Transport) raise(bit uint32) {
	t.isr |= bit
	if t.cfg.IRQ != nil {
		t.cfg.IRQ.SetLevel(true)
	}
}

// notify passes a queue notification to an active device.
func (t *Transport) notify(q int) {
	t.mu.Lock()
	ok := t.regs.Active && q >= 0 && q < len(t.regs.Queues) && t.regs.Queues[q].Enable
	t.mu.Unlock()
	if ok {
		t.dev.Notify(q)
	}
}

// Notify is a write of q to QueueNotify, for a notification that arrives
// some other way (an ioeventfd on NotifyOffset).
func (t *Transport) Notify(q int) { t.notify(q) }

// NotifyOffset is QueueNotify's offset in the register block: every queue
// notifies there, with its index as the value.
const NotifyOffset = regQueueNotify

// writeStatus applies a status write: 0 resets; DRIVER_OK activates.
func (t *Transport) writeStatus(s uint8) {
	t.lifecycle.Lock()
	defer t.lifecycle.Unlock()
	if s == 0 {
		t.dev.Reset()
		t.mu.Lock()
		t.regs.Init(t.dev.QueueSizes())
		t.ack(^uint32(0))
		t.mu.Unlock()
		return
	}
	t.mu.Lock()
	activate := t.regs.WriteStatus(s, virtio.Offered(t.dev))
	t.mu.Unlock()
	if activate {
		t.activate()
	}
}

// activate starts the device with the enabled queues; a bad queue or a
// device that fails sets DEVICE_NEEDS_RESET with a configuration interrupt.
func (t *Transport) activate() {
	err := t.regs.Start(&t.mu, t.cfg.Mem, t.dev, t.interrupt)
	t.mu.Lock()
	defer t.mu.Unlock()
	if err != nil {
		t.log.Error("virtio-mmio: device not started", "type", t.dev.Type(), "err", err)
		t.regs.MarkNeedsReset()
		t.raise(interruptConfig)
		return
	}
	t.regs.Active = true
}

// interrupt is the device's callback: a used buffer notification.
func (t *Transport) interrupt(int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.regs.Active {
		t.raise(interruptUsed)
	}
}

// NumQueues returns the number of the device's queues.
func (t *Transport) NumQueues() int { return len(t.dev.QueueSizes()) }

// Reset resets the transport as the machine's reset does, before it clears
// guest RAM: what a write of 0 to Status does (the device stops and takes
// its hands off guest memory, the registers return to their power-on
// values, the interrupt line goes low). The VM's Close calls it too, to
// stop the device.
func (t *Transport) Reset() { t.writeStatus(0) }
