package pci

import (
	"encoding/binary"
	"errors"
	"slices"
	"testing"

	"ember/memory"
	"ember/virtio"
	"ember/virtio/virtiotest"
)

// fakeLine is an INTx line.
type fakeLine struct{ high bool }

func (l *fakeLine) SetLevel(h bool) { l.high = h }

// msg is one MSI the function sent.
type msg struct{ lo, hi, data uint32 }

type rig struct {
	t     *testing.T
	f     *Function
	dev   *virtiotest.Device
	line  *fakeLine
	msis  []msg
	moves [][2]uint32
	mem   *memory.Guest
}

func newRig(t *testing.T) *rig { return newRigWith(t, nil) }

// newRigWith is newRig with its Config changed by with, if not nil.
func newRigWith(t *testing.T, with func(*Config)) *rig {
	mem, err := memory.New([]memory.Range{{GPA: 0, Size: 1 << 20}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { mem.Close() })
	r := &rig{t: t, dev: &virtiotest.Device{}, line: &fakeLine{}, mem: mem}
	cfg := Config{Mem: mem, BAR: 0xc0008000, INTx: r.line, IRQ: 10,
		MSI:     func(lo, hi, data uint32) error { r.msis = append(r.msis, msg{lo, hi, data}); return nil },
		MoveBAR: func(o, n uint32) error { r.moves = append(r.moves, [2]uint32{o, n}); return nil }}
	if with != nil {
		with(&cfg)
	}
	r.f, err = New(r.dev, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func (r *rig) cfg32(reg uint16) uint32 {
	var b [4]byte
	r.f.ConfigRead(0, 1, 0, reg, b[:])
	return binary.LittleEndian.Uint32(b[:])
}

func (r *rig) setCfg(reg uint16, v uint32, n int) {
	var b [4]byte
	binary.LittleEndian.PutUint32(b[:], v)
	r.f.ConfigWrite(0, 1, 0, reg, b[:n])
}

func (r *rig) bar(off uint64, n int) uint64 {
	b := make([]byte, n)
	r.f.Read(off, b)
	var v [8]byte
	copy(v[:], b)
	return binary.LittleEndian.Uint64(v[:])
}

func (r *rig) setBar(off, v uint64, n int) {
	var b [8]byte
	binary.LittleEndian.PutUint64(b[:], v)
	r.f.Write(off, b[:n])
}

// virtioCap is a virtio vendor capability as a driver reads it.
type virtioCap struct {
	typ, bar       uint8
	offset, length uint32
	multiplier     uint32 // notify_off_multiplier, for cfgNotify
}

// TestConfigSpace: the function introduces itself as a modern virtio
// device and its capability list leads to every structure in BAR0 and, with
// a BAR1, to BAR1's notification region first: a driver takes the first
// notification capability whose BAR it can use.
func TestConfigSpace(t *testing.T) {
	common, isr, device := virtioCap{cfgCommon, 0, commonOffset, commonSize, 0}, virtioCap{cfgISR, 0, isrOffset, isrSize, 0}, virtioCap{cfgDevice, 0, deviceOffset, deviceSize, 0}
	notifyMem, notifyPort := virtioCap{cfgNotify, 0, notifyOffset, notifySize, NotifyMultiplier}, virtioCap{cfgNotify, 1, 0, PortBARSize, NotifyMultiplier}
	for _, tc := range []struct {
		name string
		port uint16
		want []virtioCap
	}{
		{"memory BAR only", 0, []virtioCap{common, notifyMem, isr, device}},
		{"with an I/O BAR", 0xc100, []virtioCap{common, notifyPort, notifyMem, isr, device}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newRigWith(t, func(c *Config) { c.PortBAR = tc.port })
			if id := r.cfg32(regVendor); id != 0x1044<<16|VendorID {
				t.Errorf("vendor/device %#x, want 0x10441af4 (virtio-rng, modern)", id)
			}
			if rev := r.cfg32(regRevision); rev&0xff != 1 {
				t.Errorf("revision %d, want 1", rev&0xff)
			}
			if r.cfg32(regCommand)>>16&statusCapList == 0 {
				t.Error("no capability list")
			}
			wantBAR1 := uint32(0)
			if tc.port != 0 {
				wantBAR1 = uint32(tc.port) | ioSpaceBAR
			}
			if b0, b1 := r.cfg32(regBAR0), r.cfg32(regBAR1); b0 != 0xc0008000 || b1 != wantBAR1 {
				t.Errorf("BAR0 %#x BAR1 %#x, want 0xc0008000 and %#x", b0, b1, wantBAR1)
			}
			var caps []virtioCap
			msix := false
			for p, n := uint16(r.cfg32(regCapPtr)&0xff), 0; p != 0 && n < 16; n++ {
				hdr := r.cfg32(p)
				switch uint8(hdr) {
				case capIDVendor:
					c := virtioCap{typ: uint8(hdr >> 24), bar: uint8(r.cfg32(p + 4)), offset: r.cfg32(p + 8), length: r.cfg32(p + 12)}
					if c.typ == cfgNotify {
						c.multiplier = r.cfg32(p + 16)
					}
					caps = append(caps, c)
				case capIDMSIX:
					msix = hdr>>16&0x7ff == 2 && r.cfg32(p+4) == msixTableOff && r.cfg32(p+8) == msixPBAOff
				}
				p = uint16(hdr >> 8 & 0xff)
			}
			if !slices.Equal(caps, tc.want) {
				t.Errorf("virtio capabilities %+v, want %+v", caps, tc.want)
			}
			if !msix {
				t.Error("no MSI-X capability with 3 vectors")
			}
		})
	}
}

// TestBARSizingAndMove: all ones reads back the size (with an I/O BAR's
// low bit); a new address, aligned down to the size, moves the BAR; a BAR
// the function does not have reads 0 whatever is written.
func TestBARSizingAndMove(t *testing.T) {
	for _, tc := range []struct {
		name      string
		port      uint16
		reg       uint16
		sized     uint32
		to, at    uint32 // written, then read back
		wantMoves [][2]uint32
	}{
		{"BAR0", 0, regBAR0, ^uint32(BARSize - 1), 0xc0010004, 0xc0010000, [][2]uint32{{0xc0008000, 0xc0010000}}},
		{"BAR1", 0xc100, regBAR1, ^uint32(PortBARSize-1) | 1, 0xd233, 0xd201, [][2]uint32{{0xc100, 0xd200}}},
		{"no BAR1", 0, regBAR1, 0, 0xd200, 0, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var moves [][2]uint32
			r := newRigWith(t, func(c *Config) {
				c.PortBAR = tc.port
				move := func(o, n uint32) error { moves = append(moves, [2]uint32{o, n}); return nil }
				c.MoveBAR, c.MovePortBAR = move, move
			})
			r.setCfg(tc.reg, 0xffffffff, 4)
			if v := r.cfg32(tc.reg); v != tc.sized {
				t.Errorf("sized BAR reads %#x, want %#x", v, tc.sized)
			}
			r.setCfg(tc.reg, tc.to, 4)
			if v := r.cfg32(tc.reg); v != tc.at {
				t.Errorf("BAR %#x after writing %#x, want %#x", v, tc.to, tc.at)
			}
			if !slices.Equal(moves, tc.wantMoves) {
				t.Errorf("moves %#x, want %#x", moves, tc.wantMoves)
			}
		})
	}
}

// TestBARPartialWrite: a write of half a BAR merges with the address it
// holds, as a register's bytes would.
func TestBARPartialWrite(t *testing.T) {
	r := newRigWith(t, func(c *Config) { c.PortBAR = 0xc100 })
	r.setCfg(regBAR0+2, 0xc001, 2)
	r.setCfg(regBAR1, 0xd233, 2)
	if b0, b1 := r.cfg32(regBAR0), r.cfg32(regBAR1); b0 != 0xc0018000 || b1 != 0xd201 {
		t.Errorf("BAR0 %#x BAR1 %#x after writing their upper and lower halves, want 0xc0018000 and 0xd201", b0, b1)
	}
}

// TestPortNotify: a write to queue q's register in BAR1 notifies queue q of
// an active device, and is counted as a port notification; reads give 0.
func TestPortNotify(t *testing.T) {
	r := newRigWith(t, func(c *Config) { c.PortBAR = 0xc100 })
	if !r.negotiate(virtio.FeatureVersion1) {
		t.Fatal("features refused")
	}
	r.setupQueue(0, 8, 0x10000)
	r.setBar(ccDeviceStatus, virtio.StatusAcknowledge|virtio.StatusDriver|virtio.StatusFeaturesOK|virtio.StatusDriverOK, 1)
	if !r.f.HasPorts() {
		t.Fatal("HasPorts = false with Config.PortBAR set")
	}
	ports := r.f.Ports()
	ports.Write(r.f.PortNotifyOffset(0), []byte{0, 0})
	ports.Write(r.f.PortNotifyOffset(5), []byte{5, 0}) // no such queue: ignored
	ports.Write(PortBARSize+4, []byte{0, 0})           // past the BAR: ignored
	if got := r.dev.Notified(); !slices.Equal(got, []int{0}) {
		t.Errorf("device notified of queues %v, want [0]", got)
	}
	if s := r.f.Stats(); s.NotifyPort != 2 || s.NotifyMMIO != 0 || s.NotifyEventFD != 0 {
		t.Errorf("stats %+v, want 2 port notifications (one of them for a queue that exists)", s)
	}
	b := []byte{0xff, 0xff}
	ports.Read(0, b)
	if b[0] != 0 || b[1] != 0 {
		t.Errorf("BAR1 reads %x, want zeros", b)
	}
}

// setupQueue programs queue q as a driver does.
func (r *rig) setupQueue(q uint16, size uint16, base uint64) {
	r.setBar(ccQueueSelect, uint64(q), 2)
	r.setBar(ccQueueSize, uint64(size), 2)
	r.setBar(ccQueueDesc, base, 8)
	r.setBar(ccQueueDriver, base+0x1000, 8)
	r.setBar(ccQueueDevice, base+0x2000, 8)
	r.setBar(ccQueueEnable, 1, 2)
}

// negotiate runs the driver's side of initialisation up to FEATURES_OK
// and reports whether the device kept it.
func (r *rig) negotiate(features uint64) bool {
	r.setBar(ccDeviceStatus, virtio.StatusAcknowledge|virtio.StatusDriver, 1)
	for sel := range 2 {
		r.setBar(ccDriverFeatureSelect, uint64(sel), 4)
		r.setBar(ccDriverFeature, features>>(32*sel)&0xffffffff, 4)
	}
	r.setBar(ccDeviceStatus, virtio.StatusAcknowledge|virtio.StatusDriver|virtio.StatusFeaturesOK, 1)
	return r.bar(ccDeviceStatus, 1)&virtio.StatusFeaturesOK != 0
}

func TestFeatureNegotiation(t *testing.T) {
	for _, tt := range []struct {
		name     string
		features uint64
		ok       bool
	}{
		{"VERSION_1 and a device feature", virtio.FeatureVersion1 | 1<<5, true},
		{"with EVENT_IDX", virtio.FeatureVersion1 | virtio.FeatureEventIdx, true},
		{"without VERSION_1", 1 << 5, false},
		{"a feature not offered", virtio.FeatureVersion1 | 1<<6, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := newRig(t)
			if off := r.bar(ccDeviceFeature, 4); off != 1<<5|virtio.FeatureIndirectDesc|virtio.FeatureEventIdx {
				t.Errorf("device features 0-31 %#x", off)
			}
			if ok := r.negotiate(tt.features); ok != tt.ok {
				t.Errorf("FEATURES_OK kept: %v, want %v", ok, tt.ok)
			}
		})
	}
}

