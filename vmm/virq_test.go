package vmm

import (
	"errors"
	"os"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"ember/guest"
	"ember/hv"
	"ember/internal/kvmtest"
)

// virqParams is the virq guest's RSI: the IOAPIC pin and how many
// interrupts to take before exiting.
func virqParams(pin, n int) uint64 { return uint64(pin) | uint64(n)<<8 }

// TestRegisterAckFiresOncePerEOI injects an interrupt, waits for its
// acknowledgement, and repeats; the guest EOIs each interrupt once, so the
// AckFunc must run exactly once per injection, with the registered vCPU,
// IRQ and cookie.
func TestRegisterAckFiresOncePerEOI(t *testing.T) {
	h := openHV(t)
	tests := []struct {
		name string
		irq  int
		n    int
	}{
		{"ISA pin 5 (also on the PIC)", 5, 50},
		{"pin 10", 10, 500},
		{"PCI pin 16 (IOAPIC only)", 16, 50},
		{"last pin 23", 23, 50},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g, rep := newGuest(t, h, hv.Config{})
			v := g.Virq()
			if err := v.Init(0); err != nil {
				t.Fatal(err)
			}
			type ack struct {
				vcpu, irq int
				cookie    any
			}
			acks := make(chan ack, 1)
			var count atomic.Int64
			cookie := &struct{ name string }{tt.name}
			err := v.Register(0, tt.irq, func(vcpu, irq int, c any) {
				count.Add(1)
				acks <- ack{vcpu, irq, c}
			}, cookie)
			if err != nil {
				t.Fatal(err)
			}
			start(t, g, guest.Virq, virqParams(tt.irq, tt.n))
			rep.Await(t, 1) // routed and ready
			begin := time.Now()
			for i := 1; i <= tt.n; i++ {
				if err := v.Inject(0, tt.irq); err != nil {
					t.Fatal(err)
				}
				select {
				case a := <-acks:
					if a.vcpu != 0 || a.irq != tt.irq || a.cookie != cookie {
						t.Fatalf("ack %d: called with (%d, %d, %v), want (0, %d, %p)", i, a.vcpu, a.irq, a.cookie, tt.irq, cookie)
					}
				case <-time.After(10 * time.Second):
					t.Fatalf("no ack for injection %d after 10 s (guest reported %v)", i, rep.Values())
				}
			}
			elapsed := time.Since(begin)
			wantExit(t, wait(t, g), 0x56)
			if got := count.Load(); got != int64(tt.n) {
				t.Errorf("ack ran %d times for %d EOIs", got, tt.n)
			}
			want := make([]uint64, tt.n+1)
			for i := range want {
				want[i] = uint64(i)
			}
			if got := rep.Values(); !slices.Equal(got, want) {
				t.Errorf("guest reported %v, want 0 (ready), 1..%d", got, tt.n)
			}
			t.Logf("IRQ %d: %d inject→EOI→ack round trips, %v each", tt.irq, tt.n, elapsed/time.Duration(tt.n))
		})
	}
}

// TestInjectBeforeEOIIsOneInterrupt: the line is level-triggered, so raising
// it twice before the guest EOIs gives one interrupt and one ack. The guest is
// stopped while the host injects twice, so it cannot take the first before
// the second.
func TestInjectBeforeEOIIsOneInterrupt(t *testing.T) {
	h := openHV(t)
	g, rep := newGuest(t, h, hv.Config{})
	v := g.Virq()
	if err := v.Init(0); err != nil {
		t.Fatal(err)
	}
	var count atomic.Int64
	acked := make(chan struct{}, 4)
	if err := v.Register(0, 7, func(int, int, any) { count.Add(1); acked <- struct{}{} }, nil); err != nil {
		t.Fatal(err)
	}
	start(t, g, guest.Virq, virqParams(7, 2))
	rep.Await(t, 1)
	if err := g.Stop(); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if err := v.Inject(0, 7); err != nil {
			t.Fatal(err)
		}
	}
	if err := g.Resume(); err != nil {
		t.Fatal(err)
	}
	<-acked
	rep.Await(t, 2)
	if err := v.Inject(0, 7); err != nil {
		t.Fatal(err)
	}
	wantExit(t, wait(t, g), 0x56)
	<-acked
	if got := count.Load(); got != 2 {
		t.Errorf("%d acks for 2 interrupts", got)
	}
	if got := rep.Values(); !slices.Equal(got, []uint64{0, 1, 2}) {
		t.Errorf("guest reported %v, want [0 1 2]", got)
	}
}

