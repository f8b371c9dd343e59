package vtd

import (
	"errors"
	"testing"
)

func TestCapabilitiesAsKVMUnitTestsChecksThem(t *testing.T) {
	tu := newTestUnit(t)
	if v := tu.R32(regVER); v>>4&0xf < 1 {
		t.Errorf("VER %#x: major version < 1", v)
	}
	cap := tu.R64(regCAP)
	for _, c := range []struct {
		name string
		bits uint64
	}{
		{"SAGAW 39-bit (3-level)", 0x2 << 8},
		{"SAGAW 48-bit (4-level)", 0x4 << 8},
		{"2 MiB super pages", 1 << 34},
		{"1 GiB super pages", 1 << 35},
	} {
		if cap&c.bits != c.bits {
			t.Errorf("CAP %#x lacks %s", cap, c.name)
		}
	}
	if fro := cap >> 24 & 0x3ff * 16; fro != regFRCD {
		t.Errorf("CAP.FRO points at %#x, want %#x", fro, regFRCD)
	}
	ecap := tu.R64(regECAP)
	if ecap&(ecapQI|ecapIR) != ecapQI|ecapIR {
		t.Errorf("ECAP %#x lacks QI or IR", ecap)
	}
	if lo, hi := tu.R32(regCAP), tu.R32(regCAP+4); uint64(hi)<<32|uint64(lo) != cap {
		t.Errorf("CAP read as two dwords: %#x %#x", hi, lo)
	}
}

func TestGlobalCommandOneBitAtATime(t *testing.T) {
	tu := newTestUnit(t)
	tu.W64(regRTADDR, rootTable)
	tu.W64(regIRTA, irTable|0xf)
	steps := []struct {
		name string
		bit  uint32
		want uint32 // GSTS after
	}{
		{"enable queued invalidation", gcmdQIE, gcmdQIE},
		{"set the root table pointer", gstsRTPS, gcmdQIE | gstsRTPS},
		{"set the interrupt remapping table pointer", gcmdSIRTP, gcmdQIE | gstsRTPS | gcmdSIRTP},
		{"enable DMA remapping", gcmdTE, gcmdQIE | gstsRTPS | gcmdSIRTP | gcmdTE},
		{"enable interrupt remapping", gcmdIRE, gcmdQIE | gstsRTPS | gcmdSIRTP | gcmdTE | gcmdIRE},
	}
	for _, s := range steps {
		tu.command(s.bit)
		if got := tu.R32(regGSTS); got != s.want {
			t.Fatalf("%s: GSTS %#x, want %#x", s.name, got, s.want)
		}
	}
	if v := tu.R32(regGCMD); v != 0 {
		t.Errorf("GCMD reads %#x, want 0", v)
	}
	if tu.R32(regFSTS) != 0 {
		t.Errorf("FSTS %#x after initialisation", tu.R32(regFSTS))
	}
	tu.W32(regGCMD, tu.R32(regGSTS)&^gcmdIRE)
	if tu.R32(regGSTS)&gcmdIRE != 0 {
		t.Error("IRE cleared in GCMD: IRES still set")
	}
	if tu.Remapping() {
		t.Error("Remapping() true after IRE cleared")
	}
}

func TestReset(t *testing.T) {
	tu := newTestUnit(t)
	tu.mapTables(1, 0, 0)
	tu.Translate(testSID, 0, false) // a fault on record
	tu.Reset()
	if tu.R32(regGSTS) != 0 || tu.R32(regFSTS) != 0 || tu.R64(regRTADDR) != 0 || tu.R32(regFECTL) != ctlIM {
		t.Errorf("after reset: GSTS %#x FSTS %#x RTADDR %#x FECTL %#x", tu.R32(regGSTS), tu.R32(regFSTS), tu.R64(regRTADDR), tu.R32(regFECTL))
	}
	tu.command(gcmdQIE) // still usable
	if tu.R32(regGSTS) != gcmdQIE {
		t.Error("the unit does not take commands after a reset")
	}
}

func TestRegisterHalvesMerge(t *testing.T) {
	tu := newTestUnit(t)
	tu.W32(regRTADDR, 0x12345000)
	tu.W32(regRTADDR+4, 0x1)
	if got := tu.R64(regRTADDR); got != 0x1_12345000 {
		t.Errorf("RTADDR %#x", got)
	}
	tu.W64(regCCMD, 1<<63|1<<61) // global invalidation
	if got := tu.R64(regCCMD); got&(1<<63) != 0 || got>>59&3 != 1 {
		t.Errorf("CCMD %#x: ICC still set or CAIG not global", got)
	}
	tu.W64(regIOTLB, 1<<63|2<<60) // domain-selective
	if got := tu.R64(regIOTLB); got&(1<<63) != 0 || got>>57&3 != 2 {
		t.Errorf("IOTLB %#x: IVT still set or IAIG not domain-selective", got)
	}
	var b [2]byte
	tu.Read(regFSTS, b[:])
	if b != [2]byte{0xff, 0xff} {
		t.Errorf("2-byte read: %x, want all ones", b)
	}
	tu.Write(regVER, []byte{1, 2, 3, 4}) // read-only: ignored
	if tu.R32(regVER) != version {
		t.Error("VER changed by a write")
	}
}

