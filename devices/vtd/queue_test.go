package vtd

import "testing"

// putDesc writes descriptor i of the test queue.
func (tu *testUnit) putDesc(i int, lo, hi uint64) {
	tu.mem.put64(queue+uint64(i)*16, lo)
	tu.mem.put64(queue+uint64(i)*16+8, hi)
}

func waitDesc(flags uint64, status uint32, addr uint64) (uint64, uint64) {
	return descWait | flags | uint64(status)<<32, addr
}

func TestQueuedInvalidationWait(t *testing.T) {
	const status = 0x3000
	tests := []struct {
		name      string
		masked    bool
		wantSent  int
		wantIECTL uint32
	}{
		{"invalidation event unmasked: sent", false, 1, 0},
		{"invalidation event masked: pending", true, 0, ctlIM | ctlIP},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tu := newTestUnit(t)
			tu.W64(regIQA, queue) // 256 descriptors
			tu.command(gcmdQIE)
			tu.W32(regIEDATA, 0x42)
			tu.W32(regIEADDR, 0xfee00000)
			if !tt.masked {
				tu.W32(regIECTL, 0)
			}
			tu.putDesc(0, descContextCache|3<<4, 0)
			tu.putDesc(1, descIOTLB|1<<4, 0)
			tu.putDesc(2, descIEC, 0)
			lo, hi := waitDesc(waitSW|waitIF, 0xfeedf00d, status)
			tu.putDesc(3, lo, hi)
			tu.W64(regIQT, 4<<4)
			if got := tu.mem.get32(status); got != 0xfeedf00d {
				t.Errorf("status word %#x", got)
			}
			if h := tu.R64(regIQH); h != 4<<4 {
				t.Errorf("IQH %#x, want IQT", h)
			}
			if tu.R32(regICS)&icsIWC == 0 {
				t.Error("ICS.IWC clear after a wait with IF")
			}
			if len(tu.sent) != tt.wantSent || tu.R32(regIECTL) != tt.wantIECTL {
				t.Errorf("sent %v, IECTL %#x; want %d sent, IECTL %#x", tu.sent, tu.R32(regIECTL), tt.wantSent, tt.wantIECTL)
			}
			if tu.R32(regFSTS) != 0 {
				t.Errorf("FSTS %#x", tu.R32(regFSTS))
			}
			tu.W32(regICS, icsIWC)
			if tu.R32(regICS) != 0 || tu.R32(regIECTL)&ctlIP != 0 {
				t.Error("ICS.IWC or IECTL.IP not cleared by writing IWC")
			}
		})
	}
}

func TestQueueWrapsAround(t *testing.T) {
	tu := newTestUnit(t)
	tu.W64(regIQA, queue)
	tu.command(gcmdQIE)
	for i := range 256 {
		lo, hi := waitDesc(waitSW, uint32(i), 0x3000)
		tu.putDesc(i, lo, hi)
	}
	tu.W64(regIQT, 250<<4)
	tu.W64(regIQT, 2<<4) // 250..255, then 0 and 1
	if h := tu.R64(regIQH); h != 2<<4 {
		t.Errorf("IQH %#x", h)
	}
	if got := tu.mem.get32(0x3000); got != 1 {
		t.Errorf("last status written %d, want 1", got)
	}
}

func TestQueueErrors(t *testing.T) {
	tests := []struct {
		name     string
		lo, hi   uint64
		tailDesc uint64
	}{
		{"an unknown descriptor type", 0xf, 0, 1},
		{"a device-TLB invalidation (no ECAP.DT)", descDeviceTLB, 0, 1},
		{"a PASID-based descriptor (type bits 11:9)", descIOTLB | 1<<9, 0, 1},
		{"a wait whose status address is not RAM", descWait | waitSW, 0x7fff_0000_0000, 1},
		{"a tail past the queue", descIEC, 0, 256},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tu := newTestUnit(t)
			tu.W64(regIQA, queue)
			tu.command(gcmdQIE)
			tu.W32(regFECTL, 0)
			tu.putDesc(0, tt.lo, tt.hi)
			tu.W64(regIQT, tt.tailDesc<<4)
			if tu.R32(regFSTS)&fstsIQE == 0 {
				t.Fatalf("FSTS %#x: IQE clear", tu.R32(regFSTS))
			}
			if h := tu.R64(regIQH); h != 0 {
				t.Errorf("IQH %#x: should stay at the bad descriptor", h)
			}
			if len(tu.sent) != 1 {
				t.Errorf("fault events sent: %v", tu.sent)
			}
		})
	}
}

func TestQueueOffDoesNothing(t *testing.T) {
	tu := newTestUnit(t)
	tu.W64(regIQA, queue)
	lo, hi := waitDesc(waitSW, 7, 0x3000)
	tu.putDesc(0, lo, hi)
	tu.W64(regIQT, 1<<4)
	if tu.mem.get32(0x3000) != 0 || tu.R64(regIQH) != 0 {
		t.Error("a descriptor ran with queued invalidation off")
	}
}