// TestActivationNotifyAndInterrupts: DRIVER_OK starts the device with the
// queues as programmed; a notify reaches it; its interrupts go out as MSI-X
// messages (held while masked, then delivered) or as INTx with the ISR.
func TestActivationNotifyAndInterrupts(t *testing.T) {
	r := newRig(t)
	if !r.negotiate(virtio.FeatureVersion1 | virtio.FeatureEventIdx) {
		t.Fatal("features refused")
	}
	r.setupQueue(0, 64, 0x10000)
	r.setBar(ccDeviceStatus, virtio.StatusAcknowledge|virtio.StatusDriver|virtio.StatusFeaturesOK|virtio.StatusDriverOK, 1)
	if len(r.dev.Activations()) != 1 {
		t.Fatalf("activated %d times", len(r.dev.Activations()))
	}
	qs := r.dev.Activations()[0]
	if q := qs[0]; q == nil || q.Size != 64 || q.Desc != 0x10000 || q.Driver != 0x11000 || q.Device != 0x12000 || !q.EventIdx {
		t.Fatalf("queue 0 %+v", q)
	}
	if qs[1] != nil {
		t.Error("queue 1 was never enabled but was passed")
	}
	r.setBar(notifyOffset, 0, 2)
	if n := r.dev.Notified(); len(n) != 1 || n[0] != 0 {
		t.Errorf("notified %v", n)
	}
	// INTx: no MSI-X yet.
	r.dev.Interrupt(0)
	if !r.line.high || r.bar(isrOffset, 1) != 1 || r.line.high || r.bar(isrOffset, 1) != 0 {
		t.Error("INTx: line and ISR wrong")
	}
	// MSI-X: vector 1 for queue 0, masked at first.
	r.setBar(ccQueueSelect, 0, 2)
	r.setBar(ccQueueMSIXVector, 1, 2)
	r.setBar(msixTableOff+16, 0xfee00000, 4)
	r.setBar(msixTableOff+16+8, 0x41, 4)
	r.setCfg(capMSIX+2, msixEnable, 2)
	r.dev.Interrupt(0)
	if len(r.msis) != 0 || r.bar(msixPBAOff, 8) != 2 {
		t.Fatalf("masked vector: msis %v, PBA %#x", r.msis, r.bar(msixPBAOff, 8))
	}
	r.setBar(msixTableOff+16+12, 0, 4) // unmask: the pending message goes
	r.dev.Interrupt(0)
	if len(r.msis) != 2 || r.msis[0] != (msg{0xfee00000, 0, 0x41}) || r.bar(msixPBAOff, 8) != 0 {
		t.Errorf("msis %v, PBA %#x", r.msis, r.bar(msixPBAOff, 8))
	}
	r.setBar(ccDeviceStatus, 0, 1)
	if r.dev.Resets() != 1 || r.bar(ccDeviceStatus, 1) != 0 || r.bar(ccQueueMSIXVector, 2) != noVector {
		t.Errorf("after reset: %d resets, status %#x", r.dev.Resets(), r.bar(ccDeviceStatus, 1))
	}
}

