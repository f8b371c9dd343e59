package pci

import (
	"bytes"
	"errors"
	"log/slog"
	"strings"
	"testing"

	"ember/memory"
	"ember/virtio"
	"ember/virtio/virtiotest"
)

// eventDevice is a virtio.QueueEventFDs device as an out-of-process
// back-end's Remote is, with KVM's part played by the fake vectors: a call
// from the back-end goes to the vector its eventfd is bound to (KVM's
// irqfd), else to the relay while it runs, else it stays in the eventfd.
type eventDevice struct {
	*virtiotest.Device
	fv       *fakeVectors
	kicks    map[int]int // queue -> the eventfd its ioeventfd signals (Config.Kick); -1: the transport's own
	active   bool
	relayOff [2]bool
	pending  [2]bool // a call in the eventfd that nobody read yet
	late     []int   // calls a restarted relay read, not yet passed on (its goroutine has not run)
	irq      func(int)
	// leftAtReset counts eventfds still bound to vectors and ioeventfds
	// still on the device's kick eventfds when Reset came.
	leftAtReset int
}

func (d *eventDevice) Activate(mem *memory.Guest, f uint64, qs []*virtio.Queue, irq func(int)) error {
	if err := d.Device.Activate(mem, f, qs, irq); err != nil {
		return err
	}
	d.active, d.irq, d.relayOff = true, irq, [2]bool{}
	return nil
}

func (d *eventDevice) Reset() {
	for _, v := range d.fv.open() {
		d.leftAtReset += len(v.bound)
	}
	for _, fd := range d.kicks {
		if fd >= 0 {
			d.leftAtReset++
		}
	}
	d.active = false
	d.Device.Reset()
}

// enabled reports whether queue q is enabled in the active device.
func (d *eventDevice) enabled(q int) bool {
	a := d.Activations()
	return d.active && q >= 0 && q < 2 && a[len(a)-1][q] != nil
}

func (d *eventDevice) KickFD(q int) (int, bool) { return 100 + q, d.enabled(q) }
func (d *eventDevice) CallFD(q int) (int, bool) { return 200 + q, d.enabled(q) }

func (d *eventDevice) RelayCalls(q int, on bool) bool {
	if !d.enabled(q) {
		return false
	}
	d.relayOff[q] = !on
	p := d.pending[q]
	d.pending[q] = false
	if on && p {
		d.late = append(d.late, q) // the relay reads it once it runs
		return false
	}
	return p
}

// call is the back-end signalling queue q's call eventfd.
func (d *eventDevice) call(q int) {
	for _, v := range d.fv.open() {
		if v.bound[200+q] {
			v.delivered = append(v.delivered, v.route)
			return
		}
	}
	if d.relayOff[q] {
		d.pending[q] = true
		return
	}
	d.irq(q)
}

// runRelays lets the restarted relays pass on what they read.
func (d *eventDevice) runRelays() {
	for _, q := range d.late {
		d.irq(q)
	}
	d.late = nil
}

// drig is a vrig whose device is an eventDevice.
type drig struct {
	*vrig
	ed *eventDevice
}

