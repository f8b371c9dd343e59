package mmio

import (
	"encoding/binary"
	"errors"
	"testing"

	"ember/memory"
	"ember/virtio"
	"ember/virtio/virtiotest"
)

type line struct {
	high  bool
	rises int // low-to-high transitions: the edges a guest sees
}

func (l *line) SetLevel(h bool) {
	if h && !l.high {
		l.rises++
	}
	l.high = h
}

type rig struct {
	t    *testing.T
	tr   *Transport
	dev  *virtiotest.Device
	line *line
}

func newRig(t *testing.T) *rig {
	mem, err := memory.New([]memory.Range{{GPA: 0, Size: 1 << 20}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { mem.Close() })
	r := &rig{t: t, dev: &virtiotest.Device{}, line: &line{}}
	if r.tr, err = New(r.dev, Config{Mem: mem, IRQ: r.line}); err != nil {
		t.Fatal(err)
	}
	return r
}

func (r *rig) get(off uint64) uint32 {
	var b [4]byte
	r.tr.Read(off, b[:])
	return binary.LittleEndian.Uint32(b[:])
}

func (r *rig) set(off uint64, v uint32) {
	var b [4]byte
	binary.LittleEndian.PutUint32(b[:], v)
	r.tr.Write(off, b[:])
}

// start runs a driver's initialisation with features and queue 0 at base,
// and reports the status it reads back.
func (r *rig) start(features uint64, base uint64) uint32 {
	r.set(regStatus, virtio.StatusAcknowledge|virtio.StatusDriver)
	for sel := range 2 {
		r.set(regDriverFeatSel, uint32(sel))
		r.set(regDriverFeatures, uint32(features>>(32*sel)))
	}
	r.set(regStatus, virtio.StatusAcknowledge|virtio.StatusDriver|virtio.StatusFeaturesOK)
	r.set(regQueueSel, 0)
	r.set(regQueueNum, 64)
	for i, a := range []uint64{base, base + 0x1000, base + 0x2000} {
		r.set(regQueueDescLow+uint64(i)*0x10, uint32(a))
		r.set(regQueueDescHigh+uint64(i)*0x10, uint32(a>>32))
	}
	r.set(regQueueReady, 1)
	r.set(regStatus, virtio.StatusAcknowledge|virtio.StatusDriver|virtio.StatusFeaturesOK|virtio.StatusDriverOK)
	return r.get(regStatus)
}

// TestIdentity: the registers a driver probes first.
func TestIdentity(t *testing.T) {
	r := newRig(t)
	for _, tt := range []struct {
		off  uint64
		want uint32
	}{{regMagic, magic}, {regVersion, 2}, {regDeviceID, virtio.IDRNG}, {regQueueNumMax, 256}, {regDeviceFeatures, 1<<5 | 1<<28 | 1<<29}} {
		if got := r.get(tt.off); got != tt.want {
			t.Errorf("register %#x = %#x, want %#x", tt.off, got, tt.want)
		}
	}
	r.set(regDeviceFeatSel, 1)
	if got := r.get(regDeviceFeatures); got != 1 {
		t.Errorf("features 32-63 %#x, want VERSION_1", got)
	}
	if got := r.get(regConfig + 4); got != 0x07060504 {
		t.Errorf("config at 4 reads %#x", got)
	}
}

// TestLifecycle: negotiation, activation with the programmed queue, a
// notify, an interrupt and its acknowledgement, and a reset.
func TestLifecycle(t *testing.T) {
	r := newRig(t)
	if st := r.start(virtio.FeatureVersion1|virtio.FeatureEventIdx, 0x10000); st&virtio.StatusDriverOK == 0 || st&virtio.StatusFeaturesOK == 0 {
		t.Fatalf("status %#x", st)
	}
	acts := r.dev.Activations()
	if len(acts) != 1 || acts[0][0] == nil || acts[0][0].Size != 64 || acts[0][0].Driver != 0x11000 || !acts[0][0].EventIdx || acts[0][1] != nil {
		t.Fatalf("activations %v", acts)
	}
	r.set(regQueueNotify, 0)
	if n := r.dev.Notified(); len(n) != 1 || n[0] != 0 {
		t.Errorf("notified %v", n)
	}
	r.dev.Interrupt(0)
	if !r.line.high || r.get(regInterruptStatus) != interruptUsed {
		t.Fatalf("interrupt: line %v, status %#x", r.line.high, r.get(regInterruptStatus))
	}
	r.set(regInterruptACK, interruptUsed)
	if r.line.high || r.get(regInterruptStatus) != 0 {
		t.Error("acknowledged interrupt still pending")
	}
	r.set(regStatus, 0)
	if r.dev.Resets() != 1 || r.get(regStatus) != 0 || r.get(regQueueReady) != 0 {
		t.Errorf("after reset: %d resets, status %#x", r.dev.Resets(), r.get(regStatus))
	}
}

// TestRefusals: features without VERSION_1 lose FEATURES_OK; a queue
// outside RAM or a failing device sets DEVICE_NEEDS_RESET with a
// configuration interrupt.
func TestRefusals(t *testing.T) {
	for _, tt := range []struct {
		name     string
		features uint64
		base     uint64
		fail     error
		want     uint32 // status bits that must be set
		notWant  uint32
	}{
		{"no VERSION_1", 1 << 5, 0x10000, nil, 0, virtio.StatusFeaturesOK},
		{"queue outside RAM", virtio.FeatureVersion1, 2 << 20, nil, virtio.StatusDeviceNeedsReset, 0},
		{"device fails", virtio.FeatureVersion1, 0x10000, errors.New("no"), virtio.StatusDeviceNeedsReset, 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := newRig(t)
			r.dev.Fail = tt.fail
			st := r.start(tt.features, tt.base)
			if st&tt.want != tt.want || st&tt.notWant != 0 {
				t.Errorf("status %#x", st)
			}
			if tt.want != 0 && (!r.line.high || r.get(regInterruptStatus)&interruptConfig == 0) {
				t.Error("no configuration interrupt")
			}
		})
	}
}

