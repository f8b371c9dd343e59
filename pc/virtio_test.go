package pc

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"ember/guest"
	"ember/hv"
	"ember/hv/eventfd"
	"ember/internal/kvmtest"
	"ember/kvm"
	"ember/virtio"
	virtiopci "ember/virtio/pci"
	"ember/virtio/virtiotest"
	"ember/x86"
)

// kickDevice is virtiotest's device with its notifications also sent on a
// channel, so a test can wait for one that comes from another goroutine.
type kickDevice struct {
	*virtiotest.Device
	kicks chan int
}

func newKickDevice() *kickDevice {
	return &kickDevice{Device: &virtiotest.Device{}, kicks: make(chan int, 1024)}
}

func (d *kickDevice) Notify(q int) {
	d.Device.Notify(q)
	select {
	case d.kicks <- q:
	default:
	}
}

// Bits of the MSI-X capability's message control (PCI Local Bus 3.0,
// §6.8.2), as a driver knows them.
const (
	msixEnable  = 1 << 15
	msixMaskAll = 1 << 14
)

// driver programs a virtio-pci function from the host as a guest's driver
// would, through the same entry points the guest's accesses reach
// (ConfigRead/ConfigWrite, Read/Write of BAR0), finding each structure by
// the function's capability list.
type driver struct {
	t                     testing.TB
	f                     *virtiopci.Function
	common, notify        uint64 // BAR0 offsets
	notifyMult            uint64
	portNotify            uint64 // BAR1 offset
	msixCap               uint16
	msixTable, msixPBA    uint64
	bar0, bar1            uint64
	foundCommon, foundMSI bool
}

func newDriver(t testing.TB, f *virtiopci.Function) *driver {
	t.Helper()
	d := &driver{t: t, f: f, bar0: uint64(d0(f, 0x10)), bar1: uint64(d0(f, 0x14) &^ 1)}
	for p, n := uint16(d0(f, 0x34)&0xff), 0; p != 0 && n < 16; n++ {
		hdr := d0(f, p)
		switch uint8(hdr) {
		case 0x09: // vendor: a virtio structure
			switch uint8(hdr >> 24) {
			case 1:
				d.common, d.foundCommon = uint64(d0(f, p+8)), true
			case 2:
				if uint8(d0(f, p+4)) == 1 { // in BAR1's ports
					d.portNotify = uint64(d0(f, p+8))
					break
				}
				d.notify, d.notifyMult = uint64(d0(f, p+8)), uint64(d0(f, p+16))
			}
		case 0x11: // MSI-X
			d.msixCap, d.msixTable, d.msixPBA, d.foundMSI = p, uint64(d0(f, p+4)), uint64(d0(f, p+8)), true
		}
		p = uint16(hdr >> 8 & 0xff)
	}
	if !d.foundCommon || !d.foundMSI {
		t.Fatalf("capabilities: common configuration %v, MSI-X %v", d.foundCommon, d.foundMSI)
	}
	return d
}

// d0 reads a configuration dword.
func d0(f *virtiopci.Function, reg uint16) uint32 {
	var b [4]byte
	f.ConfigRead(0, 0, 0, reg, b[:])
	return binary.LittleEndian.Uint32(b[:])
}

func (d *driver) cfgWrite(reg uint16, v uint32, n int) {
	var b [4]byte
	binary.LittleEndian.PutUint32(b[:], v)
	d.f.ConfigWrite(0, 0, 0, reg, b[:n])
}

func (d *driver) read(off uint64, n int) uint64 { return virtiotest.Registers{Dev: d.f}.Get(off, n) }

func (d *driver) write(off, v uint64, n int) { virtiotest.Registers{Dev: d.f}.Set(off, v, n) }

