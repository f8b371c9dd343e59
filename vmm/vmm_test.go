package vmm

import (
	"encoding/binary"
	"runtime"
	"testing"
	"time"

	"ember/guest"
	"ember/hv"
	"ember/internal/hvtest"
	"ember/internal/kvmtest"
)

// openHV opens the hypervisor, or skips the test without KVM.
func openHV(t testing.TB) *hv.Hypervisor { return hvtest.Open(t) }

// newGuest creates a guest with 2 MiB of RAM and a reporter on guest.PortReport.
func newGuest(t testing.TB, h *hv.Hypervisor, cfg hv.Config) (*Guest, *kvmtest.Reporter) {
	t.Helper()
	if cfg.MemorySize == 0 {
		cfg.MemorySize = 2 << 20
	}
	g, err := New(h, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { g.Close() })
	rep := kvmtest.NewReporter()
	if err := g.VM().PIO.Register(guest.PortReport, 4, "report", rep); err != nil {
		t.Fatal(err)
	}
	return g, rep
}

// start loads p and starts it with params in RSI.
func start(t testing.TB, g *Guest, p guest.Program, params uint64) {
	t.Helper()
	if err := g.VM().LoadImage(p.Code, guest.LoadAddr); err != nil {
		t.Fatal(err)
	}
	if err := g.Start(0, guest.LoadAddr, params, 0); err != nil {
		t.Fatal(err)
	}
}

// wait waits for the guest's run to end, failing the test after 30 s.
func wait(t testing.TB, g *Guest) hv.Result {
	t.Helper()
	done := make(chan struct{})
	var res hv.Result
	var err error
	go func() {
		defer close(done)
		res, err = g.Wait()
	}()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		g.Close()
		<-done
		t.Fatalf("guest still running after 30 s (ended with %v once closed)", res)
	}
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// wantExit fails t unless res is an exit with status.
func wantExit(t testing.TB, res hv.Result, status int) {
	t.Helper()
	if res.Reason != hv.StopExit || res.Status != status {
		t.Fatalf("guest ended with %v, want exit status %#x", res, status)
	}
}

func readCounter(t testing.TB, g *Guest) uint64 {
	t.Helper()
	var b [8]byte
	if _, err := g.VM().Memory().ReadAt(b[:], guest.CounterAddr); err != nil {
		t.Fatal(err)
	}
	return binary.LittleEndian.Uint64(b[:])
}

// counterPasses waits until the counter guest's count exceeds n and returns it.
func counterPasses(t testing.TB, g *Guest, n uint64) uint64 {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		c := readCounter(t, g)
		if c > n {
			return c
		}
		if time.Now().After(deadline) {
			t.Fatalf("counter stuck at %d, want it past %d", c, n)
		}
		time.Sleep(time.Millisecond)
	}
}

// settleGoroutines waits up to 5 s for the goroutine count to come down to want.
func settleGoroutines(want int) int {
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > want && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	return runtime.NumGoroutine()
}