func TestCmdlineArg(t *testing.T) {
	if got := CmdlineArg(0xd0000000, 5); got != "virtio_mmio.device=4K@0xd0000000:5" {
		t.Errorf("%q", got)
	}
}

// TestResetFromTheMachine: the machine's reset (and the VM's close) stops
// an active device with an interrupt pending, lowers its line and returns
// the registers to their power-on values, as a driver's write of 0 does.
func TestResetFromTheMachine(t *testing.T) {
	r := newRig(t)
	if st := r.start(virtio.FeatureVersion1, 0x10000); st&virtio.StatusDriverOK == 0 {
		t.Fatalf("status %#x", st)
	}
	r.dev.Interrupt(0)
	r.tr.Reset()
	if r.dev.Resets() != 1 || r.line.high || r.get(regStatus) != 0 || r.get(regInterruptStatus) != 0 || r.get(regQueueReady) != 0 {
		t.Errorf("after Reset: %d resets, line %v, status %#x, interrupt status %#x", r.dev.Resets(), r.line.high, r.get(regStatus), r.get(regInterruptStatus))
	}
	r.set(regQueueNotify, 0)
	if n := r.dev.Notified(); len(n) != 0 {
		t.Errorf("a reset device was notified: %v", n)
	}
	if r.tr.NumQueues() != 2 {
		t.Errorf("NumQueues %d, want the device's 2", r.tr.NumQueues())
	}
}

// TestAckLeavingAnInterruptPending: an acknowledgement of the used buffer
// bit with a configuration change still pending leaves the line high with
// a fresh edge, so a guest that programmed the line edge-triggered takes
// the configuration interrupt; acknowledging nothing makes no edge.
func TestAckLeavingAnInterruptPending(t *testing.T) {
	r := newRig(t)
	if st := r.start(virtio.FeatureVersion1, 0x10000); st&virtio.StatusDriverOK == 0 {
		t.Fatalf("status %#x", st)
	}
	r.dev.Interrupt(0)
	r.dev.Events().ConfigChanged()
	for _, tt := range []struct {
		ack       uint32
		high      bool
		rises     int
		remaining uint32
	}{
		{0, true, 1, interruptUsed | interruptConfig},
		{interruptUsed, true, 2, interruptConfig},
		{interruptConfig, false, 2, 0},
	} {
		r.set(regInterruptACK, tt.ack)
		if r.line.high != tt.high || r.line.rises != tt.rises || r.get(regInterruptStatus) != tt.remaining {
			t.Errorf("ack %#x: line high %v after %d rises, status %#x; want %v, %d, %#x",
				tt.ack, r.line.high, r.line.rises, r.get(regInterruptStatus), tt.high, tt.rises, tt.remaining)
		}
	}
}