// start negotiates VERSION_1, puts queue 0 (256 entries) at 1 MiB on MSI-X
// vector 1 and queue 1 (128) at 1 MiB + 64 KiB on vector 2, and sets
// DRIVER_OK.
func (d *driver) start() {
	d.t.Helper()
	const ack, drv, featuresOK, driverOK = virtio.StatusAcknowledge, virtio.StatusDriver, virtio.StatusFeaturesOK, virtio.StatusDriverOK
	d.write(d.common+virtiotest.CommonDeviceStatus, ack|drv, 1)
	d.write(d.common+virtiotest.CommonDriverFeatureSelect, 1, 4)
	d.write(d.common+virtiotest.CommonDriverFeature, virtio.FeatureVersion1>>32, 4)
	d.write(d.common+virtiotest.CommonDeviceStatus, ack|drv|featuresOK, 1)
	for q, size := range []uint64{256, 128} {
		base := 0x100000 + uint64(q)*0x10000
		d.write(d.common+virtiotest.CommonQueueSelect, uint64(q), 2)
		d.write(d.common+virtiotest.CommonQueueSize, size, 2)
		d.write(d.common+virtiotest.CommonQueueDesc, base, 8)
		d.write(d.common+virtiotest.CommonQueueDriver, base+0x1000, 8)
		d.write(d.common+virtiotest.CommonQueueDevice, base+0x2000, 8)
		d.write(d.common+virtiotest.CommonQueueMSIXVector, uint64(q)+1, 2)
		d.write(d.common+virtiotest.CommonQueueEnable, 1, 2)
	}
	d.write(d.common+virtiotest.CommonDeviceStatus, ack|drv|featuresOK|driverOK, 1)
	if s := d.read(d.common+virtiotest.CommonDeviceStatus, 1); s != ack|drv|featuresOK|driverOK {
		d.t.Fatalf("device status %#x after DRIVER_OK", s)
	}
}

// setMSIX writes the MSI-X message control's enable and function mask.
func (d *driver) setMSIX(enable, maskAll bool) {
	var c uint32
	if enable {
		c |= msixEnable
	}
	if maskAll {
		c |= msixMaskAll
	}
	d.cfgWrite(d.msixCap+2, c, 2)
}

// setEntry writes MSI-X vector v's message (address, data), then its
// vector control.
func (d *driver) setEntry(v int, addr uint64, data uint32, masked bool) {
	e := d.msixTable + uint64(16*v)
	d.write(e, addr, 8)
	d.write(e+8, uint64(data), 4)
	d.setMask(v, masked)
}

func (d *driver) setMask(v int, masked bool) {
	var c uint64
	if masked {
		c = 1
	}
	d.write(d.msixTable+uint64(16*v)+12, c, 4)
}

func (d *driver) pending() uint64 { return d.read(d.msixPBA, 8) }

// notifyCode is a 32-bit guest, placed at guest.LoadAddr: it writes AX (the
// queue's index, as Linux's vp_notify does) ECX times, 2 bytes each, to the
// address in EBX, then writes EAX = 0 to hv.PortExit.
var notifyCode = []byte{
	0x66, 0x89, 0x03, // 1: mov %ax, (%ebx)
	0xe2, 0xfb, //        loop 1b
	0x31, 0xc0, //        xor %eax, %eax
	0xe7, hv.PortExit, // out %eax, $PORT_EXIT
	0xf4, //              hlt
}

// portNotifyCode is notifyCode for a port: it writes AX ECX times to the
// port in DX, then writes EAX = 0 to hv.PortExit.
var portNotifyCode = []byte{
	0x66, 0xef, //        1: out %ax, %dx
	0xe2, 0xfc, //        loop 1b
	0x31, 0xc0, //        xor %eax, %eax
	0xe7, hv.PortExit, // out %eax, $PORT_EXIT
	0xf4, //              hlt
}

// kickAllCode is a 32-bit guest, placed at guest.LoadAddr: it notifies
// queues 0 and 1 of two functions whose queue 0 notification addresses are
// in EBX and EDX (NotifyMultiplier 4), then writes EAX = 0 to hv.PortExit.
var kickAllCode = []byte{
	0x66, 0x89, 0x03, //       mov %ax, (%ebx)
	0x66, 0x89, 0x43, 0x04, // mov %ax, 4(%ebx)
	0x66, 0x89, 0x02, //       mov %ax, (%edx)
	0x66, 0x89, 0x42, 0x04, // mov %ax, 4(%edx)
	0x31, 0xc0, //             xor %eax, %eax
	0xe7, hv.PortExit, //      out %eax, $PORT_EXIT
	0xf4, //                   hlt
}

