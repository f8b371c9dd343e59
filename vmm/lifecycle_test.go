package vmm

import (
	"errors"
	"path/filepath"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"ember/guest"
	"ember/hv"
	"ember/internal/kvmtest"
	"ember/layout"
	"ember/pc"
	"ember/virtio/virtiotest"
)

// TestStopPausesTheGuest runs the counter guest (a ring-3 loop incrementing a
// value in guest memory), stops it, checks the count stays put for 100 ms,
// resumes it and checks it moves again. Two vCPUs: the second waits for INIT
// inside KVM, and Stop must fetch it out of there too.
func TestStopPausesTheGuest(t *testing.T) {
	h := openHV(t)
	g, _ := newGuest(t, h, hv.Config{VCPUs: 2})
	if err := g.Stop(); !errors.Is(err, ErrNotStarted) {
		t.Errorf("Stop before Start: %v, want ErrNotStarted", err)
	}
	start(t, g, guest.Counter, 0)
	if err := g.Start(0, guest.LoadAddr, 0, 0); !errors.Is(err, ErrStarted) {
		t.Errorf("second Start: %v, want ErrStarted", err)
	}
	c0, t0 := counterPasses(t, g, 0), time.Now()
	time.Sleep(20 * time.Millisecond)
	c1 := readCounter(t, g)
	rate := float64(c1-c0) / time.Since(t0).Seconds()

	for round := range 3 {
		begin := time.Now()
		if err := g.Stop(); err != nil {
			t.Fatal(err)
		}
		took := time.Since(begin)
		if !g.Stopped() {
			t.Error("Stopped() is false after Stop")
		}
		stopped := readCounter(t, g)
		time.Sleep(100 * time.Millisecond)
		if after := readCounter(t, g); after != stopped {
			t.Fatalf("round %d: counter moved from %d to %d in 100 ms while stopped", round, stopped, after)
		}
		if err := g.Stop(); err != nil { // stopping a stopped guest does nothing
			t.Fatal(err)
		}
		if err := g.Resume(); err != nil {
			t.Fatal(err)
		}
		if g.Stopped() {
			t.Error("Stopped() is true after Resume")
		}
		moved := counterPasses(t, g, stopped)
		t.Logf("round %d: Stop took %v; counter held at %d for 100 ms, then moved on to %d", round, took, stopped, moved)
	}
	t.Logf("the guest counts about %.0f M/s at ring 3", rate/1e6)
	if err := g.Close(); err != nil {
		t.Fatal(err)
	}
	if res, err := g.Wait(); err != nil || res.Reason != hv.StopHost {
		t.Errorf("Wait after Close = %v, %v; want stopped by host", res, err)
	}
}

// TestRestartBootsASecondImage runs the counter guest, restarts the VM into a
// different image (second: reports a marker and its params, exits 2), then
// back into the counter guest, and into the interrupt guest with the
// controller registered before the first boot.
func TestRestartBootsASecondImage(t *testing.T) {
	h := openHV(t)
	g, rep := newGuest(t, h, hv.Config{VCPUs: 2})
	v := g.Virq()
	if err := v.Init(0); err != nil {
		t.Fatal(err)
	}
	var acks atomic.Int64
	acked := make(chan struct{}, 1)
	if err := v.Register(0, 12, func(int, int, any) { acks.Add(1); acked <- struct{}{} }, nil); err != nil {
		t.Fatal(err)
	}

	// 1. The counter guest, running at ring 3.
	start(t, g, guest.Counter, 0)
	first := counterPasses(t, g, 1000)

	// 2. Restart into another image in the same VM.
	begin := time.Now()
	if err := g.Restart(0, guest.LoadAddr, 0x1234, 0, Image{guest.Second.Code, guest.LoadAddr}); err != nil {
		t.Fatal(err)
	}
	wantExit(t, wait(t, g), 2)
	t.Logf("restart from the counter guest (at %d) to second and its exit took %v", first, time.Since(begin))
	if got := rep.Values(); !slices.Equal(got, []uint64{0x5ec0d, 0x1234}) {
		t.Errorf("second reported %#x, want [0x5ec0d 0x1234] (its marker and RSI)", got)
	}
	if c := readCounter(t, g); c != 0 {
		t.Errorf("counter is %d after the restart, want 0: RAM was not cleared", c)
	}
	if bytes, _ := g.VM().Memory().Slice(guest.LoadAddr+uint64(len(guest.Second.Code)), 16); !slices.Equal(bytes, make([]byte, 16)) {
		t.Errorf("the first image's bytes survive after the second's: % x", bytes)
	}

	// 3. And back: the counter guest counts from zero again.
	if err := g.Restart(0, guest.LoadAddr, 0, 0, Image{guest.Counter.Code, guest.LoadAddr}); err != nil {
		t.Fatal(err)
	}
	counterPasses(t, g, 0) // it was 0 after the last restart

	// 4. The interrupt guest: registrations made before the first boot
	// still work, on the IOAPIC and LAPIC the restart reset.
	rep = kvmtest.NewReporter()
	g.VM().PIO.Unregister(guest.PortReport)
	if err := g.VM().PIO.Register(guest.PortReport, 4, "report", rep); err != nil {
		t.Fatal(err)
	}
	if err := g.Restart(0, guest.LoadAddr, virqParams(12, 3), 0, Image{guest.Virq.Code, guest.LoadAddr}); err != nil {
		t.Fatal(err)
	}
	rep.Await(t, 1)
	for range 3 {
		if err := v.Inject(0, 12); err != nil {
			t.Fatal(err)
		}
		select {
		case <-acked:
		case <-time.After(10 * time.Second):
			t.Fatalf("no ack; guest reported %v", rep.Values())
		}
	}
	wantExit(t, wait(t, g), 0x56)
	if n := acks.Load(); n != 3 {
		t.Errorf("%d acks for 3 interrupts", n)
	}
}