// TestPassthroughRaisesIRQFromHostEventfd: a host eventfd registered with
// RegisterPassthrough raises the guest's IRQ when signalled (by the "host
// device" or by HandlePassthrough), and the guest's EOI signals the unmask
// eventfd once per interrupt.
func TestPassthroughRaisesIRQFromHostEventfd(t *testing.T) {
	h := openHV(t)
	g, rep := newGuest(t, h, hv.Config{})
	v := g.Virq()
	if err := v.Init(0); err != nil {
		t.Fatal(err)
	}
	src, err := unix.Eventfd(0, unix.EFD_CLOEXEC)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(src)
	ufd, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		t.Fatal(err)
	}
	unmask := os.NewFile(uintptr(ufd), "unmask")
	defer unmask.Close()
	if err := v.RegisterPassthrough(0, 11, src, ufd); err != nil {
		t.Fatal(err)
	}
	if err := v.Register(0, 11, nil, nil); !errors.Is(err, ErrRegistered) {
		t.Errorf("Register of a passthrough IRQ: %v, want ErrRegistered", err)
	}
	awaitUnmask := func(what string) {
		t.Helper()
		unmask.SetReadDeadline(time.Now().Add(10 * time.Second))
		var b [8]byte
		if _, err := unmask.Read(b[:]); err != nil {
			t.Fatalf("%s: no EOI on the unmask eventfd: %v (guest reported %v)", what, err, rep.Values())
		}
		if n := uint64(b[0]) | uint64(b[1])<<8; n != 1 {
			t.Errorf("%s: unmask signalled %d times for one interrupt", what, n)
		}
	}
	const n = 3
	start(t, g, guest.Virq, virqParams(11, n))
	rep.Await(t, 1)
	if err := signal(src); err != nil { // the host device interrupts
		t.Fatal(err)
	}
	awaitUnmask("host signal")
	if err := v.HandlePassthrough(src); err != nil {
		t.Fatal(err)
	}
	awaitUnmask("HandlePassthrough")
	if err := signal(src); err != nil {
		t.Fatal(err)
	}
	wantExit(t, wait(t, g), 0x56)
	awaitUnmask("last interrupt")
	if got := rep.Values(); !slices.Equal(got, []uint64{0, 1, 2, 3}) {
		t.Errorf("guest reported %v, want [0 1 2 3]", got)
	}
	if err := v.HandlePassthrough(src + 1000); !errors.Is(err, ErrNotRegistered) {
		t.Errorf("HandlePassthrough of an unknown eventfd: %v, want ErrNotRegistered", err)
	}
}

