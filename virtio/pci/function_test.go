package pci

import (
	"encoding/binary"
	"errors"
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

// TestConfigSpace: the function introduces itself as a modern virtio
// device and its capability list leads to every structure in BAR0.
func TestConfigSpace(t *testing.T) {
	r := newRig(t)
	if id := r.cfg32(regVendor); id != 0x1044<<16|VendorID {
		t.Errorf("vendor/device %#x, want 0x10441af4 (virtio-rng, modern)", id)
	}
	if rev := r.cfg32(regRevision); rev&0xff != 1 {
		t.Errorf("revision %d, want 1", rev&0xff)
	}
	if r.cfg32(regCommand)>>16&statusCapList == 0 {
		t.Error("no capability list")
	}
	want := map[uint8][2]uint32{cfgCommon: {commonOffset, commonSize}, cfgNotify: {notifyOffset, notifySize},
		cfgISR: {isrOffset, isrSize}, cfgDevice: {deviceOffset, deviceSize}}
	seen := map[uint8]bool{}
	msix := false
	for p, n := uint16(r.cfg32(regCapPtr)&0xff), 0; p != 0 && n < 16; n++ {
		hdr := r.cfg32(p)
		switch uint8(hdr) {
		case capIDVendor:
			typ := uint8(hdr >> 24)
			if w, ok := want[typ]; !ok || r.cfg32(p+8) != w[0] || r.cfg32(p+12) != w[1] || uint8(r.cfg32(p+4)) != 0 {
				t.Errorf("virtio cap type %d at %#x: BAR %d offset %#x length %#x", typ, p, uint8(r.cfg32(p+4)), r.cfg32(p+8), r.cfg32(p+12))
			}
			if typ == cfgNotify && r.cfg32(p+16) != NotifyMultiplier {
				t.Errorf("notify_off_multiplier %d", r.cfg32(p+16))
			}
			seen[typ] = true
		case capIDMSIX:
			msix = hdr>>16&0x7ff == 2 && r.cfg32(p+4) == msixTableOff && r.cfg32(p+8) == msixPBAOff
		}
		p = uint16(hdr >> 8 & 0xff)
	}
	if len(seen) != 4 || !msix {
		t.Errorf("capabilities found: virtio %v, MSI-X with 3 vectors %v", seen, msix)
	}
}

// TestBARSizingAndMove: all ones reads back the size; a new address moves
// the BAR.
func TestBARSizingAndMove(t *testing.T) {
	r := newRig(t)
	r.setCfg(regBAR0, 0xffffffff, 4)
	if v := r.cfg32(regBAR0); v != ^uint32(BARSize-1) {
		t.Errorf("sized BAR reads %#x, want %#x", v, ^uint32(BARSize-1))
	}
	r.setCfg(regBAR0, 0xc0010000, 4)
	if v := r.cfg32(regBAR0); v != 0xc0010000 {
		t.Errorf("BAR %#x after the move", v)
	}
	if len(r.moves) != 1 || r.moves[0] != [2]uint32{0xc0008000, 0xc0010000} {
		t.Errorf("moves %#x", r.moves)
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