// TestVirtioNotifyThroughIOEventFD: a guest's write to a queue's
// notification register, in BAR0 or in BAR1's ports, is matched by KVM's
// ioeventfd and reaches the device through the eventfd, with no exit, and
// the BAR's own handler never sees it (it would serve the write too, so a
// driver working is no proof). The control rows write 2 bytes into the
// register, where no ioeventfd is: every write exits, and the BAR's
// handler serves it.
func TestVirtioNotifyThroughIOEventFD(t *testing.T) {
	h := openHV(t)
	const n = 64
	for _, tc := range []struct {
		name     string
		ports    bool   // the register in BAR1, else in BAR0
		q        int    // the queue notified
		off      uint64 // from the queue's register
		moveTo   uint32 // if not 0, the driver moves the BAR here first
		eventfds bool   // the writes go through the ioeventfd, else through exits
	}{
		{"queue 0's notification address", false, 0, 0, 0, true},
		{"queue 1's notification address", false, 1, 0, 0, true},
		{"queue 0's, after the driver moved BAR0", false, 0, 0, 0xc0100000, true},
		{"2 bytes into queue 0's register: no ioeventfd there, the MMIO handler serves it", false, 0, 2, 0, false},
		{"queue 0's port", true, 0, 0, 0, true},
		{"queue 1's port", true, 1, 0, 0, true},
		{"queue 0's port, after the driver moved BAR1", true, 0, 0, 0xd000, true},
		{"2 ports into queue 0's register: no ioeventfd there, the port handler serves it", true, 0, 2, 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			vm, dev, f, d := newVirtioPC(t, h, hv.Config{})
			if tc.moveTo != 0 && tc.ports {
				d.cfgWrite(0x14, tc.moveTo, 4)
				d.bar1 = uint64(tc.moveTo)
			} else if tc.moveTo != 0 {
				d.cfgWrite(0x10, tc.moveTo, 4)
				d.bar0 = uint64(tc.moveTo)
			}
			d.start()
			code, regs := notifyCode, kvm.Regs{RAX: uint64(tc.q), RBX: d.bar0 + d.notify + uint64(tc.q)*d.notifyMult + tc.off, RCX: n}
			if tc.ports {
				code, regs.RBX, regs.RDX = portNotifyCode, 0, d.bar1+d.portNotify+uint64(tc.q)*d.notifyMult+tc.off
			}
			runToExit(t, vm, code, regs)
			if tc.eventfds {
				select {
				case <-dev.kicks:
				case <-time.After(10 * time.Second):
					t.Fatal("the device never heard of the writes")
				}
			}
			s := f.Stats()
			exited := s.NotifyMMIO
			if tc.ports {
				exited = s.NotifyPort
			}
			t.Logf("%d writes: %d exits, %d notifications through MMIO, %d through ports, %d through the eventfd (KVM's count coalesces)", n, vm.Exits(), s.NotifyMMIO, s.NotifyPort, s.NotifyEventFD)
			switch {
			case tc.eventfds && (s.NotifyMMIO+s.NotifyPort != 0 || s.NotifyEventFD == 0 || vm.Exits() > 2):
				t.Errorf("want every write through the ioeventfd: %d exits, %d through the BARs' handlers, %d through the eventfd", vm.Exits(), s.NotifyMMIO+s.NotifyPort, s.NotifyEventFD)
			case !tc.eventfds && (exited != n || s.NotifyEventFD != 0 || vm.Exits() < n):
				t.Errorf("want every write through the BAR's handler: %d exits, %d through it, %d through the eventfd", vm.Exits(), exited, s.NotifyEventFD)
			}
		})
	}
}