// TestQueueOutsideRAMNeedsReset: a driver that puts a queue outside RAM
// gets DEVICE_NEEDS_RESET, not a started device.
func TestQueueOutsideRAMNeedsReset(t *testing.T) {
	r := newRig(t)
	r.negotiate(virtio.FeatureVersion1)
	r.setupQueue(0, 64, 2<<20)
	r.setBar(ccDeviceStatus, virtio.StatusAcknowledge|virtio.StatusDriver|virtio.StatusFeaturesOK|virtio.StatusDriverOK, 1)
	if len(r.dev.Activations()) != 0 || r.bar(ccDeviceStatus, 1)&virtio.StatusDeviceNeedsReset == 0 {
		t.Errorf("activated %d, status %#x", len(r.dev.Activations()), r.bar(ccDeviceStatus, 1))
	}
}

// TestDeviceEvents: a device that stops serving gets DEVICE_NEEDS_RESET and
// a configuration interrupt; one whose configuration changes bumps the
// generation and interrupts too (INTx here: ISR bit 1).
func TestDeviceEvents(t *testing.T) {
	r := newRig(t)
	r.negotiate(virtio.FeatureVersion1)
	r.setupQueue(0, 64, 0x10000)
	r.setBar(ccDeviceStatus, virtio.StatusAcknowledge|virtio.StatusDriver|virtio.StatusFeaturesOK|virtio.StatusDriverOK, 1)
	gen := r.bar(ccConfigGeneration, 1)
	r.dev.Events().ConfigChanged()
	if r.bar(ccConfigGeneration, 1) != gen+1 || !r.line.high || r.bar(isrOffset, 1) != 2 {
		t.Errorf("config change: generation %d (was %d), line %v", r.bar(ccConfigGeneration, 1), gen, r.line.high)
	}
	r.dev.Events().NeedsReset(errors.New("broken ring"))
	if r.bar(ccDeviceStatus, 1)&virtio.StatusDeviceNeedsReset == 0 || r.bar(isrOffset, 1) != 2 {
		t.Errorf("needs reset: status %#x", r.bar(ccDeviceStatus, 1))
	}
}
