package acrn

import (
	"encoding/binary"
	"errors"
	"testing"

	"ember/acrn/iorequest"
)

func TestErrno(t *testing.T) {
	tests := []struct {
		e    Errno
		rax  uint64
		text string
	}{
		{EPERM, 0xffffffffffffffff, "acrn: EPERM"}, // the bare -1 of many ACRN handlers
		{EINVAL, 0xffffffffffffffea, "acrn: EINVAL"},
		{ENOMEM, 0xfffffffffffffff4, "acrn: ENOMEM"},
		{EFAULT, 0xfffffffffffffff2, "acrn: EFAULT"},
		{ENODEV, 0xffffffffffffffed, "acrn: ENODEV"},
		{EACCES, 0xfffffffffffffff3, "acrn: EACCES"},
		{EBUSY, 0xfffffffffffffff0, "acrn: EBUSY"},
		{EIO, 0xfffffffffffffffb, "acrn: EIO"},
		{ETIMEDOUT, 0xffffffffffffff92, "acrn: ETIMEDOUT"},
		{Errno(95), 0xffffffffffffffa1, "acrn: errno 95"},
	}
	for _, tt := range tests {
		if got := tt.e.Result(); got != tt.rax {
			t.Errorf("%v.Result() = %#x, want %#x", tt.e, got, tt.rax)
		}
		if got := tt.e.Error(); got != tt.text {
			t.Errorf("Errno(%d).Error() = %q, want %q", int32(tt.e), got, tt.text)
		}
		if err := ResultError(tt.rax); !errors.Is(err, tt.e) {
			t.Errorf("ResultError(%#x) = %v, want %v", tt.rax, err, tt.e)
		}
	}
	for _, ok := range []uint64{0, 1, 0x7fffffff} {
		if err := ResultError(ok); err != nil {
			t.Errorf("ResultError(%#x) = %v, want nil", ok, err)
		}
	}
	// A 32-bit handler result that reached RAX without sign extension.
	if err := ResultError(0xffffffea); !errors.Is(err, EINVAL) {
		t.Errorf("ResultError(0xffffffea) = %v, want EINVAL", err)
	}
}

func TestPMCmd(t *testing.T) {
	c := MakePMCmd(2, 1, 5, PMCmdGetCxData)
	if uint64(c) != 0x02010503 {
		t.Errorf("MakePMCmd(2, 1, 5, CX_DATA) = %#x, want 0x02010503", uint64(c))
	}
	if c.VMID() != 2 || c.VCPUID() != 1 || c.StateNum() != 5 || c.Type() != PMCmdGetCxData {
		t.Errorf("fields of %#x = %d %d %d %d", uint64(c), c.VMID(), c.VCPUID(), c.StateNum(), c.Type())
	}
	// Bits above 31 are not part of any field.
	if hi := PMCmd(0xffffffff00000000) | c; hi.VMID() != 2 || hi.Type() != PMCmdGetCxData {
		t.Errorf("high bits leak into fields: %d %d", hi.VMID(), hi.Type())
	}
}

// TestIRQLineOpsParam checks that HC_SET_IRQLINE's by-value param2 carries
// the struct's bytes: ACRN casts &param2 to struct acrn_irqline_ops *.
func TestIRQLineOpsParam(t *testing.T) {
	ops := IRQLineOps{GSI: 4, Op: GSIRaisingPulse}
	p := ops.Param()
	if p != 0x0000000200000004 {
		t.Errorf("Param() = %#x, want 0x0000000200000004", p)
	}
	var b [8]byte
	binary.LittleEndian.PutUint64(b[:], p)
	var fromBytes IRQLineOps
	if err := fromBytes.Decode(b[:]); err != nil {
		t.Fatal(err)
	}
	if fromBytes != ops || IRQLineOpsFromParam(p) != ops {
		t.Errorf("decoded %+v and %+v, want %+v", fromBytes, IRQLineOpsFromParam(p), ops)
	}
}

// TestVDevID checks the accessors of the acrn_vdev id union against the
// member offsets TestHSMLayout pins (vendor 0, device 2, legacy_id 4).
func TestVDevID(t *testing.T) {
	v := VDev{ID: MakeVDevID(0x8086, 0x1234, 0xdeadbeef)}
	b := Marshal(&v)
	if binary.LittleEndian.Uint16(b[0:]) != 0x8086 || binary.LittleEndian.Uint16(b[2:]) != 0x1234 ||
		binary.LittleEndian.Uint32(b[4:]) != 0xdeadbeef {
		t.Errorf("id bytes = % x", b[:8])
	}
	if v.Vendor() != 0x8086 || v.Device() != 0x1234 || v.LegacyID() != 0xdeadbeef {
		t.Errorf("Vendor/Device/LegacyID = %#x %#x %#x", v.Vendor(), v.Device(), v.LegacyID())
	}
}

func TestConstantsFromSeeds(t *testing.T) {
	tests := []struct {
		name      string
		got, want uint64
	}{
		{"upcall vector (seed 003)", CallbackVectorDefault, 0xF3},
		{"ReqsOffset (seed 000: Byte offset: 64)", iorequest.ReqsOffset, 64},
		{"SetRegionsMaxNum (one page of vm_memory_region)", SetRegionsMaxNum, 128},
		{"IntrMonitor buffer", uint64(len(IntrMonitor{}.Buffer)), 2 * MaxPtdevNum},
		{"GUEST_FLAGS_ALLOWING_HYPERCALLS", GuestFlagsAllowingHypercalls, GuestFlagSecureWorldEnabled},
		{"ACRN_INVALID_HPA", InvalidHPA, 0xffffffffffffffff},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("%s = %#x, want %#x", tt.name, tt.got, tt.want)
		}
	}
}
