package ioreq

import (
	"bytes"
	"testing"

	"ember/acrn/iorequest"
	"ember/devices"
)

// regs is a register file device: eight bytes that read back what was
// written, recording the offset and size of each access.
type regs struct {
	b    [8]byte
	last [2]uint64 // offset, size
}

func (r *regs) Read(off uint64, data []byte) {
	r.last = [2]uint64{off, uint64(len(data))}
	copy(data, r.b[off:])
}

func (r *regs) Write(off uint64, data []byte) {
	r.last = [2]uint64{off, uint64(len(data))}
	copy(r.b[off:], data)
}

var _ devices.Device = (*regs)(nil)

// TestDirectServesInProcessClientsOnly: the fast path calls a claimed
// device at the right offset and answers for the unclaimed default, exactly
// as a request would, and declines every access another client must see.
func TestDirectServesInProcessClientsOnly(t *testing.T) {
	d := newDispatcher(t, Config{PCIConf1: true})
	dev := &regs{}
	if err := d.Router().Claim(Range{Type: iorequest.ReqPortIO, Start: 0x500, End: 0x507}, DeviceClient("regs", 0x500, dev)); err != nil {
		t.Fatal(err)
	}
	if err := d.Router().Claim(Range{Type: iorequest.ReqMMIO, Start: 0xd0000000, End: 0xd0000007}, DeviceClient("mregs", 0xd0000000, dev)); err != nil {
		t.Fatal(err)
	}
	async := newAsyncClient(t, "external")
	if err := d.Router().Claim(Range{Type: iorequest.ReqPortIO, Start: 0x600, End: 0x603}, async); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		typ   iorequest.ReqType
		addr  uint64
		write bool
		data  []byte
		want  bool   // served directly
		after []byte // data after a direct read
	}{
		{"port write to a device", iorequest.ReqPortIO, 0x502, true, []byte{0x11, 0x22}, true, []byte{0x11, 0x22}},
		{"port read from a device", iorequest.ReqPortIO, 0x502, false, make([]byte, 2), true, []byte{0x11, 0x22}},
		{"MMIO read of a device, 8 bytes", iorequest.ReqMMIO, 0xd0000000, false, make([]byte, 8), true, []byte{0, 0, 0x11, 0x22, 0, 0, 0, 0}},
		{"unclaimed port read", iorequest.ReqPortIO, 0x700, false, make([]byte, 4), true, []byte{0xff, 0xff, 0xff, 0xff}},
		{"unclaimed MMIO write", iorequest.ReqMMIO, 0xe0000000, true, []byte{1}, true, []byte{1}},
		{"an out-of-process client's port", iorequest.ReqPortIO, 0x600, true, []byte{1}, false, []byte{1}},
		{"straddling the device's end: unclaimed, as a request would be", iorequest.ReqPortIO, 0x506, false, make([]byte, 4), true, []byte{0xff, 0xff, 0xff, 0xff}},
		{"PCI CONFIG_ADDRESS", iorequest.ReqPortIO, 0xcf8, true, []byte{0, 0, 0, 0x80}, false, []byte{0, 0, 0, 0x80}},
		{"PCI CONFIG_DATA", iorequest.ReqPortIO, 0xcfe, false, make([]byte, 2), false, make([]byte, 2)},
		{"size 3", iorequest.ReqPortIO, 0x500, false, make([]byte, 3), false, make([]byte, 3)},
		{"8-byte port access", iorequest.ReqPortIO, 0x500, false, make([]byte, 8), false, make([]byte, 8)},
		{"past the last port", iorequest.ReqPortIO, 0xfffe, false, make([]byte, 4), false, make([]byte, 4)},
		{"a PCI config request type", iorequest.ReqPCICfg, 0, false, make([]byte, 4), false, make([]byte, 4)},
	}
	for _, tt := range tests {
		got := d.Direct(tt.typ, tt.addr, tt.write, tt.data)
		if got != tt.want || !bytes.Equal(tt.data, tt.after) {
			t.Errorf("%s: Direct = %v with data % x, want %v with % x", tt.name, got, tt.data, tt.want, tt.after)
		}
	}
	if dev.last != [2]uint64{0, 8} {
		t.Errorf("the device's last access was at offset %d, size %d; want 0, 8", dev.last[0], dev.last[1])
	}
	if r, w := d.Router().Unclaimed(); r != 2 || w != 1 {
		t.Errorf("unclaimed counts %d reads, %d writes; want 2 and 1", r, w)
	}
}

// TestDirectAgreesWithEmulate: for accesses the fast path takes, the guest
// gets the same value through a request.
func TestDirectAgreesWithEmulate(t *testing.T) {
	d := newDispatcher(t, Config{})
	dev := &regs{b: [8]byte{1, 2, 3, 4, 5, 6, 7, 8}}
	if err := d.Router().Claim(Range{Type: iorequest.ReqPortIO, Start: 0x500, End: 0x507}, DeviceClient("regs", 0x500, dev)); err != nil {
		t.Fatal(err)
	}
	for _, port := range []uint16{0x500, 0x503, 0x504, 0x700} {
		for _, size := range []int{1, 2, 4} {
			data := make([]byte, size)
			if !d.Direct(iorequest.ReqPortIO, uint64(port), false, data) {
				if port+uint16(size) <= 0x508 || port >= 0x508 {
					t.Errorf("port %#x size %d: not served directly", port, size)
				}
				continue
			}
			req := PIORequest(iorequest.DirRead, port, size, 0)
			v, err := d.Emulate(0, &req)
			if err != nil || v != devices.Uint(data) {
				t.Errorf("port %#x size %d: Direct read % x, Emulate %#x (%v)", port, size, data, v, err)
			}
		}
	}
}