func TestTranslate(t *testing.T) {
	tests := []struct {
		name   string
		aw     uint64 // context address width: 1 = 3 levels, 2 = 4 levels
		leaf   int
		iova   uint64
		target uint64
		perm   uint64
		write  bool
		gpa    uint64
		n      uint64
	}{
		{"3-level 4 KiB page, read", 1, 1, 0, dataPage, pteR | pteW, false, dataPage, 0x1000},
		{"3-level 4 KiB page, write at an offset", 1, 1, 0x5010, dataPage, pteR | pteW, true, dataPage + 0x10, 0xff0},
		{"4-level 4 KiB page", 2, 1, 0x80_0000_3000, dataPage, pteR, false, dataPage, 0x1000},
		{"2 MiB super page", 1, 2, 0x4012_3456, 0x200000, pteR | pteW, true, 0x323456, 0x200000 - 0x123456},
		{"1 GiB super page", 1, 3, 0x8000_1000, 0x4000_0000, pteR, false, 0x4000_1000, 0x4000_0000 - 0x1000},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tu := newTestUnit(t)
			levels := 2 + int(tt.aw)
			tu.mapTables(tt.aw, 0, 0)
			tu.mapPage(levels, tt.leaf, tt.iova, tt.target, tt.perm)
			gpa, n, err := tu.Translate(testSID, tt.iova, tt.write)
			if err != nil || gpa != tt.gpa || n != tt.n {
				t.Fatalf("Translate = %#x, %#x, %v; want %#x, %#x", gpa, n, err, tt.gpa, tt.n)
			}
			if tu.R32(regFSTS) != 0 {
				t.Errorf("FSTS %#x after a good translation", tu.R32(regFSTS))
			}
		})
	}
}

func TestTranslateOffAndPassThrough(t *testing.T) {
	tu := newTestUnit(t)
	if gpa, n, err := tu.Translate(testSID, 0x1234, true); err != nil || gpa != 0x1234 || n != 0x1000-0x234 {
		t.Errorf("translation off: %#x %#x %v", gpa, n, err)
	}
	tu.mapTables(1, ttPassThru<<2, 0)
	if gpa, _, err := tu.Translate(testSID, 0x5678, false); err != nil || gpa != 0x5678 {
		t.Errorf("pass-through context: %#x %v", gpa, err)
	}
}

func TestTranslationFaults(t *testing.T) {
	tests := []struct {
		name   string
		setup  func(tu *testUnit)
		iova   uint64
		write  bool
		reason Reason
	}{
		{"root entry not present", func(tu *testUnit) {
			tu.mapTables(1, 0, 0)
			tu.mem.put64(rootTable+uint64(testSID>>8)*16, 0)
		}, 0, false, ReasonRootNotPresent},
		{"context entry not present", func(tu *testUnit) {
			tu.mapTables(1, 0, 0)
			tu.mem.put64(ctxTable+uint64(testSID&0xff)*16, 0)
		}, 0, false, ReasonContextNotPresent},
		{"an address width not offered", func(tu *testUnit) { tu.mapTables(3, 0, 0) }, 0, false, ReasonContextInvalid},
		{"an address past the 39-bit width", func(tu *testUnit) { tu.mapTables(1, 0, 0) }, 1 << 39, false, ReasonBeyondAGAW},
		{"a write to a read-only page", func(tu *testUnit) {
			tu.mapTables(1, 0, 0)
			tu.mapPage(3, 1, 0, dataPage, pteR)
		}, 0, true, ReasonWrite},
		{"a read of an unmapped page", func(tu *testUnit) { tu.mapTables(1, 0, 0) }, 0x7000, false, ReasonRead},
		{"a paging entry outside RAM", func(tu *testUnit) {
			tu.mapTables(1, 0, 0)
			tu.mem.put64(l4Table, 0x7fff_0000_0000|pteR|pteW)
		}, 0, false, ReasonPagingAccess},
		{"the root table outside RAM", func(tu *testUnit) {
			tu.W64(regRTADDR, 0x7fff_0000_0000)
			tu.command(gstsRTPS)
			tu.command(gcmdTE)
		}, 0, false, ReasonRootAccess},
		{"a context entry outside RAM", func(tu *testUnit) {
			tu.mapTables(1, 0, 0)
			tu.mem.put64(rootTable+uint64(testSID>>8)*16, 0x7fff_0000_0000|entryP)
		}, 0, false, ReasonContextAccess},
		{"a reserved bit in the root entry", func(tu *testUnit) {
			tu.mapTables(1, 0, 0)
			tu.mem.put64(rootTable+uint64(testSID>>8)*16, ctxTable|entryP|1<<5)
		}, 0, false, ReasonRootReserved},
		{"a reserved bit in the context entry", func(tu *testUnit) { tu.mapTables(1, 0, 1<<7) }, 0, false, ReasonContextReserved},
		{"a reserved bit in a paging entry", func(tu *testUnit) {
			tu.mapTables(1, 0, 0)
			tu.mapPage(3, 1, 0, dataPage|1<<60, pteR)
		}, 0, false, ReasonPagingReserved},
		{"a super page at level 4", func(tu *testUnit) {
			tu.mapTables(2, 0, 0)
			tu.mem.put64(l4Table, pteR|pteW|ptePS)
		}, 0, false, ReasonPagingReserved},
		{"translation type reserved", func(tu *testUnit) { tu.mapTables(1, 3<<2, 0) }, 0, false, ReasonTranslationType},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tu := newTestUnit(t)
			tt.setup(tu)
			_, _, err := tu.Translate(testSID, tt.iova, tt.write)
			var f *Fault
			if !errors.As(err, &f) || f.Reason != tt.reason {
				t.Fatalf("err %v, want fault reason %#x", err, tt.reason)
			}
			if fsts := tu.R32(regFSTS); fsts&fstsPPF == 0 {
				t.Errorf("FSTS %#x: PPF clear", fsts)
			}
			lo, hi := tu.R64(regFRCD), tu.R64(regFRCD+8)
			if hi&frcdF == 0 || Reason(hi>>32) != tt.reason || uint16(hi) != testSID || lo != tt.iova&^0xfff {
				t.Errorf("fault record %#x %#x", hi, lo)
			}
			if read := hi&(1<<62) != 0; read == tt.write {
				t.Errorf("fault record type: read %v for a write %v", read, tt.write)
			}
		})
	}
}

