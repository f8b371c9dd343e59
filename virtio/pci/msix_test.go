package pci

import (
	"bytes"
	"errors"
	"log/slog"
	"strings"
	"testing"

	"ember/virtio"
)

// fakeVectors makes Vectors for a function as pc's irqfds would be made,
// and records what the function does with them.
type fakeVectors struct {
	made     []*fakeVector
	failNew  error // NewVector fails with it
	failSet  error // SetMessage fails with it
	failSig  error // Signal fails with it
	failBind error // Bind fails with it
}

// fakeVector is one Vector: the message it is routed to, the messages it
// delivered, whether it was closed.
type fakeVector struct {
	fv        *fakeVectors
	route     message
	delivered []message
	closed    bool
	bound     map[int]bool // eventfds bound to it (FDVector)
}

func (fv *fakeVectors) new(addr uint64, data uint32) (Vector, error) {
	if fv.failNew != nil {
		return nil, fv.failNew
	}
	v := &fakeVector{fv: fv, route: message{addr, data}}
	fv.made = append(fv.made, v)
	return v, nil
}

func (v *fakeVector) Signal() error {
	if v.closed {
		panic("Signal on a closed vector")
	}
	if v.fv.failSig != nil {
		return v.fv.failSig
	}
	v.delivered = append(v.delivered, v.route)
	return nil
}

func (v *fakeVector) SetMessage(addr uint64, data uint32) error {
	if v.closed {
		panic("SetMessage on a closed vector")
	}
	if v.fv.failSet != nil {
		return v.fv.failSet
	}
	v.route = message{addr, data}
	return nil
}

func (v *fakeVector) Close() error {
	if v.closed {
		panic("Close of a closed vector")
	}
	if len(v.bound) > 0 {
		panic("Close of a vector with eventfds bound")
	}
	v.closed = true
	return nil
}

// Bind binds fd to the vector, as KVM_IRQFD on its GSI would.
func (v *fakeVector) Bind(fd int) error {
	if v.closed {
		panic("Bind on a closed vector")
	}
	if v.fv.failBind != nil {
		return v.fv.failBind
	}
	if v.bound == nil {
		v.bound = map[int]bool{}
	}
	v.bound[fd] = true
	return nil
}

// Unbind undoes Bind.
func (v *fakeVector) Unbind(fd int) error {
	if !v.bound[fd] {
		panic("Unbind of an eventfd not bound")
	}
	delete(v.bound, fd)
	return nil
}

// open returns the vectors not closed.
func (fv *fakeVectors) open() []*fakeVector {
	var o []*fakeVector
	for _, v := range fv.made {
		if !v.closed {
			o = append(o, v)
		}
	}
	return o
}

// delivered returns every message delivered on a vector, in order of the
// vectors' making.
func (fv *fakeVectors) delivered() []message {
	var d []message
	for _, v := range fv.made {
		d = append(d, v.delivered...)
	}
	return d
}

// vrig is a rig whose function routes vectors to fakeVectors, its log in a
// buffer.
type vrig struct {
	*rig
	fv  *fakeVectors
	log *bytes.Buffer
}

func newVRig(t *testing.T) *vrig {
	fv, log := &fakeVectors{}, &bytes.Buffer{}
	r := newRigWith(t, func(c *Config) {
		c.NewVector = fv.new
		c.Logger = slog.New(slog.NewTextHandler(log, nil))
	})
	return &vrig{rig: r, fv: fv, log: log}
}

// The messages the tests program: vector 1 (queue 0's) to vector 0x41 of
// APIC 0, then to 0x42 of APIC 1.
var (
	msgA = message{0xfee00000, 0x41}
	msgB = message{0xfee01000, 0x42}
)

// start activates the device with queue 0 on MSI-X vector 1, MSI-X enabled
// and every vector still masked, as Linux leaves it before request_irq.
func (r *vrig) start() {
	r.negotiate(virtio.FeatureVersion1)
	r.setupQueue(0, 64, 0x10000)
	r.setBar(ccQueueMSIXVector, 1, 2)
	r.setCfg(capMSIX+2, msixEnable, 2)
	r.setBar(ccDeviceStatus, virtio.StatusAcknowledge|virtio.StatusDriver|virtio.StatusFeaturesOK|virtio.StatusDriverOK, 1)
}

// setEntry writes vector v's message, then its vector control.
func (r *vrig) setEntry(v int, m message, masked bool) {
	base := msixTableOff + uint64(16*v)
	r.setBar(base, m.addr, 8)
	r.setBar(base+8, uint64(m.data), 4)
	r.setMask(v, masked)
}

func (r *vrig) setMask(v int, masked bool) {
	var c uint64
	if masked {
		c = msixVectorMask
	}
	r.setBar(msixTableOff+uint64(16*v)+12, c, 4)
}

