package hypercall

import (
	"ember/acrn"
	"ember/hypercall/hostinfo"
	"ember/memory"
)

// Passthrough needs VFIO, which ember does not drive: every valid
// passthrough request is recorded (VMStatus.Refused) and answered -ENODEV,
// never a silent success. Invalid requests get -EINVAL first, so a device
// model learns about its own mistakes on any host.

// refuse records a valid passthrough request ember cannot carry out.
func (e *hcVM) refusePassthrough() acrn.Errno {
	e.refused++
	return acrn.ENODEV
}

// deviceRequest is the shape of every device-assignment hypercall ember
// cannot carry out: resolve the target VM (param1), read the request from
// param2 into d (-EFAULT if it is not wholly in the caller's RAM), then answer
// by kind: an assignment that valid accepts is refused with -ENODEV and
// counted, an invalid one gets -EINVAL; an undo (deassign, reset) finds
// nothing to undo, since nothing is ever assigned: -EINVAL.
func deviceRequest(c *call, d acrn.Codec, kind requestKind, valid func() bool) acrn.Errno {
	e, r := c.target(c.p1)
	if r != 0 {
		return r
	}
	defer e.mu.Unlock()
	if r := c.read(c.p2, d); r != 0 {
		return r
	}
	switch {
	case kind == undo:
		return acrn.EINVAL
	case kind == unsupported:
		return acrn.ENODEV
	case !valid():
		return acrn.EINVAL
	}
	return e.refusePassthrough()
}

// requestKind says how deviceRequest answers a readable request.
type requestKind int

const (
	assign      requestKind = iota // validated, then refused: -EINVAL or -ENODEV
	undo                           // nothing to undo: -EINVAL
	unsupported                    // a device kind ember does not emulate: -ENODEV
)

func pciDevValid(d *acrn.PCIDev) bool {
	return d.Type&^acrn.PtdevQuirkAssign == 0 && d.VirtBDF != 0 && d.IntrPin <= 4 && hostinfo.PCIExists(d.PhysBDF)
}

// hcAssignPCIDev is HC_ASSIGN_PCIDEV: param1 is the target VM ID, param2
// the GPA of an acrn_pcidev. Valid (known flags, a virtual BDF other than
// the host bridge's 00:00.0, INTx pin 0-4, a physical function the host has)
// it is refused with -ENODEV: no VFIO passthrough.
func hcAssignPCIDev(c *call) acrn.Errno {
	var d acrn.PCIDev
	return deviceRequest(c, &d, assign, func() bool { return pciDevValid(&d) })
}

// hcDeassignPCIDev is HC_DEASSIGN_PCIDEV: nothing is ever assigned, so a
// valid request finds no device: -EINVAL.
func hcDeassignPCIDev(c *call) acrn.Errno {
	return deviceRequest(c, &acrn.PCIDev{}, undo, nil)
}

// mmioDevValid: at least one resource, each page-aligned and not wrapping.
func mmioDevValid(d *acrn.MMIODev) bool {
	n := 0
	for _, r := range d.Res {
		if r.Size == 0 {
			continue
		}
		const pg = memory.PageSize
		if r.UserVMPA%pg != 0 || r.HostPA%pg != 0 || r.Size%pg != 0 ||
			r.UserVMPA+r.Size < r.UserVMPA || r.HostPA+r.Size < r.HostPA || r.UserVMPA+r.Size > maxGPA {
			return false
		}
		n++
	}
	return n > 0
}

// hcAssignMMIODev is HC_ASSIGN_MMIODEV: param1 is the target VM ID, param2
// the GPA of an acrn_mmiodev. Valid, it is refused with -ENODEV.
func hcAssignMMIODev(c *call) acrn.Errno {
	var d acrn.MMIODev
	return deviceRequest(c, &d, assign, func() bool { return mmioDevValid(&d) })
}

// hcDeassignMMIODev is HC_DEASSIGN_MMIODEV: nothing is assigned: -EINVAL.
func hcDeassignMMIODev(c *call) acrn.Errno {
	return deviceRequest(c, &acrn.MMIODev{}, undo, nil)
}

func ptdevIRQValid(p *acrn.HCPtdevIRQ) bool {
	switch p.Type {
	case acrn.PtdevIRQINTx:
		if p.Intx.PICPin {
			return p.Intx.VirtPin < 16
		}
		return p.Intx.VirtPin < ioapicPins && p.Intx.PhysPin < 256
	case acrn.PtdevIRQMSI, acrn.PtdevIRQMSIX:
		return p.VirtBDF != 0
	}
	return false
}

// hcSetPtdevIntrInfo is HC_SET_PTDEV_INTR_INFO: param1 is the target VM ID,
// param2 the GPA of an hc_ptdev_irq. Valid, it is refused with -ENODEV.
func hcSetPtdevIntrInfo(c *call) acrn.Errno {
	var p acrn.HCPtdevIRQ
	return deviceRequest(c, &p, assign, func() bool { return ptdevIRQValid(&p) })
}

// hcResetPtdevIntrInfo is HC_RESET_PTDEV_INTR_INFO: no mapping is ever set,
// so a valid request finds none: -EINVAL.
func hcResetPtdevIntrInfo(c *call) acrn.Errno {
	return deviceRequest(c, &acrn.HCPtdevIRQ{}, undo, nil)
}

// hcAddVDev is HC_ADD_VDEV: param1 is the target VM ID, param2 the GPA of an
// acrn_vdev. ember's devices are I/O request clients in the device model,
// not in the hypervisor, so it emulates none of ACRN's hypervisor-side
// virtual devices (IVSHMEM, the PTM root port, legacy vUARTs): a readable
// request gets -ENODEV.
func hcAddVDev(c *call) acrn.Errno {
	return deviceRequest(c, &acrn.VDev{}, unsupported, nil)
}

// hcRemoveVDev is HC_REMOVE_VDEV: no virtual device exists: -EINVAL.
func hcRemoveVDev(c *call) acrn.Errno {
	return deviceRequest(c, &acrn.VDev{}, undo, nil)
}