// TestVirqErrors: the calls refuse what the seed's bool results refuse.
func TestVirqErrors(t *testing.T) {
	h := openHV(t)
	g, _ := newGuest(t, h, hv.Config{VCPUs: 2})
	v := g.Virq()
	nop := func(int, int, any) {}
	if err := v.Register(0, 3, nop, nil); !errors.Is(err, ErrNotInitialized) {
		t.Errorf("Register before Init: %v, want ErrNotInitialized", err)
	}
	if err := v.Init(2); err == nil {
		t.Error("Init on a vCPU that does not exist succeeded")
	}
	if err := v.Init(0); err != nil {
		t.Fatal(err)
	}
	if err := v.Init(0); err != nil {
		t.Errorf("second Init: %v", err)
	}
	for _, tt := range []struct {
		name      string
		vcpu, irq int
	}{
		{"IRQ -1", 0, -1}, {"IRQ 24", 0, NumIRQs}, {"vCPU 2 of 2", 2, 3}, {"vCPU -1", -1, 3},
	} {
		if err := v.Register(tt.vcpu, tt.irq, nop, nil); err == nil {
			t.Errorf("Register %s succeeded", tt.name)
		}
	}
	if err := v.Register(1, 3, nop, nil); err != nil {
		t.Fatal(err)
	}
	if err := v.Register(1, 3, nop, nil); !errors.Is(err, ErrRegistered) {
		t.Errorf("second Register of IRQ 3: %v, want ErrRegistered", err)
	}
	if err := v.Inject(0, 3); err == nil {
		t.Error("Inject on another vCPU than registered succeeded")
	}
	if err := v.Inject(1, 4); !errors.Is(err, ErrNotRegistered) {
		t.Errorf("Inject of an unregistered IRQ: %v, want ErrNotRegistered", err)
	}
	if err := v.RegisterPassthrough(0, 5, 0, -1); err == nil { // stdin is no eventfd
		t.Error("RegisterPassthrough of a non-eventfd succeeded")
	}

	noChip, _ := newGuest(t, h, hv.Config{NoIRQChip: true})
	if err := noChip.Virq().Init(0); !errors.Is(err, ErrNoIRQChip) {
		t.Errorf("Init without an irqchip: %v, want ErrNoIRQChip", err)
	}
	g.Close()
	if err := v.Inject(1, 3); !errors.Is(err, ErrClosed) {
		t.Errorf("Inject after Close: %v, want ErrClosed", err)
	}
}

// TestCloseReleasesEverything creates, runs and closes guests with registered
// and passthrough interrupts, closing some while the guest still runs, and
// checks descriptors and goroutines come back to where they were.
func TestCloseReleasesEverything(t *testing.T) {
	h := openHV(t)
	src, err := unix.Eventfd(0, unix.EFD_CLOEXEC)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(src)
	var closeTime atomic.Int64
	cycle := func(i int) {
		g, err := New(h, hv.Config{MemorySize: 2 << 20})
		if err != nil {
			t.Fatal(err)
		}
		defer g.Close()
		rep := kvmtest.NewReporter()
		if err := g.VM().PIO.Register(guest.PortReport, 4, "report", rep); err != nil {
			t.Fatal(err)
		}
		v := g.Virq()
		if err := v.Init(0); err != nil {
			t.Fatal(err)
		}
		acked := make(chan struct{}, 1)
		for _, irq := range []int{4, 9, 17} {
			if err := v.Register(0, irq, func(int, int, any) { acked <- struct{}{} }, nil); err != nil {
				t.Fatal(err)
			}
		}
		if err := v.RegisterPassthrough(0, 20, src, -1); err != nil {
			t.Fatal(err)
		}
		start(t, g, guest.Virq, virqParams(9, 5))
		rep.Await(t, 1)
		if err := v.Inject(0, 9); err != nil {
			t.Fatal(err)
		}
		select {
		case <-acked:
		case <-time.After(10 * time.Second):
			t.Fatalf("cycle %d: no ack", i)
		}
		// Half the guests are closed mid-run, half after a Stop.
		if i%2 == 0 {
			if err := g.Stop(); err != nil {
				t.Fatal(err)
			}
		}
		begin := time.Now()
		if err := g.Close(); err != nil {
			t.Fatal(err)
		}
		closeTime.Add(int64(time.Since(begin)))
	}
	cycle(0) // warm up threads and descriptors the runtime creates lazily
	fds, gs := kvmtest.OpenFDs(t), settleGoroutines(0)
	const n = 40
	for i := range n {
		cycle(i)
	}
	if got := kvmtest.OpenFDs(t); got != fds {
		t.Errorf("open descriptors: %d before, %d after %d guests", fds, got, n)
	}
	if got := settleGoroutines(gs); got != gs {
		t.Errorf("goroutines: %d before, %d after %d guests", gs, got, n)
	}
	t.Logf("%d guests with 3 registered and 1 passthrough IRQs: %d descriptors and %d goroutines before and after; Close took %v on average",
		n, fds, gs, time.Duration(closeTime.Load()/(n+1)))
}