// TestMSIXVectorsRouteToIRQFDs: with Config.NewVector, each live MSI-X
// vector has a Vector (an irqfd in pc) routed to its message; interrupts
// are signalled on it, never sent through MSI; the route follows the
// entry, masking holds interrupts in the PBA, and disabling MSI-X or
// resetting the function releases every Vector. A failure falls back to
// MSI with a warning.
func TestMSIXVectorsRouteToIRQFDs(t *testing.T) {
	errNoGSI := errors.New("no GSI left")
	for _, tc := range []struct {
		name string
		run  func(r *vrig)
		// What the function did: Vectors open and their routes, messages
		// delivered on Vectors and through MSI, the PBA, a warning logged.
		open      []message
		made      int
		delivered []message
		msis      []msg
		pba       uint64
		warn      bool
	}{
		{name: "MSI-X enabled, every vector masked: no route yet",
			run: func(r *vrig) { r.start(); r.setEntry(1, msgA, true) }},
		{name: "unmasking vector 1 routes it to its message",
			run:  func(r *vrig) { r.start(); r.setEntry(1, msgA, false) },
			open: []message{msgA}, made: 1},
		{name: "an interrupt is a signal on the vector, not an MSI",
			run:  func(r *vrig) { r.start(); r.setEntry(1, msgA, false); r.dev.Interrupt(0); r.dev.Interrupt(0) },
			open: []message{msgA}, made: 1, delivered: []message{msgA, msgA}},
		{name: "rewriting a live vector's message reroutes the same vector",
			run: func(r *vrig) {
				r.start()
				r.setEntry(1, msgA, false)
				r.setEntry(1, msgB, false)
				r.dev.Interrupt(0)
			},
			open: []message{msgB}, made: 1, delivered: []message{msgB}},
		{name: "a masked vector holds its interrupt in the PBA",
			run: func(r *vrig) {
				r.start()
				r.setEntry(1, msgA, false)
				r.setMask(1, true)
				r.dev.Interrupt(0)
			},
			open: []message{msgA}, made: 1, pba: 1 << 1},
		{name: "unmasking delivers the pending interrupt on the vector",
			run: func(r *vrig) {
				r.start()
				r.setEntry(1, msgA, false)
				r.setMask(1, true)
				r.dev.Interrupt(0)
				r.setMask(1, false)
			},
			open: []message{msgA}, made: 1, delivered: []message{msgA}},
		{name: "a message rewritten while masked is routed before the pending interrupt goes",
			run: func(r *vrig) {
				r.start()
				r.setEntry(1, msgA, false)
				r.setMask(1, true)
				r.dev.Interrupt(0)
				r.setEntry(1, msgB, false)
			},
			open: []message{msgB}, made: 1, delivered: []message{msgB}},
		{name: "the function mask holds interrupts too; clearing it delivers them",
			run: func(r *vrig) {
				r.start()
				r.setEntry(1, msgA, false)
				r.setCfg(capMSIX+2, msixEnable|msixMaskAll, 2)
				r.dev.Interrupt(0)
				r.setCfg(capMSIX+2, msixEnable, 2)
			},
			open: []message{msgA}, made: 1, delivered: []message{msgA}},
		{name: "a vector first unmasked under the function mask is routed when it lifts",
			run: func(r *vrig) {
				r.start()
				r.setCfg(capMSIX+2, msixEnable|msixMaskAll, 2)
				r.setEntry(1, msgA, false)
				r.dev.Interrupt(0)
				if len(r.fv.made) != 0 {
					r.t.Error("routed under the function mask")
				}
				r.setCfg(capMSIX+2, msixEnable, 2)
			},
			open: []message{msgA}, made: 1, delivered: []message{msgA}},
		{name: "disabling MSI-X releases the routes; interrupts go to INTx",
			run: func(r *vrig) {
				r.start()
				r.setEntry(1, msgA, false)
				r.setCfg(capMSIX+2, 0, 2)
				r.dev.Interrupt(0)
				if !r.line.high {
					r.t.Error("INTx not raised with MSI-X disabled")
				}
			},
			made: 1},
		{name: "enabling MSI-X again routes the live vectors again",
			run: func(r *vrig) {
				r.start()
				r.setEntry(1, msgA, false)
				r.setCfg(capMSIX+2, 0, 2)
				r.setCfg(capMSIX+2, msixEnable, 2)
				r.dev.Interrupt(0)
			},
			open: []message{msgA}, made: 2, delivered: []message{msgA}},
		{name: "a device reset (status 0) keeps the PCI function's routes",
			run: func(r *vrig) {
				r.start()
				r.setEntry(1, msgA, false)
				r.setBar(ccDeviceStatus, 0, 1)
			},
			open: []message{msgA}, made: 1},
		{name: "the function's reset releases the routes and masks every vector",
			run: func(r *vrig) {
				r.start()
				r.setEntry(1, msgA, false)
				r.setEntry(0, msgB, false)
				r.f.Reset()
				if r.cfg32(capMSIX)>>16&(msixEnable|msixMaskAll) != 0 || r.bar(msixTableOff+16+12, 4) != msixVectorMask {
					r.t.Error("MSI-X still enabled or vector 1 unmasked after Reset")
				}
			},
			made: 2},
		{name: "the function's Close releases the routes for good",
			run: func(r *vrig) {
				r.start()
				r.setEntry(1, msgA, false)
				r.f.Close()
				r.setEntry(0, msgB, false)
			},
			made: 1},
		{name: "NewVector fails: a warning, and MSI carries the interrupts",
			run: func(r *vrig) {
				r.fv.failNew = errNoGSI
				r.start()
				r.setEntry(1, msgA, false)
				r.dev.Interrupt(0)
			},
			msis: []msg{{0xfee00000, 0, 0x41}}, warn: true},
		{name: "after a failure no vector is routed until MSI-X is enabled again",
			run: func(r *vrig) {
				r.start()
				r.setEntry(0, msgB, false)
				r.fv.failNew = errNoGSI
				r.setEntry(1, msgA, false) // fails: vector 0's route goes too
				r.fv.failNew = nil
				r.setEntry(2, msgA, false)
				r.dev.Interrupt(0)
				if len(r.fv.open()) != 0 {
					r.t.Error("routed after a failure")
				}
				r.setCfg(capMSIX+2, 0, 2)
				r.setCfg(capMSIX+2, msixEnable, 2)
				r.dev.Interrupt(0)
			},
			open: []message{msgB, msgA, msgA}, made: 4, delivered: []message{msgA},
			msis: []msg{{0xfee00000, 0, 0x41}}, warn: true},
		{name: "a reroute fails: a warning, the routes released, MSI carries the interrupts",
			run: func(r *vrig) {
				r.start()
				r.setEntry(1, msgA, false)
				r.fv.failSet = errNoGSI
				r.setEntry(1, msgB, false)
				r.dev.Interrupt(0)
			},
			made: 1, msis: []msg{{0xfee01000, 0, 0x42}}, warn: true},
		{name: "a signal fails: that interrupt goes through MSI",
			run: func(r *vrig) {
				r.start()
				r.setEntry(1, msgA, false)
				r.fv.failSig = errNoGSI
				r.dev.Interrupt(0)
			},
			made: 1, msis: []msg{{0xfee00000, 0, 0x41}}, warn: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newVRig(t)
			tc.run(r)
			var open []message
			for _, v := range r.fv.open() {
				open = append(open, v.route)
			}
			if !equal(open, tc.open) || len(r.fv.made) != tc.made {
				t.Errorf("vectors open %v (want %v), %d made (want %d)", open, tc.open, len(r.fv.made), tc.made)
			}
			if d := r.fv.delivered(); !equal(d, tc.delivered) {
				t.Errorf("delivered on vectors %v, want %v", d, tc.delivered)
			}
			if !equal(r.msis, tc.msis) {
				t.Errorf("sent through MSI %v, want %v", r.msis, tc.msis)
			}
			if pba := r.bar(msixPBAOff, 8); pba != tc.pba {
				t.Errorf("PBA %#x, want %#x", pba, tc.pba)
			}
			if s := r.f.Stats(); s.IRQFD != uint64(len(tc.delivered)) || s.MSI != uint64(len(tc.msis)) {
				t.Errorf("stats %+v: want %d IRQFD, %d MSI", s, len(tc.delivered), len(tc.msis))
			}
			if warned := strings.Contains(r.log.String(), "level=WARN"); warned != tc.warn {
				t.Errorf("warning logged: %v, want %v (log: %s)", warned, tc.warn, r.log)
			}
		})
	}
}

func equal[T comparable](a, b []T) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestNotifyStats: a notification written to BAR0 counts as MMIO, one
// passed by Notify (an ioeventfd's) as eventfd; both reach the device.
func TestNotifyStats(t *testing.T) {
	r := newRig(t)
	r.negotiate(virtio.FeatureVersion1)
	r.setupQueue(0, 64, 0x10000)
	r.setBar(ccDeviceStatus, virtio.StatusAcknowledge|virtio.StatusDriver|virtio.StatusFeaturesOK|virtio.StatusDriverOK, 1)
	r.setBar(notifyOffset, 0, 2)
	r.f.Notify(0)
	r.f.Notify(0)
	if s := r.f.Stats(); s.NotifyMMIO != 1 || s.NotifyEventFD != 2 {
		t.Errorf("stats %+v, want 1 MMIO and 2 eventfd notifications", s)
	}
	if n := r.dev.Notified(); len(n) != 3 {
		t.Errorf("device notified %v, want 3 times", n)
	}
}