// BenchmarkVirtioNotify is what a queue notification costs the guest
// through an ioeventfd in each of a function's notification regions: an op
// is a guest making notifyKicks 2-byte writes, to BAR0's register (memory)
// or to BAR1's (port), timed from the VM's start to its exit (the VM is
// made with the timer stopped); ns/kick is the figure, and the port's over
// memory's is the ratio the README's virtio-pci section gives.
func BenchmarkVirtioNotify(b *testing.B) {
	const notifyKicks = 20000
	h := openHV(b)
	for _, bc := range []struct {
		name  string
		ports bool
	}{{"memory", false}, {"port", true}} {
		b.Run(bc.name, func(b *testing.B) {
			var spent time.Duration
			for range b.N {
				b.StopTimer()
				vm, _, _, d := newVirtioPC(b, h, hv.Config{})
				d.start()
				code, regs := notifyCode, kvm.Regs{RBX: d.bar0 + d.notify, RCX: notifyKicks}
				if bc.ports {
					code, regs.RBX, regs.RDX = portNotifyCode, 0, d.bar1+d.portNotify
				}
				b.StartTimer()
				start := time.Now()
				runToExit(b, vm, code, regs)
				spent += time.Since(start)
			}
			b.ReportMetric(float64(spent.Nanoseconds())/float64(b.N*notifyKicks), "ns/kick")
		})
	}
}

// TestVirtioBARMovedOverAnotherKeepsItsRange: a driver that points one
// function's BAR at another's range (where ember cannot map it) and then
// moves it on must not take that range from the other function: a write
// there, 2 bytes into a queue's register where no ioeventfd is, still
// exits to the other function's handler. The first function's BAR, moved
// on, answers at its new place.
func TestVirtioBARMovedOverAnotherKeepsItsRange(t *testing.T) {
	h := openHV(t)
	for _, tc := range []struct {
		name  string
		ports bool
		reg   uint16
	}{{"BAR0", false, 0x10}, {"BAR1", true, 0x14}} {
		t.Run(tc.name, func(t *testing.T) {
			vm, p := newPCPlatform(t, h, hv.Config{}, Config{})
			var fs []*virtiopci.Function
			var ds []*driver
			for range 2 {
				f, err := p.AddVirtio(vm, newKickDevice())
				if err != nil {
					t.Fatal(err)
				}
				d := newDriver(t, f)
				d.start()
				fs, ds = append(fs, f), append(ds, d)
			}
			other, away := ds[1].bar0, uint64(0xc0100000)
			if tc.ports {
				other, away = ds[1].bar1, 0xd000
			}
			ds[0].cfgWrite(tc.reg, uint32(other), 4) // over the other's range: not mapped
			ds[0].cfgWrite(tc.reg, uint32(away), 4)  // and on
			write := func(base uint64) {
				t.Helper()
				code, regs := notifyCode, kvm.Regs{RBX: base + ds[0].notify + 2, RCX: 1}
				if tc.ports {
					code, regs = portNotifyCode, kvm.Regs{RDX: base + ds[0].portNotify + 2, RCX: 1}
				}
				runToExit(t, vm, code, regs)
			}
			write(other)
			write(away)
			for i, f := range fs {
				s := f.Stats()
				if got := s.NotifyMMIO + s.NotifyPort; got != 1 {
					t.Errorf("function %d's handler served %d writes, want 1 (its own range)", i, got)
				}
			}
		})
	}
}

