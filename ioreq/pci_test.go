package ioreq

import (
	"encoding/binary"
	"testing"

	"ember/acrn/iorequest"
)

func TestPCIConfigRequest(t *testing.T) {
	for _, tc := range []struct {
		name  string
		latch ConfigAddress
		port  uint16
		size  int
		ok    bool
		b, d  uint32
		f, r  uint32
	}{
		{"dword of 00:00.0 reg 0", 0x80000000, 0xcfc, 4, true, 0, 0, 0, 0},
		{"byte at 0xcff of 01:1f.7 reg 0x3c", 0x8001ff3c, 0xcff, 1, true, 1, 0x1f, 7, 0x3f},
		{"word at 0xcfe of ff:00.1 reg 0x08", 0x80ff0108, 0xcfe, 2, true, 0xff, 0, 1, 0x0a},
		{"latch bits 1:0 add to the register, as QEMU's", 0x80000012, 0xcfc, 2, true, 0, 0, 0, 0x12},
		{"word of the device ID, latched unaligned (kvm-unit-tests)", 0x80000802, 0xcfc, 2, true, 0, 1, 0, 0x02},
		{"unaligned latch plus the access runs past the dword", 0x80000013, 0xcfc, 4, false, 0, 0, 0, 0},
		{"unaligned latch and port run past the dword", 0x80000002, 0xcfe, 2, false, 0, 0, 0, 0},
		{"enable bit clear", 0x00001910, 0xcfc, 4, false, 0, 0, 0, 0},
		{"dword at 0xcfe runs past 0xcff", 0x80000000, 0xcfe, 4, false, 0, 0, 0, 0},
		{"not CONFIG_DATA", 0x80000000, 0xcf8, 4, false, 0, 0, 0, 0},
	} {
		r, ok := PCIConfigRequest(tc.latch, iorequest.DirRead, tc.port, tc.size, 0)
		if ok != tc.ok {
			t.Errorf("%s: ok %v", tc.name, ok)
			continue
		}
		if !ok {
			continue
		}
		p := r.PCI()
		if r.Type != iorequest.ReqPCICfg || p.Bus != tc.b || p.Dev != tc.d || p.Func != tc.f || p.Reg != tc.r || p.Size != uint64(tc.size) {
			t.Errorf("%s: %+v", tc.name, p)
		}
		if err := r.Validate(); err != nil {
			t.Errorf("%s: %v", tc.name, err)
		}
	}
}

type fakeConfigSpace struct{ mem [256]byte }

func (f *fakeConfigSpace) ConfigRead(bus, dev, fn uint8, reg uint16, data []byte) {
	copy(data, f.mem[reg:])
}

func (f *fakeConfigSpace) ConfigWrite(bus, dev, fn uint8, reg uint16, data []byte) {
	copy(f.mem[reg:], data)
}

type fakeDevice struct {
	last  uint64
	write []byte
}

func (f *fakeDevice) Read(off uint64, data []byte) {
	f.last = off
	for i := range data {
		data[i] = byte(0x10 + i)
	}
}

func (f *fakeDevice) Write(off uint64, data []byte) {
	f.last = off
	f.write = append([]byte(nil), data...)
}

// TestAdapters: ember's register-level devices and PCI host become clients.
func TestAdapters(t *testing.T) {
	d := newDispatcher(t, Config{PCIConf1: true})
	dev := &fakeDevice{}
	cs := &fakeConfigSpace{}
	binary.LittleEndian.PutUint32(cs.mem[0:], 0x12378086)
	must(t, d.Router().Claim(Range{iorequest.ReqPortIO, 0x3f8, 0x3ff}, InProcess("uart", DeviceHandler(0x3f8, dev))))
	must(t, d.Router().Claim(Range{iorequest.ReqPCICfg, PCIAddress(0, 0, 0, 0), PCIAddress(0, 0, 0, 0xfff)}, InProcess("host", PCIConfigHandler(cs))))

	r := PIORequest(iorequest.DirRead, 0x3fa, 2, 0)
	if v, _ := d.Emulate(0, &r); v != 0x1110 || dev.last != 2 {
		t.Errorf("device read %#x at offset %d", v, dev.last)
	}
	w := PIORequest(iorequest.DirWrite, 0x3fb, 1, 0x83)
	d.Emulate(0, &w)
	if dev.last != 3 || len(dev.write) != 1 || dev.write[0] != 0x83 {
		t.Errorf("device write %x at offset %d", dev.write, dev.last)
	}
	latch := PIORequest(iorequest.DirWrite, 0xcf8, 4, 0x80000000)
	d.Emulate(0, &latch)
	r = PIORequest(iorequest.DirRead, 0xcfc, 4, 0)
	if v, _ := d.Emulate(0, &r); v != 0x12378086 {
		t.Errorf("vendor/device %#x", v)
	}
	r = PIORequest(iorequest.DirRead, 0xcfe, 2, 0)
	if v, _ := d.Emulate(0, &r); v != 0x1237 {
		t.Errorf("device ID %#x", v)
	}
	w = PIORequest(iorequest.DirWrite, 0xcfc, 2, 0xbeef)
	d.Emulate(0, &w)
	if got := binary.LittleEndian.Uint16(cs.mem[0:]); got != 0xbeef {
		t.Errorf("config write left %#x", got)
	}
}
