package hypercall

import (
	"errors"
	"time"

	"ember/acrn"
	"ember/hypercall/intrmon"
	"ember/kvm"
)

// ioapicPins is the number of GSIs KVM's in-kernel IOAPIC has, the range
// HC_SET_IRQLINE accepts. ACRN's vIOAPIC gives a post-launched VM 48 pins;
// KVM's in-kernel IOAPIC has 24 (KVM_IOAPIC_NUM_PINS), and more would take a
// userspace IOAPIC (KVM's split irqchip) that ember does not have, so GSIs
// 24-47 are -EINVAL (docs/abi.md lists it with ACRN's other differences).
const ioapicPins = 24

// maxIntrDelayMs bounds INTR_CMD_DELAY_INT: a minute.
const maxIntrDelayMs = 60_000

// msiSource is the interrupt-monitor source of an MSI with vector v.
func msiSource(v uint8) uint32 { return 0x10000 | uint32(v) }

// raise is what both interrupt hypercalls end with: -ENODEV for a VM without
// the in-kernel irqchip, else the source counted (unless count is false: a
// line set low raises nothing) and f injected, now or after the delay
// INTR_CMD_DELAY_INT set (intrmon.Monitor.Inject): -EINVAL if KVM refuses,
// -EBUSY if too many injections are postponed already.
func (e *hcVM) raise(source uint32, count bool, f func() error) acrn.Errno {
	if e.vm.Config().NoIRQChip {
		return acrn.ENODEV
	}
	if count {
		e.intr.Count(source)
	}
	if err := e.intr.Inject(f); errors.Is(err, intrmon.ErrQueueFull) {
		return acrn.EBUSY
	} else if err != nil {
		return acrn.EINVAL
	}
	return 0
}

// hcSetIRQLine is HC_SET_IRQLINE: param1 is the target VM ID, param2 an
// acrn_irqline_ops by value (GSI in the low half, operation in the high).
// The four GSI operations drive the in-kernel IOAPIC/PIC line: set high,
// set low, raising pulse (high then low), falling pulse (low then high).
func hcSetIRQLine(c *call, e *hcVM) acrn.Errno {
	ops := acrn.IRQLineOpsFromParam(c.p2)
	if ops.GSI >= ioapicPins || ops.Op > acrn.GSIFallingPulse {
		return acrn.EINVAL
	}
	levels := map[uint32][]bool{
		acrn.GSISetHigh:      {true},
		acrn.GSISetLow:       {false},
		acrn.GSIRaisingPulse: {true, false},
		acrn.GSIFallingPulse: {false, true},
	}[ops.Op]
	return e.raise(ops.GSI, ops.Op != acrn.GSISetLow, func() error {
		for _, l := range levels {
			if err := e.vm.IRQLine(ops.GSI, l); err != nil {
				return err
			}
		}
		return nil
	})
}

// hcInjectMSI is HC_INJECT_MSI: param1 is the target VM ID, param2 the GPA
// of an acrn_msi_entry, delivered with KVM_SIGNAL_MSI. The address must be
// in the 0xFEExxxxx window and the data fit in 32 bits.
func hcInjectMSI(c *call, e *hcVM) acrn.Errno {
	var m acrn.MSIEntry
	if r := c.read(c.p2, &m); r != 0 {
		return r
	}
	if uint32(m.MSIAddr)>>20 != 0xFEE || m.MSIData>>32 != 0 {
		return acrn.EINVAL
	}
	msi := kvm.MSI{AddressLo: uint32(m.MSIAddr), AddressHi: uint32(m.MSIAddr >> 32), Data: uint32(m.MSIData)}
	return e.raise(msiSource(uint8(m.MSIData)), true, func() error { return e.vm.SignalMSI(msi) })
}

// hcVMIntrMonitor is HC_VM_INTR_MONITOR: param1 is the target VM ID, param2
// the GPA of an acrn_intr_monitor. INTR_CMD_GET_DATA fills the buffer with
// (source, count) pairs of the interrupts ember injected into the VM — the
// source is the GSI for IRQ lines and 0x10000|vector for MSIs — at most
// buf_cnt/2 of them, and sets buf_cnt to the number of words written.
// INTR_CMD_DELAY_INT delays later injections by buffer[0] ms (0 cancels).
func hcVMIntrMonitor(c *call, e *hcVM) acrn.Errno {
	var m acrn.IntrMonitor
	if r := c.read(c.p2, &m); r != 0 {
		return r
	}
	switch m.Cmd {
	case acrn.IntrCmdGetData:
		if m.BufCnt > acrn.MaxPtdevNum*2 {
			return acrn.EINVAL
		}
		n := 0
		for _, sc := range e.intr.Counts() {
			if 2*n+1 >= int(m.BufCnt) {
				break
			}
			m.Buffer[2*n], m.Buffer[2*n+1] = uint64(sc.Source), sc.N
			n++
		}
		m.BufCnt = uint32(2 * n)
		return c.write(c.p2, &m)
	case acrn.IntrCmdDelayInt:
		if m.Buffer[0] > maxIntrDelayMs {
			return acrn.EINVAL
		}
		e.intr.SetDelay(time.Duration(m.Buffer[0]) * time.Millisecond)
		return 0
	}
	return acrn.EINVAL
}