func newDRig(t *testing.T) *drig {
	mem, err := memory.New([]memory.Range{{GPA: 0, Size: 1 << 20}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { mem.Close() })
	fv, log := &fakeVectors{}, &bytes.Buffer{}
	ed := &eventDevice{Device: &virtiotest.Device{}, fv: fv, kicks: map[int]int{}}
	r := &rig{t: t, dev: ed.Device, line: &fakeLine{}, mem: mem}
	cfg := Config{Mem: mem, BAR: 0xc0008000, INTx: r.line, IRQ: 10, NewVector: fv.new,
		Logger: slog.New(slog.NewTextHandler(log, nil)),
		MSI:    func(lo, hi, data uint32) error { r.msis = append(r.msis, msg{lo, hi, data}); return nil },
		Kick:   func(q, fd int) error { ed.kicks[q] = fd; return nil }}
	if r.f, err = New(ed, cfg); err != nil {
		t.Fatal(err)
	}
	return &drig{vrig: &vrig{rig: r, fv: fv, log: log}, ed: ed}
}

// bound reports whether queue 0's call eventfd is bound to a vector.
func (r *drig) bound() bool {
	for _, v := range r.fv.open() {
		if v.bound[200] {
			return true
		}
	}
	return false
}

// TestCallsGoDirectWhenTheVectorIsLive: a device with call eventfds of its
// own has its queue's eventfd bound to the queue's MSI-X vector exactly
// while the vector is live (KVM then delivers the call: no Signal, no
// relay), and relayed otherwise (masked vector or function, INTx, no
// vector), where the call does what an in-process device's interrupt
// does. A call is delivered once across every switch.
func TestCallsGoDirectWhenTheVectorIsLive(t *testing.T) {
	for _, tc := range []struct {
		name      string
		failBind  bool
		run       func(r *drig)
		bound     bool      // queue 0's call eventfd is bound at the end
		delivered []message // messages delivered on vectors, by KVM or Signal
		signals   uint64    // of those, by Signal (Stats.IRQFD)
		pba       uint64
		isr       uint64
		warn      bool
	}{
		{name: "masked vector: relayed, the call waits in the PBA",
			run: func(r *drig) { r.start(); r.setEntry(1, msgA, true); r.ed.call(0) },
			pba: 1 << 1},
		{name: "live vector: bound, KVM delivers the call",
			run:       func(r *drig) { r.start(); r.setEntry(1, msgA, false); r.ed.call(0); r.ed.call(0) },
			bound:     true,
			delivered: []message{msgA, msgA}},
		{name: "rerouting a bound vector keeps the binding",
			run:       func(r *drig) { r.start(); r.setEntry(1, msgA, false); r.setEntry(1, msgB, false); r.ed.call(0) },
			bound:     true,
			delivered: []message{msgB}},
		{name: "masking the vector hands the calls back to the relay",
			run: func(r *drig) { r.start(); r.setEntry(1, msgA, false); r.setMask(1, true); r.ed.call(0) },
			pba: 1 << 1},
		{name: "the function mask hands the calls back to the relay",
			run: func(r *drig) {
				r.start()
				r.setEntry(1, msgA, false)
				r.setCfg(capMSIX+2, msixEnable|msixMaskAll, 2)
				r.ed.call(0)
			},
			pba: 1 << 1},
		{name: "INTx: relayed to the ISR",
			run: func(r *drig) {
				r.negotiate(virtio.FeatureVersion1)
				r.setupQueue(0, 64, 0x10000)
				r.setBar(ccDeviceStatus, virtio.StatusAcknowledge|virtio.StatusDriver|virtio.StatusFeaturesOK|virtio.StatusDriverOK, 1)
				r.ed.call(0)
			},
			isr: 1},
		{name: "disabling MSI-X unbinds before the vector is released, then INTx",
			run: func(r *drig) { r.start(); r.setEntry(1, msgA, false); r.setCfg(capMSIX+2, 0, 2); r.ed.call(0) },
			isr: 1},
		{name: "no vector for the queue: relayed, no interrupt",
			run: func(r *drig) {
				r.start()
				r.setEntry(1, msgA, false)
				r.setBar(ccQueueMSIXVector, noVector, 2)
				r.ed.call(0)
			}},
		{name: "a call the relay had not read is delivered once when the vector goes live",
			run: func(r *drig) {
				r.start()
				r.setEntry(1, msgA, true)
				r.ed.relayOff[0], r.ed.pending[0] = true, true // signalled, the relay not yet scheduled
				r.ed.relayOff[0] = false
				r.setMask(1, false)
				r.ed.runRelays()
			},
			bound: true, delivered: []message{msgA}, signals: 1},
		{name: "a call made while masked goes on unmask, then KVM takes the next",
			run: func(r *drig) {
				r.start()
				r.setEntry(1, msgA, false)
				r.setMask(1, true)
				r.ed.call(0)
				r.setMask(1, false)
				r.ed.call(0)
			},
			bound: true, delivered: []message{msgA, msgA}, signals: 1},
		{name: "a call left in the eventfd when the vector is masked is read by the restarted relay",
			run: func(r *drig) {
				r.start()
				r.setEntry(1, msgA, false)
				r.ed.relayOff[0], r.ed.pending[0] = true, true // as if KVM had not yet woken
				r.setMask(1, true)
				r.ed.runRelays()
				r.setMask(1, false)
			},
			bound: true, delivered: []message{msgA}, signals: 1},
		{name: "a failed binding leaves the relay on, with a warning",
			failBind:  true,
			run:       func(r *drig) { r.start(); r.setEntry(1, msgA, false); r.ed.call(0) },
			delivered: []message{msgA}, signals: 1, warn: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newDRig(t)
			if tc.failBind {
				r.fv.failBind = errors.New("KVM_IRQFD refused")
			}
			tc.run(r)
			if got := r.bound(); got != tc.bound {
				t.Errorf("call eventfd bound: %v, want %v", got, tc.bound)
			}
			if got := r.f.Stats().DirectCalls; got != map[bool]int{true: 1}[tc.bound] {
				t.Errorf("Stats.DirectCalls %d", got)
			}
			if got := r.fv.delivered(); !equal(got, tc.delivered) {
				t.Errorf("delivered %v, want %v", got, tc.delivered)
			}
			if got := r.f.Stats().IRQFD; got != tc.signals {
				t.Errorf("%d signals by ember, want %d", got, tc.signals)
			}
			if got := r.bar(msixPBAOff, 8); got != tc.pba {
				t.Errorf("PBA %#x, want %#x", got, tc.pba)
			}
			if got := r.bar(isrOffset, 1); got != tc.isr {
				t.Errorf("ISR %#x, want %#x", got, tc.isr)
			}
			if len(r.msis) != 0 {
				t.Errorf("MSIs through KVM_SIGNAL_MSI: %v", r.msis)
			}
			if warned := strings.Contains(r.log.String(), "level=WARN"); warned != tc.warn {
				t.Errorf("warning logged %v, want %v: %s", warned, tc.warn, r.log)
			}
		})
	}
}