func TestFaultRecording(t *testing.T) {
	tu := newTestUnit(t)
	tu.mapTables(1, 0, 0)
	tu.W32(regFEDATA, 0x41)
	tu.W64(regFEADDR, 0xfee00000)
	if _, _, err := tu.Translate(testSID, 0, false); err == nil {
		t.Fatal("unmapped page translated")
	}
	if len(tu.sent) != 0 || tu.R32(regFECTL)&ctlIP == 0 {
		t.Fatalf("masked fault event: sent %v, FECTL %#x", tu.sent, tu.R32(regFECTL))
	}
	tu.W32(regFECTL, 0) // unmask: the pending event goes out
	if len(tu.sent) != 1 || tu.sent[0] != (Message{0xfee00000, 0x41}) {
		t.Fatalf("after unmasking: sent %v", tu.sent)
	}
	tu.Translate(testSID, 0x1000, false) // the record is full: overflow
	if fsts := tu.R32(regFSTS); fsts&fstsPFO == 0 {
		t.Errorf("second fault: FSTS %#x without PFO", fsts)
	}
	tu.W64(regFRCD+8, frcdF) // software frees the record
	tu.W32(regFSTS, fstsPFO)
	if fsts := tu.R32(regFSTS); fsts != 0 {
		t.Errorf("FSTS %#x after clearing", fsts)
	}
	tu.Translate(testSID, 0x2000, true)
	if hi := tu.R64(regFRCD + 8); Reason(hi>>32) != ReasonWrite || tu.R64(regFRCD) != 0x2000 {
		t.Errorf("third fault not recorded: %#x", hi)
	}
}

func TestFaultProcessingDisabled(t *testing.T) {
	tu := newTestUnit(t)
	tu.mapTables(1, ctxFPD, 0)
	if _, _, err := tu.Translate(testSID, 0, false); err == nil {
		t.Fatal("unmapped page translated")
	}
	if tu.R32(regFSTS) != 0 || tu.R64(regFRCD+8) != 0 {
		t.Errorf("fault recorded with FPD: FSTS %#x", tu.R32(regFSTS))
	}
}

func TestDMAAcrossPages(t *testing.T) {
	tu := newTestUnit(t)
	tu.mapTables(1, 0, 0)
	tu.mapPage(3, 1, 0x0000, 0x200000, pteR|pteW)
	tu.mapPage(3, 1, 0x1000, 0x300000, pteR|pteW)
	if err := tu.DMAWrite(testSID, 0xffe, []byte{1, 2, 3, 4}); err != nil {
		t.Fatal(err)
	}
	if got := tu.mem[0x200ffe:0x201000]; got[0] != 1 || got[1] != 2 || tu.mem[0x300000] != 3 || tu.mem[0x300001] != 4 {
		t.Errorf("bytes not where the pages map: % x % x", got, tu.mem[0x300000:0x300002])
	}
	p := make([]byte, 4)
	if err := tu.DMARead(testSID, 0xffe, p); err != nil || p[3] != 4 {
		t.Errorf("read back % x, %v", p, err)
	}
	tu.mapPage(3, 1, 0x2000, 0x7f00_0000, pteR|pteW)
	if err := tu.DMARead(testSID, 0x2000, p); !errors.Is(err, ErrNotRAM) {
		t.Errorf("DMA to a page that is not RAM: %v", err)
	}
}