// runToExit runs code in 32-bit protected mode from guest.LoadAddr with
// regs, and fails t unless the guest exits with status 0.
func runToExit(t testing.TB, vm *hv.VM, code []byte, regs kvm.Regs) {
	t.Helper()
	if err := vm.LoadImage(code, guest.LoadAddr); err != nil {
		t.Fatal(err)
	}
	if err := vm.SetEntry(0, x86.Entry{Mode: x86.ProtectedMode, RIP: guest.LoadAddr, Regs: regs}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	res, err := vm.Run(ctx)
	if err != nil || res.Reason != hv.StopExit || res.Status != 0 {
		t.Fatalf("Run = %v, %v", res, err)
	}
}

// newVirtioPC creates a PC VM of 2 MiB with a kickDevice on the PCI bus, and
// a driver for it.
func newVirtioPC(t testing.TB, h *hv.Hypervisor, cfg hv.Config) (*hv.VM, *kickDevice, *virtiopci.Function, *driver) {
	t.Helper()
	dev := newKickDevice()
	vm, f, d := newVirtioPCWith(t, h, cfg, dev)
	return vm, dev, f, d
}

// newVirtioPCWith creates a PC VM of 2 MiB with dev on the PCI bus, and a
// driver for it. The VM closes when the test ends, before whatever the
// caller registered to close earlier (dev, as a machine closes it).
func newVirtioPCWith(t testing.TB, h *hv.Hypervisor, cfg hv.Config, dev virtio.Device) (*hv.VM, *virtiopci.Function, *driver) {
	t.Helper()
	cfg.MemorySize = 2 << 20
	vm, err := h.NewVM(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { vm.Close() })
	p, err := Attach(vm, Config{})
	if err != nil {
		t.Fatal(err)
	}
	f, err := p.AddVirtio(vm, dev)
	if err != nil {
		t.Fatal(err)
	}
	return vm, f, newDriver(t, f)
}

// reportChan is the report port as a channel: each value the guest writes
// is sent on it (the channel must have room).
type reportChan chan uint64

func (c reportChan) Read(uint64, []byte) {}
func (c reportChan) Write(_ uint64, d []byte) {
	var b [8]byte
	copy(b[:], d)
	c <- binary.LittleEndian.Uint64(b[:])
}

// startVirq runs the virq guest on vm, taking n interrupts on vector 0x40
// (it exits 0x56 after the last), and returns a channel that gets each
// count the guest reports (0 first: ready) and one that gets Run's result.
func startVirq(t testing.TB, vm *hv.VM, n int) (<-chan uint64, chan hv.Result) {
	t.Helper()
	if n >= 1<<24 {
		t.Fatalf("virq takes at most %d interrupts", 1<<24-1)
	}
	reports := make(reportChan, n+1)
	if err := vm.PIO.Register(guest.PortReport, 4, "report", reports); err != nil {
		t.Fatal(err)
	}
	if err := vm.LoadImage(guest.Virq.Code, guest.LoadAddr); err != nil {
		t.Fatal(err)
	}
	e := guest.Virq.Entry()
	e.Regs.RSI = 23 | uint64(n)<<8 // route IOAPIC pin 23 (nobody raises it) to 0x40; take n interrupts
	if err := vm.SetEntry(0, e); err != nil {
		t.Fatal(err)
	}
	done := make(chan hv.Result, 1)
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		// The guest takes its interrupts within seconds, even in the lab.
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		res, err := vm.Run(ctx)
		if err != nil {
			t.Error(err)
		}
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			logWhere(t, vm)
		}
		done <- res
	}()
	// A test that failed before its guest ended stops it, so the run
	// neither logs after the test nor keeps the VM from closing.
	t.Cleanup(func() {
		vm.Stop()
		<-finished
	})
	return reports, done
}

// logWhere logs where a virq guest that did not end was: its instruction
// pointer (just past its HLT when halted there), interrupts taken (RBP)
// and wanted (RCX).
func logWhere(t testing.TB, vm *hv.VM) {
	r, _, err := vm.VCPURegs(0)
	if err != nil {
		t.Logf("the guest's registers: %v", err)
		return
	}
	t.Logf("the guest did not end: RIP %#x RFLAGS %#x, %d interrupts taken of %d", r.RIP, r.RFLAGS, r.RBP, r.RCX)
}

