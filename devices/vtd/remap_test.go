package vtd

import (
	"errors"
	"testing"
)

// irte is an IRTE's two quads.
type irte [2]uint64

// remappableIRTE is a present, remapped IRTE for vector v to APIC ID dest,
// fixed delivery, physical destination, edge-triggered, checking the
// requester's full source ID against sid.
func remappableIRTE(v, dest uint8, sid uint16) irte {
	return irte{irteP | uint64(v)<<16 | uint64(dest)<<40, uint64(sid) | 1<<18}
}

// msiAddr is a remappable-format MSI address for handle.
func msiAddr(handle uint16) uint64 {
	return msiAddrBase | msiRemappable | uint64(handle&0x7fff)<<5 | uint64(handle>>15)<<2
}

func (tu *testUnit) enableIR(size uint64, cfi bool) {
	tu.W64(regIRTA, irTable|size)
	tu.command(gcmdSIRTP)
	if cfi {
		tu.command(gcmdCFI)
	}
	tu.command(gcmdIRE)
}

func TestRemapMSI(t *testing.T) {
	tests := []struct {
		name    string
		entry   irte
		index   uint64
		src     Source
		msg     Message
		want    Message
		remap   bool
		reason  Reason
		recordF bool
	}{
		{"kvm-unit-tests' MSI: IRTE 2, vector 0xee to APIC 0", remappableIRTE(0xee, 0, testSID), 2, testSID,
			Message{msiAddr(2), 0}, Message{0xfee00000, 0xee}, true, 0, false},
		{"destination, logical mode, redirection hint, lowest priority, level",
			irte{irteP | irteDM | irteRH | irteTM | 1<<5 | 0x31<<16 | 3<<40, 0}, 5, testSID,
			Message{msiAddr(5), 0}, Message{0xfee0300c, 0x31 | 1<<8 | 1<<15 | 1<<14}, true, 0, false},
		{"sub-handle added to the handle", remappableIRTE(0x50, 1, testSID), 7, testSID,
			Message{msiAddr(4) | msiSHV, 3}, Message{0xfee01000, 0x50}, true, 0, false},
		{"an IOAPIC's request skips the source check", remappableIRTE(0xed, 0, testSID), 1, SourceUnknown,
			Message{msiAddr(1), 0}, Message{0xfee00000, 0xed}, true, 0, false},
		{"source ID under the SQ mask (function ignored)", irte{irteP | 0x60<<16, testSID | 1<<18 | 3<<16}, 1, testSID | 5,
			Message{msiAddr(1), 0}, Message{0xfee00000, 0x60}, true, 0, false},
		{"requester bus in the IRTE's bus range", irte{irteP | 0x61<<16, 0x0002 | 2<<18}, 1, 0x0208,
			Message{msiAddr(1), 0}, Message{0xfee00000, 0x61}, true, 0, false},
		{"IRTE not present", irte{0, 0}, 1, testSID, Message{msiAddr(1), 0}, Message{}, false, ReasonIRTENotPresent, true},
		{"IRTE not present, fault processing disabled", irte{irteFPD, 0}, 1, testSID, Message{msiAddr(1), 0}, Message{}, false, ReasonIRTENotPresent, false},
		{"index past the table", remappableIRTE(1, 0, testSID), 1, testSID, Message{msiAddr(300), 0}, Message{}, false, ReasonIRIndex, true},
		{"reserved bits in the IRTE", irte{irteP | 1<<12, 0}, 1, testSID, Message{msiAddr(1), 0}, Message{}, false, ReasonIRTEReserved, true},
		{"a posted IRTE (not offered)", irte{irteP | irteIM, 0}, 1, testSID, Message{msiAddr(1), 0}, Message{}, false, ReasonIRTEReserved, true},
		{"source ID mismatch", remappableIRTE(1, 0, testSID), 1, testSID + 8, Message{msiAddr(1), 0}, Message{}, false, ReasonIRSourceID, true},
		{"address not in the interrupt range", remappableIRTE(1, 0, testSID), 1, testSID,
			Message{0xfed00000 | msiRemappable | 1<<5, 0}, Message{}, false, ReasonIRRequestReserved, true},
		{"a compatibility-format MSI while they are blocked", remappableIRTE(1, 0, testSID), 1, testSID,
			Message{0xfee00000, 0x30}, Message{}, false, ReasonIRCompatBlocked, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tu := newTestUnit(t)
			tu.enableIR(7, false) // 256 entries
			tu.mem.put64(irTable+tt.index*16, tt.entry[0])
			tu.mem.put64(irTable+tt.index*16+8, tt.entry[1])
			got, remapped, err := tu.RemapMSI(tt.src, tt.msg)
			if tt.reason != 0 {
				var f *Fault
				if !errors.As(err, &f) || f.Reason != tt.reason {
					t.Fatalf("err %v, want fault %#x", err, tt.reason)
				}
				hi := tu.R64(regFRCD + 8)
				if recorded := hi&frcdF != 0; recorded != tt.recordF || recorded && Reason(hi>>32) != tt.reason {
					t.Errorf("fault record %#x, want recorded=%v", hi, tt.recordF)
				}
				return
			}
			if err != nil || got != tt.want || remapped != tt.remap {
				t.Fatalf("RemapMSI = %#x, %v, %v; want %#x", got, remapped, err, tt.want)
			}
		})
	}
}