// TestResetThenStart: Reset leaves the guest ready to be loaded and started.
func TestResetThenStart(t *testing.T) {
	h := openHV(t)
	g, rep := newGuest(t, h, hv.Config{})
	start(t, g, guest.Counter, 0)
	counterPasses(t, g, 0)
	if err := g.Reset(); err != nil {
		t.Fatal(err)
	}
	if c := readCounter(t, g); c != 0 {
		t.Errorf("counter %d after Reset", c)
	}
	start(t, g, guest.Second, 7)
	wantExit(t, wait(t, g), 2)
	if got := rep.Values(); !slices.Equal(got, []uint64{0x5ec0d, 7}) {
		t.Errorf("reported %#x", got)
	}
}

// TestResetClearsEveryKindOfRAM: Reset leaves no byte of the last run in
// guest RAM, whether it is anonymous memory or the memfd a VM with a
// device-model socket shares with its device model.
func TestResetClearsEveryKindOfRAM(t *testing.T) {
	h := openHV(t)
	for _, tt := range []struct {
		name string
		cfg  hv.Config
	}{
		{"anonymous", hv.Config{}},
		{"memfd", hv.Config{DeviceModelSocket: filepath.Join(t.TempDir(), "dm.sock")}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			g, _ := newGuest(t, h, tt.cfg)
			mem := g.VM().Memory()
			marker := []byte("the last run's secret")
			if _, err := mem.WriteAt(marker, 0x8000); err != nil {
				t.Fatal(err)
			}
			if err := g.Reset(); err != nil {
				t.Fatal(err)
			}
			got := make([]byte, len(marker))
			if _, err := mem.ReadAt(got, 0x8000); err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, make([]byte, len(got))) {
				t.Errorf("RAM holds %q after Reset, want zeros", got)
			}
		})
	}
}

// TestResetResetsVirtioDevices: a virtio device added through AddVirtio is
// reset when the guest is, before its RAM is cleared, so it stops using the
// last boot's queues, and the platform's tables are written again after it;
// without the PC platform AddVirtio says what is missing.
func TestResetResetsVirtioDevices(t *testing.T) {
	h := openHV(t)
	g, _ := newGuest(t, h, hv.Config{})
	dev := &virtiotest.Device{}
	if err := g.AddVirtio(dev); !errors.Is(err, ErrNoPlatform) {
		t.Fatalf("AddVirtio without a platform: %v", err)
	}
	if _, err := g.AttachPC(pc.Config{}); err != nil {
		t.Fatal(err)
	}
	if err := g.AddVirtio(dev); err != nil {
		t.Fatal(err)
	}
	if err := g.Reset(); err != nil {
		t.Fatal(err)
	}
	if n := dev.Resets(); n != 1 {
		t.Errorf("the device was reset %d times by the guest's Reset, want 1", n)
	}
	// The platform's tables are back in the cleared RAM: the RSDP signature.
	rsdp := make([]byte, 8)
	if _, err := g.VM().Memory().ReadAt(rsdp, layout.ACPIStart); err != nil || string(rsdp) != "RSD PTR " {
		t.Errorf("after Reset the RSDP reads %q (%v)", rsdp, err)
	}
}
