package vtd

import "encoding/binary"

// Invalidation descriptor types (VT-d 6.5.2) and wait descriptor fields.
const (
	descContextCache = 1
	descIOTLB        = 2
	descDeviceTLB    = 3
	descIEC          = 4
	descWait         = 5
	waitIF           = 1 << 4 // interrupt flag: ICS.IWC and an invalidation event
	waitSW           = 1 << 5 // status write
	descSize         = 16
)

// runQueue processes the invalidation descriptors from IQH up to IQT. A
// descriptor the unit cannot process stops the queue there with FSTS.IQE
// (IQH then points at it) and a fault event; nothing after it runs until
// software clears IQE and writes IQT again.
func (u *Unit) runQueue() {
	if u.fsts&fstsIQE != 0 {
		return
	}
	entries := uint64(256) << (u.iqa & 7)
	base := u.iqa &^ 0xfff
	if u.iqt>>4 >= entries {
		u.queueError()
		return
	}
	for n := uint64(0); u.iqh != u.iqt && n < entries; n++ {
		if !u.runDescriptor(base + u.iqh) {
			u.queueError()
			return
		}
		u.iqh = (u.iqh + descSize) % (entries * descSize)
	}
}

func (u *Unit) queueError() {
	u.fsts |= fstsIQE
	u.faultEvent()
}

// runDescriptor processes the descriptor at gpa. Invalidations have
// nothing to drop (nothing is cached) and complete at once.
func (u *Unit) runDescriptor(gpa uint64) bool {
	d, err := u.read16(gpa)
	if err != nil {
		u.anomalies.Report("invalidation descriptor outside guest RAM", "gpa", gpa)
		return false
	}
	switch typ := d[0] & 0xf; {
	case d[0]>>9&7 != 0: // type bits 11:9 are for descriptors the unit does not offer
		return false
	case typ == descContextCache || typ == descIOTLB || typ == descIEC:
		return true
	case typ == descWait:
		return u.wait(d)
	default: // device-TLB (no ECAP.DT), PASID and reserved types
		u.anomalies.Report("invalidation descriptor of an unsupported type", "type", typ)
		return false
	}
}

// wait completes an invalidation wait descriptor: with SW, its status data
// (63:32) is written to the status address (127:66, dword-aligned); with
// IF, ICS.IWC is set and an invalidation event raised.
func (u *Unit) wait(d [2]uint64) bool {
	if d[0]&waitSW != 0 {
		var b [4]byte
		binary.LittleEndian.PutUint32(b[:], uint32(d[0]>>32))
		if _, err := u.cfg.Mem.WriteAt(b[:], int64(d[1]&^3)); err != nil {
			u.anomalies.Report("invalidation wait status outside guest RAM", "gpa", d[1]&^3)
			return false
		}
	}
	if d[0]&waitIF != 0 && u.ics&icsIWC == 0 {
		u.ics |= icsIWC
		if u.iectl&ctlIM != 0 {
			u.iectl |= ctlIP
		} else {
			u.send(u.ieaddr, u.iedata)
		}
	}
	return true
}