// expectReport waits for the guest's next report and checks it is want.
// A guest that reports and then exits can make both channels ready by the
// time this looks, and select picks either: a report is always sent before
// the run's end (on the vCPU's thread, inside Run), so one that is waiting
// is taken first, and the end is put back for whoever waits for it.
func expectReport(t *testing.T, reports <-chan uint64, done chan hv.Result, want uint64) {
	t.Helper()
	var got uint64
	select {
	case got = <-reports:
	case res := <-done:
		select {
		case got = <-reports:
			done <- res
		default:
			t.Fatalf("guest ended with %v, waiting for report %d", res, want)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("no report %d", want)
	}
	if got != want {
		t.Fatalf("guest reported %d, want %d", got, want)
	}
}

// TestVirtioMSIXThroughIRQFD: a device's interrupts reach the guest (the
// virq guest's handler for vector 0x40) on the irqfd of the MSI-X vector,
// never through KVM_SIGNAL_MSI; the route follows the driver's rewrite of
// the message (its first, vector 0x41, would end the guest with 0xff);
// masking the vector or the function holds the interrupt in the PBA and
// unmasking delivers it; disabling MSI-X and the function's reset give
// the GSIs back.
func TestVirtioMSIXThroughIRQFD(t *testing.T) {
	h := openHV(t)
	vm, dev, f, d := newVirtioPC(t, h, hv.Config{})
	routes := vm.EventFDs().MSIRoutes
	d.start()
	d.setMSIX(true, false)
	d.setEntry(1, 0xfee00000, 0x41, false)
	d.setEntry(1, 0xfee00000, 0x40, false)
	if n := routes(); n != 1 {
		t.Fatalf("%d MSI routes with one live vector", n)
	}
	reports, done := startVirq(t, vm, 3)
	expectReport(t, reports, done, 0)

	dev.Interrupt(0)
	expectReport(t, reports, done, 1)

	d.setMask(1, true)
	dev.Interrupt(0)
	if p, s := d.pending(), f.Stats(); p != 1<<1 || s.IRQFD != 1 {
		t.Errorf("vector 1 masked: PBA %#x (want 0x2), %d irqfd signals (want 1)", p, s.IRQFD)
	}
	d.setMask(1, false)
	expectReport(t, reports, done, 2)

	d.setMSIX(true, true)
	dev.Interrupt(0)
	if p := d.pending(); p != 1<<1 {
		t.Errorf("function masked: PBA %#x, want 0x2", p)
	}
	d.setMSIX(true, false)
	expectReport(t, reports, done, 3)
	if res := <-done; res.Reason != hv.StopExit || res.Status != 0x56 {
		t.Errorf("Run = %v, want exit 0x56 after 3 interrupts", res)
	}
	if s := f.Stats(); s.IRQFD != 3 || s.MSI != 0 || s.INTx != 0 {
		t.Errorf("stats %+v: want 3 interrupts by irqfd, none by KVM_SIGNAL_MSI or INTx", s)
	}

	d.setMSIX(false, false)
	if n := routes(); n != 0 {
		t.Errorf("%d MSI routes with MSI-X disabled", n)
	}
	d.setMSIX(true, false)
	if n := routes(); n != 1 {
		t.Errorf("%d MSI routes with MSI-X enabled again", n)
	}
	f.Reset()
	if n := routes(); n != 0 {
		t.Errorf("%d MSI routes after the function's reset", n)
	}
}

// TestVirtioFallsBackToSignalMSI: with every MSI GSI of the VM taken, the
// function cannot route its vector to an irqfd: it logs a warning and the
// interrupt still reaches the guest, through KVM_SIGNAL_MSI.
func TestVirtioFallsBackToSignalMSI(t *testing.T) {
	h := openHV(t)
	var log bytes.Buffer
	vm, dev, f, d := newVirtioPC(t, h, hv.Config{Logger: slog.New(slog.NewTextHandler(&log, nil))})
	var taken []*eventfd.MSIVector
	defer func() {
		for _, v := range taken {
			v.Close()
		}
	}()
	for {
		v, err := vm.EventFDs().NewMSIVector(0xfee00000, 0x41)
		if err != nil {
			break
		}
		taken = append(taken, v)
	}
	t.Logf("%d MSI GSIs taken", len(taken))
	d.start()
	d.setMSIX(true, false)
	d.setEntry(1, 0xfee00000, 0x40, false)
	if !strings.Contains(log.String(), "KVM_SIGNAL_MSI") {
		t.Errorf("no warning logged: %s", log.String())
	}
	reports, done := startVirq(t, vm, 1)
	expectReport(t, reports, done, 0)
	dev.Interrupt(0)
	expectReport(t, reports, done, 1)
	if res := <-done; res.Reason != hv.StopExit || res.Status != 0x56 {
		t.Errorf("Run = %v, want exit 0x56", res)
	}
	if s := f.Stats(); s.MSI != 1 || s.IRQFD != 0 {
		t.Errorf("stats %+v: want 1 interrupt through KVM_SIGNAL_MSI", s)
	}
}

// TestVirtioLeavesNothingWithTheVM: VMs with two virtio functions, each
// with its three MSI-X vectors live (six irqfds and GSIs) and its two
// notification eventfds, each of which has carried a notification, give
// back every descriptor and goroutine when they close.
func TestVirtioLeavesNothingWithTheVM(t *testing.T) {
	h := openHV(t)
	runOne := func() {
		vm, err := h.NewVM(hv.Config{MemorySize: 2 << 20})
		if err != nil {
			t.Fatal(err)
		}
		defer vm.Close()
		p, err := Attach(vm, Config{})
		if err != nil {
			t.Fatal(err)
		}
		var devs []*kickDevice
		var notify []uint64 // queue 0's notification address of each function
		for range 2 {
			dev := newKickDevice()
			f, err := p.AddVirtio(vm, dev)
			if err != nil {
				t.Fatal(err)
			}
			d := newDriver(t, f)
			d.start()
			d.setMSIX(true, false)
			for v := range 3 {
				d.setEntry(v, 0xfee00000, 0x40+uint32(v), false)
			}
			devs, notify = append(devs, dev), append(notify, d.bar0+d.notify)
		}
		if n := vm.EventFDs().MSIRoutes(); n != 6 {
			t.Errorf("%d MSI routes, want 6", n)
		}
		// Every queue hears a notification, so every notification
		// goroutine has been through a read and is back in the next one
		// when the VM closes.
		vm.LoadImage(kickAllCode, guest.LoadAddr)
		vm.SetEntry(0, x86.Entry{Mode: x86.ProtectedMode, RIP: guest.LoadAddr, Regs: kvm.Regs{RBX: notify[0], RDX: notify[1]}})
		if res, err := vm.Run(context.Background()); err != nil || res.Reason != hv.StopExit {
			t.Fatalf("Run = %v, %v", res, err)
		}
		for _, dev := range devs {
			heard := map[int]bool{}
			for len(heard) < 2 {
				select {
				case q := <-dev.kicks:
					heard[q] = true
				case <-time.After(10 * time.Second):
					t.Fatalf("queues notified: %v, want 0 and 1", heard)
				}
			}
		}
	}
	runOne() // warm up what the runtime makes once
	fds, gs := kvmtest.OpenFDs(t), runtime.NumGoroutine()
	const n = 50
	for range n {
		runOne()
	}
	if got := kvmtest.OpenFDs(t); got != fds {
		t.Errorf("open descriptors: %d before, %d after %d VMs", fds, got, n)
	}
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > gs && time.Now().Before(deadline) {
		runtime.Gosched()
	}
	if got := runtime.NumGoroutine(); got != gs {
		t.Errorf("goroutines: %d before, %d after %d VMs", gs, got, n)
	}
}

// BenchmarkVirtioInterrupt measures a virtio-pci function's interrupts
// delivered to a guest one at a time, through the irqfd of its MSI-X
// vector (AddVirtio's function) and through KVM_SIGNAL_MSI (a function made
// without Config.NewVector, off the bus), side by side in one guest: the
// two devices take turns (ABBA, so neither always goes first), each raising
// an interrupt on vector 0x40 and waiting for the virq guest's handler to
// report it (a port write, an exit) before the next. It reports, for each
// path, the round trip (ns/irq, and irqs/s its inverse) and the part of it
// spent in the device's interrupt callback (send-ns/irq), and the ratio of
// the irqfd's rate to KVM_SIGNAL_MSI's. A guest that stops taking
// interrupts for 10 s fails it, with where the vCPU was.
func BenchmarkVirtioInterrupt(b *testing.B) {
	h := openHV(b)
	vm, err := h.NewVM(hv.Config{MemorySize: 2 << 20})
	if err != nil {
		b.Fatal(err)
	}
	defer vm.Close()
	p, err := Attach(vm, Config{})
	if err != nil {
		b.Fatal(err)
	}
	irqfdDev, msiDev := newKickDevice(), newKickDevice()
	irqfdFn, err := p.AddVirtio(vm, irqfdDev)
	if err != nil {
		b.Fatal(err)
	}
	msiFn, err := virtiopci.New(msiDev, virtiopci.Config{Mem: vm.Memory(), BAR: 0xc0100000,
		MSI: func(lo, hi, data uint32) error {
			return vm.SignalMSI(kvm.MSI{AddressLo: lo, AddressHi: hi, Data: data})
		}})
	if err != nil {
		b.Fatal(err)
	}
	paths := []struct {
		name string
		dev  *kickDevice
		f    *virtiopci.Function
	}{{"irqfd", irqfdDev, irqfdFn}, {"signal_msi", msiDev, msiFn}}
	for _, p := range paths {
		d := newDriver(b, p.f)
		d.start()
		d.setMSIX(true, false)
		d.setEntry(1, 0xfee00000, 0x40, false)
	}

	n := b.N * irqsPerOp // each path's
	reports, done := startVirq(b, vm, 2*n)
	<-reports // ready
	var progress atomic.Int64
	stalled := watchdog(vm, &progress, 10*time.Second)
	defer stalled.stop()
	var took, sending [2]time.Duration
	b.ResetTimer()
	for i := range 2 * n {
		k := (i ^ i>>1) & 1 // 0 1 1 0 0 1 1 0 ...
		t0 := time.Now()
		paths[k].dev.Interrupt(0)
		t1 := time.Now()
		select {
		case <-reports:
		case res := <-done:
			select {
			case <-reports: // the last report, and the exit after it (expectReport)
				done <- res
			default:
				b.Fatalf("guest ended with %v after %d of %d interrupts (%s)", res, i, 2*n, stalled.why(vm))
			}
		}
		took[k] += time.Since(t0)
		sending[k] += t1.Sub(t0)
		progress.Add(1)
	}
	b.StopTimer()
	for k, p := range paths {
		b.ReportMetric(float64(took[k].Nanoseconds())/float64(n), p.name+"-ns/irq")
		b.ReportMetric(float64(n)/took[k].Seconds(), p.name+"-irqs/s")
		b.ReportMetric(float64(sending[k].Nanoseconds())/float64(n), p.name+"-send-ns/irq")
	}
	b.ReportMetric(took[1].Seconds()/took[0].Seconds(), "irqfd/signal_msi")
	if res := <-done; res.Reason != hv.StopExit || res.Status != 0x56 {
		b.Fatalf("Run = %v, want exit 0x56", res)
	}
	if a, m := irqfdFn.Stats(), msiFn.Stats(); a.IRQFD != uint64(n) || a.MSI != 0 || m.MSI != uint64(n) {
		b.Fatalf("%d interrupts each: irqfd path %+v, KVM_SIGNAL_MSI path %+v", n, a, m)
	}
}

// irqsPerOp is how many interrupts each path delivers per benchmark op: the
// lab runs benchmarks for 5 ops, too few round trips to time one by one.
const irqsPerOp = 2000

// stallWatch stops a VM whose guest makes no progress.
type stallWatch struct {
	quit chan struct{}
	hit  atomic.Bool
}

// watchdog stops vm if progress stays still for d, so a benchmark waiting
// for the guest fails rather than hangs.
func watchdog(vm *hv.VM, progress *atomic.Int64, d time.Duration) *stallWatch {
	w := &stallWatch{quit: make(chan struct{})}
	go func() {
		t := time.NewTicker(d)
		defer t.Stop()
		last := progress.Load()
		for {
			select {
			case <-w.quit:
				return
			case <-t.C:
				if now := progress.Load(); now != last {
					last = now
					continue
				}
				w.hit.Store(true)
				vm.Stop()
				return
			}
		}
	}()
	return w
}

func (w *stallWatch) stop() { close(w.quit) }

// why says whether the watchdog stopped the VM, and where vCPU 0 was.
func (w *stallWatch) why(vm *hv.VM) string {
	regs, _, err := vm.VCPURegs(0)
	if err != nil {
		return fmt.Sprintf("stalled %v; vCPU 0: %v", w.hit.Load(), err)
	}
	return fmt.Sprintf("stalled %v; vCPU 0 at RIP %#x, RFLAGS %#x", w.hit.Load(), regs.RIP, regs.RFLAGS)
}