// TestDirectEventFDsLeaveBeforeReset: activation points the enabled
// queue's ioeventfd at the device's kick eventfd; a reset by the driver or
// the machine and the function's Close take every kick and call eventfd
// back out of KVM before the device's Reset closes them, and a new
// activation binds them again.
func TestDirectEventFDsLeaveBeforeReset(t *testing.T) {
	for _, tc := range []struct {
		name string
		stop func(r *drig)
	}{
		{"driver reset", func(r *drig) { r.setBar(ccDeviceStatus, 0, 1) }},
		{"machine reset", func(r *drig) { r.f.Reset() }},
		{"close", func(r *drig) { r.f.Close() }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newDRig(t)
			r.start()
			r.setEntry(1, msgA, false)
			if k := r.ed.kicks; len(k) != 1 || k[0] != 100 || r.f.Stats().DirectKicks != 1 {
				t.Fatalf("after activation, ioeventfds on %v (%d direct); want queue 0 on the device's kick eventfd 100",
					k, r.f.Stats().DirectKicks)
			}
			if !r.bound() {
				t.Fatal("call eventfd not bound after activation on a live vector")
			}
			tc.stop(r)
			if r.ed.leftAtReset != 0 {
				t.Errorf("%d eventfds still in KVM when the device was reset", r.ed.leftAtReset)
			}
			if r.ed.kicks[0] != -1 || r.bound() || r.f.Stats().DirectKicks != 0 || r.f.Stats().DirectCalls != 0 {
				t.Errorf("after %s: kick %d, bound %v, stats %+v", tc.name, r.ed.kicks[0], r.bound(), r.f.Stats())
			}
			if len(r.fv.open()) != 0 && tc.name != "driver reset" {
				t.Errorf("%d vectors left open", len(r.fv.open()))
			}
		})
	}
}
