package iorequest

import (
	"encoding/binary"
	"errors"
	"testing"

	"ember/acrn"
)

func TestStateString(t *testing.T) {
	tests := []struct {
		s     State
		name  string
		valid bool
	}{
		{StatePending, "PENDING", true},
		{StateComplete, "COMPLETE", true},
		{StateProcessing, "PROCESSING", true},
		{StateFree, "FREE", true},
		{State(4), "State(4)", false},
	}
	for _, tt := range tests {
		if got := tt.s.String(); got != tt.name {
			t.Errorf("State(%d).String() = %q, want %q", uint32(tt.s), got, tt.name)
		}
		if got := tt.s.Valid(); got != tt.valid {
			t.Errorf("State(%d).Valid() = %v, want %v", uint32(tt.s), got, tt.valid)
		}
	}
}

func TestReqTypeAndDirectionString(t *testing.T) {
	types := map[ReqType]string{ReqPortIO: "PORTIO", ReqMMIO: "MMIO", ReqPCICfg: "PCICFG", ReqWP: "WP", 9: "ReqType(9)"}
	for v, want := range types {
		if got := v.String(); got != want {
			t.Errorf("ReqType(%d).String() = %q, want %q", uint32(v), got, want)
		}
	}
	dirs := map[Direction]string{DirRead: "READ", DirWrite: "WRITE", 2: "Direction(2)"}
	for v, want := range dirs {
		if got := v.String(); got != want {
			t.Errorf("Direction(%d).String() = %q, want %q", uint32(v), got, want)
		}
	}
}

func TestRequestBufferOffsets(t *testing.T) {
	if RequestBufferSize != 4096 || IORequestMax != 16 || IORequestSize != 256 {
		t.Fatalf("buffer %d bytes of %d slots of %d, want 4096 = 16 * 256", RequestBufferSize, IORequestMax, IORequestSize)
	}
	tests := []struct{ slot, off, state int }{
		{0, 0, 136},
		{1, 256, 392},
		{15, 3840, 3976},
	}
	for _, tt := range tests {
		if got := SlotOffset(tt.slot); got != tt.off {
			t.Errorf("SlotOffset(%d) = %d, want %d", tt.slot, got, tt.off)
		}
		if got := SlotStateOffset(tt.slot); got != tt.state {
			t.Errorf("SlotStateOffset(%d) = %d, want %d", tt.slot, got, tt.state)
		}
		if SlotStateOffset(tt.slot)%4 != 0 {
			t.Errorf("slot %d state is not 4-byte aligned", tt.slot)
		}
	}
	for _, bad := range []int{-1, 16, 1 << 20} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("SlotOffset(%d) did not panic", bad)
				}
			}()
			SlotOffset(bad)
		}()
	}
}

// TestIORequestWireLayout builds requests the way the hypervisor does and
// checks the bytes a device model written against the C header would read.
func TestIORequestWireLayout(t *testing.T) {
	var r IORequest
	r.SetPIO(PIORequest{Direction: DirWrite, Address: 0x3f8, Size: 1, Value: 'A'})
	r.KernelHandled = 1
	r.Processed = StatePending
	b := acrn.Marshal(&r)
	u32 := func(off int) uint32 { return binary.LittleEndian.Uint32(b[off:]) }
	u64 := func(off int) uint64 { return binary.LittleEndian.Uint64(b[off:]) }
	if u32(0) != uint32(ReqPortIO) {
		t.Errorf("type = %d", u32(0))
	}
	if u32(ReqsOffset) != uint32(DirWrite) || u64(ReqsOffset+8) != 0x3f8 || u64(ReqsOffset+16) != 1 || u32(ReqsOffset+24) != 'A' {
		t.Errorf("reqs.pio_request = % x", b[ReqsOffset:ReqsOffset+PIORequestSize])
	}
	if u32(KernelHandledOffset) != 1 || u32(StateOffset) != uint32(StatePending) {
		t.Errorf("kernel_handled = %d, processed = %d", u32(KernelHandledOffset), u32(StateOffset))
	}

	r.SetMMIO(MMIORequest{Direction: DirRead, Address: 0xfee00000, Size: 8, Value: 0x1122334455667788})
	b = acrn.Marshal(&r)
	if u32(0) != uint32(ReqMMIO) || u64(ReqsOffset+8) != 0xfee00000 || u64(ReqsOffset+24) != 0x1122334455667788 {
		t.Errorf("MMIO request bytes = % x", b[:ReqsOffset+MMIORequestSize])
	}

	r.SetPCI(PCIRequest{Direction: DirRead, Size: 4, Bus: 0, Dev: 3, Func: 1, Reg: 0x10})
	b = acrn.Marshal(&r)
	if u32(0) != uint32(ReqPCICfg) || u64(ReqsOffset+16) != 4 || u32(ReqsOffset+32) != 3 || u32(ReqsOffset+36) != 1 || u32(ReqsOffset+40) != 0x10 {
		t.Errorf("PCI request bytes = % x", b[ReqsOffset:ReqsOffset+PCIRequestSize])
	}
	if got := r.PCI(); got.Dev != 3 || got.Reg != 0x10 {
		t.Errorf("PCI() = %+v", got)
	}
}

