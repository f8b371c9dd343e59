package vtd

// Source is who made an interrupt request: a PCI function's source ID, or
// SourceUnknown.
type Source int32

// SourceUnknown is the source of a request the unit cannot attribute to a
// requester (an IOAPIC's, here): its IRTE's source-ID check is skipped, as
// QEMU skips it for requests without a requester ID.
const SourceUnknown Source = -1

// Fields of MSI addresses and data and of IRTEs (VT-d chapter 5).
const (
	msiAddrBase    = 0xfee00000
	msiAddrMask    = 0xfff00000
	msiRemappable  = 1 << 4 // interrupt format: remappable
	msiSHV         = 1 << 3 // sub-handle valid
	msiHandle15    = 1 << 2
	irteP          = 1 << 0
	irteFPD        = 1 << 1
	irteDM         = 1 << 2
	irteRH         = 1 << 3
	irteTM         = 1 << 4
	irteLoReserved = 0x7000 | 0xff000000 | 0xffff00ff00000000 // 14:12, 31:24, DST 7:0 and 31:16 in xAPIC mode
	irteIM         = 1 << 15                                  // posted (needs ECAP.PI): unsupported
	irteHiReserved = 0xfffffffffff00000                       // 127:84
	irtaSizeMask   = 0xf
	irteSize       = 16
)

// Remapping reports whether interrupt remapping is on (GSTS.IRES).
func (u *Unit) Remapping() bool {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.gsts&gcmdIRE != 0
}

// RemapMSI translates an interrupt request, the MSI write m from src. With
// remapping off it passes through unchanged. With it on, a remappable-format
// request becomes the compatibility-format message of its IRTE; a
// compatibility-format one passes through while GSTS.CFIS is set and is
// blocked otherwise. A refused request is recorded as a fault (unless its
// IRTE disables fault processing) and returned as a *Fault; remapped
// reports whether m went through an IRTE.
func (u *Unit) RemapMSI(src Source, m Message) (out Message, remapped bool, err error) {
	u.mu.Lock()
	defer u.unlock()
	if u.gsts&gcmdIRE == 0 {
		return m, false, nil
	}
	sid := uint16(max(src, 0))
	if m.Addr&msiRemappable == 0 {
		if u.gsts&gcmdCFI != 0 {
			return m, false, nil
		}
		return Message{}, false, u.record(&Fault{Reason: ReasonIRCompatBlocked, Source: sid}, true)
	}
	index := m.Addr>>5&0x7fff | (m.Addr>>2&1)<<15
	if m.Addr&msiSHV != 0 {
		index += uint64(m.Data & 0xffff)
	}
	fault := func(r Reason, record bool) error {
		return u.record(&Fault{Reason: r, Source: sid, Addr: index}, record)
	}
	if m.Addr>>32 != 0 || m.Addr&msiAddrMask != msiAddrBase {
		return Message{}, false, fault(ReasonIRRequestReserved, true)
	}
	if index >= 2<<(u.irTable&irtaSizeMask) {
		return Message{}, false, fault(ReasonIRIndex, true)
	}
	e, err := u.read16(u.irTable&addrMask + index*irteSize)
	if err != nil {
		return Message{}, false, fault(ReasonIRTableAccess, true)
	}
	record := e[0]&irteFPD == 0
	switch {
	case e[0]&irteP == 0:
		return Message{}, false, fault(ReasonIRTENotPresent, record)
	case e[0]&(irteLoReserved|irteIM) != 0 || e[1]&irteHiReserved != 0 || e[1]>>18&3 == 3:
		return Message{}, false, fault(ReasonIRTEReserved, record)
	case src != SourceUnknown && !sourceValid(e[1], uint16(src)):
		return Message{}, false, fault(ReasonIRSourceID, record)
	}
	return irteMessage(e[0]), true, nil
}

// sourceValid checks sid against an IRTE's high quad: SVT (83:82) 0 checks
// nothing, 1 compares SID (79:64) under the SQ (81:80) mask of function
// bits, 2 requires the requester's bus within SID's bus range.
func sourceValid(hi uint64, sid uint16) bool {
	want := uint16(hi)
	switch hi >> 18 & 3 {
	case 1:
		mask := [4]uint16{0xffff, 0xfffb, 0xfff9, 0xfff8}[hi>>16&3]
		return sid&mask == want&mask
	case 2:
		bus := sid >> 8
		return bus >= want>>8 && bus <= want&0xff
	}
	return true
}

// irteMessage is the compatibility-format message an IRTE's low quad
// stands for: xAPIC destination DST[15:8], its destination mode and
// redirection hint in the address; vector, delivery mode and trigger mode
// (with the level asserted for a level-triggered one) in the data.
func irteMessage(lo uint64) Message {
	addr := uint64(msiAddrBase) | (lo>>40&0xff)<<12
	if lo&irteRH != 0 {
		addr |= 1 << 3
	}
	if lo&irteDM != 0 {
		addr |= 1 << 2
	}
	data := uint32(lo>>16&0xff) | uint32(lo>>5&7)<<8
	if lo&irteTM != 0 {
		data |= 1<<15 | 1<<14
	}
	return Message{Addr: addr, Data: data}
}

// IOAPICMessage is the interrupt request an IOAPIC makes for a redirection
// table entry: for a remappable-format entry (bit 48) a remappable-format
// MSI with the entry's handle (bits 63:49, and 11 for handle[15]) and no
// sub-handle, whose data carries the entry's vector and trigger mode; for a
// compatibility-format entry the compatibility-format MSI of its
// destination (63:56), destination mode (11), vector, delivery mode and
// trigger mode.
func IOAPICMessage(rte uint64) Message {
	data := uint32(rte & 0xff)
	if rte&(1<<15) != 0 {
		data |= 1<<15 | 1<<14
	}
	if rte&(1<<48) != 0 {
		addr := uint64(msiAddrBase) | msiRemappable | (rte>>49&0x7fff)<<5
		if rte&(1<<11) != 0 {
			addr |= msiHandle15
		}
		return Message{Addr: addr, Data: data}
	}
	data |= uint32(rte>>8&7) << 8
	addr := uint64(msiAddrBase) | (rte>>56)<<12
	if rte&(1<<11) != 0 {
		addr |= 1 << 2
	}
	return Message{Addr: addr, Data: data}
}
