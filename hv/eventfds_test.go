package hv

import (
	"context"
	"encoding/binary"
	"errors"
	"os"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"ember/acrn"
	"ember/guest"
	"ember/hv/eventfd"
	"ember/internal/kvmtest"
	"ember/kvm"
)

// routeOf is the route f's table gives gsi (zero if none).
func routeOf(f *eventfd.Service, gsi uint32) kvm.IRQRoutingEntry {
	r, _ := f.Route(gsi)
	return r
}

func newEventfd(t testing.TB) int {
	t.Helper()
	fd, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	return fd
}

// dupFD returns another descriptor of the same eventfd, as a device model's
// second message (a deassign) brings it: the same file, another number.
func dupFD(t *testing.T, fd int) int {
	t.Helper()
	d, err := unix.Dup(fd)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(d) })
	return d
}

// readEventfd returns the eventfd's count (0 if never signalled), resetting it.
func readEventfd(fd int) uint64 {
	var b [8]byte
	if n, _ := unix.Read(fd, b[:]); n != 8 {
		return 0
	}
	return binary.LittleEndian.Uint64(b[:])
}

func TestIOEventFDFollowsACRNIoeventfd(t *testing.T) {
	h := openHV(t)
	vm, err := h.NewVM(Config{MemorySize: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer vm.Close()
	f := vm.EventFDs()
	a, b := newEventfd(t), newEventfd(t)
	const pio, match, deassign = acrn.IOEventFDFlagPIO, acrn.IOEventFDFlagDataMatch, acrn.IOEventFDFlagDeassign
	for _, tc := range []struct {
		name string
		e    acrn.IOEventFD
		fd   int
		want error // nil or an errno
	}{
		{"PIO write of 2 bytes to 0x600", acrn.IOEventFD{Flags: pio, Addr: 0x600, Len: 2}, a, nil},
		{"the same again is a duplicate", acrn.IOEventFD{Flags: pio, Addr: 0x600, Len: 2}, dupFD(t, a), unix.EEXIST},
		{"PIO with data match 0x1 on another eventfd", acrn.IOEventFD{Flags: pio | match, Addr: 0x604, Len: 4, Data: 1}, b, nil},
		{"MMIO write of 4 bytes of 0xcafe", acrn.IOEventFD{Flags: match, Addr: 0xd0000000, Len: 4, Data: 0xcafe}, a, nil},
		{"MMIO of any width", acrn.IOEventFD{Addr: 0xd0001000}, b, nil},
		{"deassign PIO 0x600 with another number of the eventfd", acrn.IOEventFD{Flags: pio | deassign, Addr: 0x600, Len: 2}, dupFD(t, a), nil},
		{"deassign it again: nothing matches", acrn.IOEventFD{Flags: pio | deassign, Addr: 0x600, Len: 2}, a, unix.ENOENT},
		{"deassign with another data value matches nothing", acrn.IOEventFD{Flags: pio | match | deassign, Addr: 0x604, Len: 4, Data: 2}, b, unix.ENOENT},
		{"deassign the data match", acrn.IOEventFD{Flags: pio | match | deassign, Addr: 0x604, Len: 4, Data: 1}, b, nil},
		{"deassign the MMIO one", acrn.IOEventFD{Flags: match | deassign, Addr: 0xd0000000, Len: 4, Data: 0xcafe}, a, nil},
		{"unknown flag 0x8", acrn.IOEventFD{Flags: 0x8, Addr: 0x600, Len: 1}, a, unix.EINVAL},
		{"length 3", acrn.IOEventFD{Flags: pio, Addr: 0x600, Len: 3}, a, unix.EINVAL},
		{"data match without a length", acrn.IOEventFD{Flags: match, Addr: 0xd0002000, Data: 1}, a, unix.EINVAL},
		{"port range past 0xffff", acrn.IOEventFD{Flags: pio, Addr: 0xfffe, Len: 4}, a, unix.EINVAL},
		{"not an eventfd", acrn.IOEventFD{Flags: pio, Addr: 0x610, Len: 1}, vm.KVM().Fd(), unix.EINVAL},
	} {
		err := f.IOEventFD(tc.e, tc.fd)
		if tc.want == nil && err != nil || tc.want != nil && !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
	}
}

func TestIRQFDFollowsACRNIrqfd(t *testing.T) {
	h := openHV(t)
	vm, err := h.NewVM(Config{MemorySize: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer vm.Close()
	f := vm.EventFDs()
	a, b := newEventfd(t), newEventfd(t)
	msi := acrn.MSIEntry{MSIAddr: 0xfee00000, MSIData: 0x41}
	for _, tc := range []struct {
		name   string
		q      acrn.IRQFD
		fd     int
		want   error
		routes int // MSI routes in use after the call
	}{
		{"assign an MSI to vector 0x41", acrn.IRQFD{MSI: msi}, a, nil, 1},
		{"the same eventfd again, by another number", acrn.IRQFD{MSI: msi}, dupFD(t, a), unix.EBUSY, 1},
		{"a second eventfd, the same MSI", acrn.IRQFD{MSI: msi}, b, nil, 2},
		{"deassign the first by another number", acrn.IRQFD{Flags: acrn.IRQFDFlagDeassign}, dupFD(t, a), nil, 1},
		{"deassign it again", acrn.IRQFD{Flags: acrn.IRQFDFlagDeassign}, a, unix.ENOENT, 1},
		{"reassign it: takes the freed GSI", acrn.IRQFD{MSI: msi}, a, nil, 2},
		{"unknown flag 0x2", acrn.IRQFD{Flags: 0x2, MSI: msi}, newEventfd(t), unix.EINVAL, 2},
		{"MSI data wider than 32 bits", acrn.IRQFD{MSI: acrn.MSIEntry{MSIAddr: 0xfee00000, MSIData: 1 << 32}}, newEventfd(t), unix.EINVAL, 2},
		{"not an eventfd", acrn.IRQFD{MSI: msi}, vm.KVM().Fd(), unix.EINVAL, 2},
		{"deassign both", acrn.IRQFD{Flags: acrn.IRQFDFlagDeassign}, b, nil, 1},
		{"", acrn.IRQFD{Flags: acrn.IRQFDFlagDeassign}, a, nil, 0},
	} {
		err := f.IRQFD(tc.q, tc.fd)
		if tc.want == nil && err != nil || tc.want != nil && !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
		if n := f.MSIRoutes(); n != tc.routes {
			t.Errorf("%s: %d MSI routes, want %d", tc.name, n, tc.routes)
		}
	}

	noChip, err := h.NewVM(Config{MemorySize: 1 << 20, NoIRQChip: true})
	if err != nil {
		t.Fatal(err)
	}
	defer noChip.Close()
	if err := noChip.EventFDs().IRQFD(acrn.IRQFD{MSI: msi}, a); !errors.Is(err, unix.ENOTSUP) {
		t.Errorf("irqfd without an irqchip: %v, want ENOTSUP", err)
	}
}

// benchImage returns a bench exit guest (bench_pio/bench_mmio) patched to
// make n writes; it runs at LoadAddr as well as at the reset vector.
func benchImage(p guest.Program, n uint32) []byte {
	img := append([]byte(nil), p.Code...)
	binary.LittleEndian.PutUint32(img[0xfff8:], n)
	return img
}

// TestIOEventFDGuestWriteNeverExits: with an ioeventfd on the address, the
// bench guests' writes signal the eventfd and never reach the vCPU loop or
// the dispatcher; without one, each is an exit.
func TestIOEventFDGuestWriteNeverExits(t *testing.T) {
	h := openHV(t)
	const n = 64
	for _, tc := range []struct {
		name    string
		prog    guest.Program
		e       acrn.IOEventFD
		matches bool // the guest's writes (of 0) match
	}{
		{"PIO 1 byte at 0x4f0", guest.BenchPIO, acrn.IOEventFD{Flags: acrn.IOEventFDFlagPIO, Addr: 0x4f0, Len: 1}, true},
		{"PIO 1 byte at 0x4f0, data match 0", guest.BenchPIO, acrn.IOEventFD{Flags: acrn.IOEventFDFlagPIO | acrn.IOEventFDFlagDataMatch, Addr: 0x4f0, Len: 1}, true},
		{"PIO 1 byte at 0x4f0, data match 1: writes of 0 exit", guest.BenchPIO, acrn.IOEventFD{Flags: acrn.IOEventFDFlagPIO | acrn.IOEventFDFlagDataMatch, Addr: 0x4f0, Len: 1, Data: 1}, false},
		{"MMIO 4 bytes at 0xd0000000", guest.BenchMMIO, acrn.IOEventFD{Addr: 0xd0000000, Len: 4}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, withFD := range []bool{false, true} {
				vm, err := h.NewVM(Config{MemorySize: 2 << 20})
				if err != nil {
					t.Fatal(err)
				}
				defer vm.Close()
				fd := newEventfd(t)
				if withFD {
					if err := vm.EventFDs().IOEventFD(tc.e, fd); err != nil {
						t.Fatal(err)
					}
				}
				vm.LoadImage(benchImage(tc.prog, n), guest.LoadAddr)
				vm.SetEntry(0, tc.prog.Entry())
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				res, err := vm.Run(ctx)
				if err != nil || res.Reason != StopExit || res.Status != 0 {
					t.Fatalf("Run = %v, %v", res, err)
				}
				_, unclaimed := vm.Unclaimed()
				signals := readEventfd(fd)
				t.Logf("ioeventfd %v: %d exits, %d unclaimed writes, %d signals", withFD, vm.Exits(), unclaimed, signals)
				if withFD && !tc.matches && (signals != 0 || unclaimed != n) {
					t.Errorf("with a non-matching ioeventfd: %d signals, %d unclaimed writes (want %d)", signals, unclaimed, n)
				}
				if withFD && tc.matches && (signals != n || unclaimed != 0 || vm.Exits() > 2) {
					t.Errorf("with the ioeventfd: %d signals (want %d), %d writes reached the dispatcher, %d exits", signals, n, unclaimed, vm.Exits())
				}
				if !withFD && (signals != 0 || unclaimed != n) {
					t.Errorf("without: %d signals, %d unclaimed writes (want %d)", signals, unclaimed, n)
				}
			}
		})
	}
}

// TestIRQFDDeliversItsMSI: a signal on an irqfd assigned with an MSI to
// vector 0x40 reaches the virq guest's handler for that vector (it reports
// the count and exits 0x56), through the GSI routing table, in the kernel.
func TestIRQFDDeliversItsMSI(t *testing.T) {
	h := openHV(t)
	vm, err := h.NewVM(Config{MemorySize: 2 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer vm.Close()
	fd := newEventfd(t)
	msi := acrn.MSIEntry{MSIAddr: 0xfee00000, MSIData: 0x40} // APIC id 0, fixed, edge, vector 0x40
	if err := vm.EventFDs().IRQFD(acrn.IRQFD{MSI: msi}, fd); err != nil {
		t.Fatal(err)
	}
	rep := kvmtest.NewReporter()
	if err := vm.PIO.Register(guest.PortReport, 4, "report", rep); err != nil {
		t.Fatal(err)
	}
	vm.LoadImage(guest.Virq.Code, guest.LoadAddr)
	e := guest.Virq.Entry()
	e.Regs.RSI = 23 | 1<<8 // route IOAPIC pin 23 (nobody raises it) to 0x40; take one interrupt
	if err := vm.SetEntry(0, e); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	type ran struct {
		res Result
		err error
	}
	done := make(chan ran, 1)
	go func() {
		res, err := vm.Run(ctx)
		done <- ran{res, err}
	}()
	rep.Await(t, 1) // ready, waiting with STI; HLT
	var one [8]byte
	binary.LittleEndian.PutUint64(one[:], 1)
	if _, err := unix.Write(fd, one[:]); err != nil {
		t.Fatal(err)
	}
	r := <-done
	if r.err != nil || r.res.Reason != StopExit || r.res.Status != 0x56 {
		t.Fatalf("Run = %v, %v; want exit 0x56 after one interrupt (reports %#x)", r.res, r.err, rep.Values())
	}
	if v := rep.Values(); len(v) != 2 || v[1] != 1 {
		t.Errorf("guest reported %#x, want [0 1]", v)
	}
}

// TestMSIVectorRoutes: an MSIVector takes a GSI of its own with an MSI
// route and gives it back on Close; a second Close does nothing; Signal
// and SetMessage after Close fail with os.ErrClosed; a VM without the
// in-kernel irqchip has none.
func TestMSIVectorRoutes(t *testing.T) {
	h := openHV(t)
	vm, err := h.NewVM(Config{MemorySize: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer vm.Close()
	f := vm.EventFDs()
	a, err := f.NewMSIVector(0xfee00000, 0x41)
	if err != nil {
		t.Fatal(err)
	}
	b, err := f.NewMSIVector(0xfee00000, 0x42)
	if err != nil {
		t.Fatal(err)
	}
	if a.GSI() != eventfd.FirstGSI || b.GSI() != eventfd.FirstGSI+1 || f.MSIRoutes() != 2 {
		t.Errorf("GSIs %d and %d, %d routes; want 24, 25 and 2", a.GSI(), b.GSI(), f.MSIRoutes())
	}
	if err := a.SetMessage(0xfee01000, 0x43); err != nil {
		t.Errorf("SetMessage: %v", err)
	}
	if got, want := routeOf(f, a.GSI()), kvm.MSIRoute(a.GSI(), 0xfee01000, 0x43); got != want {
		t.Errorf("route after SetMessage %+v, want %+v", got, want)
	}
	if err := a.Signal(); err != nil {
		t.Errorf("Signal: %v", err)
	}
	if err := a.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	if err := a.Close(); err != nil || f.MSIRoutes() != 1 {
		t.Errorf("second Close: %v, %d routes (want 1)", err, f.MSIRoutes())
	}
	if err := a.Signal(); !errors.Is(err, os.ErrClosed) {
		t.Errorf("Signal after Close: %v, want os.ErrClosed", err)
	}
	if err := a.SetMessage(0xfee00000, 0x41); !errors.Is(err, os.ErrClosed) {
		t.Errorf("SetMessage after Close: %v, want os.ErrClosed", err)
	}
	c, err := f.NewMSIVector(0xfee00000, 0x44)
	if err != nil || c.GSI() != eventfd.FirstGSI {
		t.Errorf("a vector after Close: %v, GSI %d (want the freed 24)", err, c.GSI())
	}
	b.Close()
	c.Close()
	if f.MSIRoutes() != 0 {
		t.Errorf("%d routes after closing every vector", f.MSIRoutes())
	}

	noChip, err := h.NewVM(Config{MemorySize: 1 << 20, NoIRQChip: true})
	if err != nil {
		t.Fatal(err)
	}
	defer noChip.Close()
	if _, err := noChip.EventFDs().NewMSIVector(0xfee00000, 0x41); !errors.Is(err, unix.ENOTSUP) {
		t.Errorf("without an irqchip: %v, want ENOTSUP", err)
	}
}

// TestMSIVectorsLeaveNoDescriptors: making and closing MSI vectors, and
// closing a VM with vectors closed in its OnClose, gives back every
// descriptor.
func TestMSIVectorsLeaveNoDescriptors(t *testing.T) {
	h := openHV(t)
	runOne := func() {
		vm, err := h.NewVM(Config{MemorySize: 1 << 20})
		if err != nil {
			t.Fatal(err)
		}
		var vs []*eventfd.MSIVector
		for i := range 8 {
			v, err := vm.EventFDs().NewMSIVector(0xfee00000, 0x40+uint32(i))
			if err != nil {
				t.Fatal(err)
			}
			vs = append(vs, v)
		}
		vs[0].Close()
		vm.OnClose(func() {
			for _, v := range vs {
				if err := v.Close(); err != nil {
					t.Error(err)
				}
			}
		})
		if err := vm.Close(); err != nil {
			t.Fatal(err)
		}
	}
	runOne()
	fds := kvmtest.OpenFDs(t)
	for range 50 {
		runOne()
	}
	if got := kvmtest.OpenFDs(t); got != fds {
		t.Errorf("open descriptors: %d before, %d after 50 VMs with 8 MSI vectors each", fds, got)
	}
}

// newVirqVM makes a VM for the virq guest (startVirq) and the MSI vector
// that raises its interrupt, 0x40; the VM closes when the test ends, after
// startVirq's cleanup has stopped its run, and the vector before it.
func newVirqVM(t *testing.T, cfg Config) (*VM, *eventfd.MSIVector) {
	t.Helper()
	vm, err := openHV(t).NewVM(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { vm.Close() })
	v, err := vm.EventFDs().NewMSIVector(0xfee00000, 0x40)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { v.Close() })
	return vm, v
}

// startVirq runs the virq guest on vm, taking n interrupts on vector 0x40
// (it exits 0x56 after the last), and returns a channel that gets each
// count the guest reports (0 first: ready) and one that gets Run's result.
func startVirq(t testing.TB, vm *VM, n int) (<-chan uint64, chan Result) {
	t.Helper()
	if n >= 1<<24 {
		t.Fatalf("virq takes at most %d interrupts", 1<<24-1)
	}
	reports := make(reportChan, n+1)
	if err := vm.PIO.Register(guest.PortReport, 4, "report", reports); err != nil {
		t.Fatal(err)
	}
	vm.LoadImage(guest.Virq.Code, guest.LoadAddr)
	e := guest.Virq.Entry()
	e.Regs.RSI = 23 | uint64(n)<<8 // route IOAPIC pin 23 (nobody raises it) to 0x40; take n interrupts
	if err := vm.SetEntry(0, e); err != nil {
		t.Fatal(err)
	}
	done := make(chan Result, 1)
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		res, err := vm.Run(context.Background())
		if err != nil {
			t.Error(err)
		}
		done <- res
	}()
	// A test that failed before its guest ended stops it, so the run
	// neither reports after the test nor keeps the VM from closing.
	t.Cleanup(func() {
		vm.Stop()
		<-finished
	})
	return reports, done
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

// TestMSIVectorDeliversItsMessage: a signal on an MSI vector reaches the
// virq guest's handler for vector 0x40, through the route SetMessage last
// gave it (its first message, vector 0x41, would end the guest with 0xff).
func TestMSIVectorDeliversItsMessage(t *testing.T) {
	h := openHV(t)
	vm, err := h.NewVM(Config{MemorySize: 2 << 20})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { vm.Close() }) // after startVirq's cleanup has stopped the run
	v, err := vm.EventFDs().NewMSIVector(0xfee00000, 0x41)
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	if err := v.SetMessage(0xfee00000, 0x40); err != nil {
		t.Fatal(err)
	}
	reports, done := startVirq(t, vm, 2)
	for want := uint64(0); want < 3; want++ {
		var got uint64
		select {
		case got = <-reports:
		case res := <-done:
			// The guest reports, then exits: both can be ready when this
			// looks, and select picks either. A report is sent before the
			// run ends (inside Run), so one waiting is taken first.
			select {
			case got = <-reports:
				done <- res
			default:
				t.Fatalf("guest ended with %v after %d interrupts", res, want)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("no report %d", want)
		}
		if got != want {
			t.Fatalf("guest reported %d, want %d", got, want)
		}
		if want < 2 {
			if err := v.Signal(); err != nil {
				t.Fatal(err)
			}
		}
	}
	if res := <-done; res.Reason != StopExit || res.Status != 0x56 {
		t.Errorf("Run = %v, want exit 0x56", res)
	}
}