// TestSetUnionClearsStaleBytes checks that switching the union member leaves
// nothing of the previous, larger member behind.
func TestSetUnionClearsStaleBytes(t *testing.T) {
	var r IORequest
	r.SetPCI(PCIRequest{Direction: DirWrite, Size: 4, Value: 0xffffffff, Bus: 0xff, Dev: 0x1f, Func: 7, Reg: 0xffc})
	r.SetPIO(PIORequest{Direction: DirRead, Address: 0x60, Size: 1})
	for i, c := range r.Reqs[28:] {
		if c != 0 {
			t.Fatalf("reqs byte %d = %#x after SetPIO, want 0", 28+i, c)
		}
	}
}

// TestEncodeBodyLeavesState checks that EncodeBody writes every byte but the
// state, the field the other party may be reading concurrently.
func TestEncodeBodyLeavesState(t *testing.T) {
	b := make([]byte, IORequestSize)
	for i := range b {
		b[i] = 0xEE
	}
	r := IORequest{Processed: StateFree}
	r.SetMMIO(MMIORequest{Direction: DirWrite, Address: 0x1000, Size: 4, Value: 7})
	if err := r.EncodeBody(b); err != nil {
		t.Fatal(err)
	}
	if got := binary.LittleEndian.Uint32(b[StateOffset:]); got != 0xEEEEEEEE {
		t.Errorf("EncodeBody changed the state field to %#x", got)
	}
	for i, c := range b {
		if (i < StateOffset || i >= StateOffset+4) && c == 0xEE {
			t.Fatalf("EncodeBody left byte %d unwritten", i)
		}
	}
	if err := r.EncodeBody(b[:IORequestSize-1]); !errors.Is(err, acrn.ErrShortBuffer) {
		t.Errorf("EncodeBody(255 bytes) = %v, want ErrShortBuffer", err)
	}
}

func TestIORequestValidate(t *testing.T) {
	pio := func(dir Direction, port, size uint64) IORequest {
		var r IORequest
		r.SetPIO(PIORequest{Direction: dir, Address: port, Size: size})
		return r
	}
	mmio := func(typ ReqType, dir Direction, addr, size uint64) IORequest {
		var r IORequest
		r.SetMMIO(MMIORequest{Direction: dir, Address: addr, Size: size})
		r.Type = typ
		return r
	}
	pci := func(bus, dev, fn, reg uint32, size uint64) IORequest {
		var r IORequest
		r.SetPCI(PCIRequest{Direction: DirRead, Bus: bus, Dev: dev, Func: fn, Reg: reg, Size: size})
		return r
	}
	withState := func(r IORequest, s State) IORequest { r.Processed = s; return r }
	tests := []struct {
		name string
		req  IORequest
		ok   bool
	}{
		{"PIO write 1 byte to 0x3f8", pio(DirWrite, 0x3f8, 1), true},
		{"PIO read 4 bytes from 0xcfc", pio(DirRead, 0xcfc, 4), true},
		{"PIO read 2 bytes from 0xfffe", pio(DirRead, 0xfffe, 2), true},
		{"PIO read 4 bytes from 0xfffe crosses 64K", pio(DirRead, 0xfffe, 4), false},
		{"PIO to port 0x10000", pio(DirWrite, 0x10000, 1), false},
		{"PIO of 8 bytes", pio(DirWrite, 0x80, 8), false},
		{"PIO of 3 bytes", pio(DirWrite, 0x80, 3), false},
		{"PIO direction 2", pio(2, 0x80, 1), false},
		{"MMIO read 8 bytes", mmio(ReqMMIO, DirRead, 0xfee00000, 8), true},
		{"MMIO write 0 bytes", mmio(ReqMMIO, DirWrite, 0xfee00000, 0), false},
		{"MMIO of 16 bytes", mmio(ReqMMIO, DirWrite, 0xfee00000, 16), false},
		{"WP write 4 bytes", mmio(ReqWP, DirWrite, 0x100000, 4), true},
		{"WP read", mmio(ReqWP, DirRead, 0x100000, 4), false},
		{"PCI config read 00:1f.7 reg 0xffc", pci(0, 0x1f, 7, 0xffc, 4), true},
		{"PCI config read bus 256", pci(0x100, 0, 0, 0, 4), false},
		{"PCI config read device 32", pci(0, 0x20, 0, 0, 4), false},
		{"PCI config read function 8", pci(0, 0, 8, 0, 4), false},
		{"PCI config read past 4 KiB", pci(0, 0, 0, 0xffe, 4), false},
		{"PCI config read of 8 bytes", pci(0, 0, 0, 0, 8), false},
		{"unknown type 4", IORequest{Type: 4}, false},
		{"state PROCESSING", withState(pio(DirRead, 0x60, 1), StateProcessing), true},
		{"state 7", withState(pio(DirRead, 0x60, 1), 7), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.req.Validate()
			if tt.ok && err != nil {
				t.Errorf("Validate() = %v, want nil", err)
			}
			if !tt.ok && !errors.Is(err, acrn.ErrInvalid) {
				t.Errorf("Validate() = %v, want ErrInvalid", err)
			}
		})
	}
}