func TestRemapPassesThrough(t *testing.T) {
	tu := newTestUnit(t)
	compat := Message{0xfee01000, 0x40}
	if got, remapped, err := tu.RemapMSI(testSID, compat); err != nil || remapped || got != compat {
		t.Errorf("remapping off: %#x %v %v", got, remapped, err)
	}
	tu.enableIR(0, true)
	if got, remapped, err := tu.RemapMSI(testSID, compat); err != nil || remapped || got != compat {
		t.Errorf("compatibility format with CFIS: %#x %v %v", got, remapped, err)
	}
	tu.W64(regIRTA, 0x7fff_0000_0000)
	tu.command(gcmdSIRTP)
	var f *Fault
	if _, _, err := tu.RemapMSI(testSID, Message{msiAddr(0), 0}); !errors.As(err, &f) || f.Reason != ReasonIRTableAccess {
		t.Errorf("table outside RAM: %v", err)
	}
}

func TestIOAPICMessage(t *testing.T) {
	tests := []struct {
		name string
		rte  uint64
		want Message
	}{
		{"kvm-unit-tests' remappable entry: index 1, vector 0xed, edge", 0xed | 1<<48 | 1<<49, Message{msiAddr(1), 0xed}},
		{"remappable, handle[15] in bit 11, level", 0x33 | 1<<15 | 1<<11 | 1<<48 | 3<<49, Message{msiAddr(0x8003), 0x33 | 1<<15 | 1<<14}},
		{"compatibility: APIC 2, logical, lowest priority", 0x41 | 1<<8 | 1<<11 | 2<<56, Message{0xfee02004, 0x141}},
	}
	for _, tt := range tests {
		if got := IOAPICMessage(tt.rte); got != tt.want {
			t.Errorf("%s: %#x, want %#x", tt.name, got, tt.want)
		}
	}
}

func TestIOAPICEntryThroughTheUnit(t *testing.T) {
	tu := newTestUnit(t)
	tu.enableIR(0xf, false)
	e := remappableIRTE(0xed, 0, testSID) // kvm-unit-tests puts the edu's SID in the IOAPIC's IRTE too
	tu.mem.put64(irTable+16, e[0])
	tu.mem.put64(irTable+24, e[1])
	got, remapped, err := tu.RemapMSI(SourceUnknown, IOAPICMessage(0xed|1<<48|1<<49))
	if err != nil || !remapped || got != (Message{0xfee00000, 0xed}) {
		t.Errorf("%#x %v %v", got, remapped, err)
	}
}
