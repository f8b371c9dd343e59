package hv

import (
	"context"
	"slices"
	"testing"
	"time"

	"ember/guest"
	"ember/internal/kvmtest"
)

// TestPauseBeforeRunHoldsTheFirstEntry: a VM paused before Run keeps its
// vCPUs out of the guest until Resume; the guest then runs to its exit.
func TestPauseBeforeRunHoldsTheFirstEntry(t *testing.T) {
	h := openHV(t)
	vm, err := h.NewVM(Config{MemorySize: 1 << 20, VCPUs: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer vm.Close()
	rep := kvmtest.NewReporter()
	if err := vm.PIO.Register(guest.PortReport, 4, "report", rep); err != nil {
		t.Fatal(err)
	}
	vm.LoadImage(guest.Real.Code, guest.LoadAddr)
	vm.SetEntry(0, guest.Real.Entry())
	vm.Pause()
	if !vm.Paused() {
		t.Fatal("Paused() false after Pause")
	}
	done := make(chan Result, 1)
	go func() {
		res, _ := vm.Run(context.Background())
		done <- res
	}()
	select {
	case res := <-done:
		t.Fatalf("a paused VM ran to %v", res)
	case <-time.After(100 * time.Millisecond):
	}
	vm.Pause() // while running and paused: returns at once
	if vm.Exits() != 0 {
		t.Errorf("%d exits while paused", vm.Exits())
	}
	vm.Resume()
	select {
	case res := <-done:
		if res.Reason != StopExit {
			t.Fatalf("after Resume: %v", res)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("guest did not finish after Resume")
	}
}

// TestResetRunsTheGuestAgain: after a run, Reset gives the same guest the same
// start and it does the same thing again.
func TestResetRunsTheGuestAgain(t *testing.T) {
	h := openHV(t)
	vm, err := h.NewVM(Config{MemorySize: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer vm.Close()
	rep := kvmtest.NewReporter()
	if err := vm.PIO.Register(guest.PortReport, 4, "report", rep); err != nil {
		t.Fatal(err)
	}
	vm.LoadImage(guest.Long64.Code, guest.LoadAddr)
	vm.SetEntry(0, guest.Long64.Entry())
	var runs [][]uint64
	for i := range 2 {
		if i > 0 {
			if err := vm.Reset(0, guest.Long64.Entry()); err != nil {
				t.Fatal(err)
			}
		}
		rep.Reset()
		res, err := vm.Run(context.Background())
		if err != nil || res.Reason != StopExit {
			t.Fatalf("run %d: %v, %v", i, res, err)
		}
		runs = append(runs, rep.Values())
	}
	if !slices.Equal(runs[0], runs[1]) {
		t.Errorf("first run reported %#x, the run after Reset %#x", runs[0], runs[1])
	}
	if err := vm.Reset(1, guest.Long64.Entry()); err == nil {
		t.Error("Reset on a vCPU that does not exist succeeded")
	}
}

// TestPauseAfterCloseDoesNothing: Pause and Resume on a closed VM return at
// once and leave it unpaused (Pause checks closed under the VM's lock, which
// Close takes, so a Pause never kicks vCPUs that Close has released).
func TestPauseAfterCloseDoesNothing(t *testing.T) {
	h := openHV(t)
	vm, err := h.NewVM(Config{MemorySize: 1 << 20, VCPUs: 2})
	if err != nil {
		t.Fatal(err)
	}
	if err := vm.Close(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		vm.Pause()
		vm.Resume()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Pause on a closed VM did not return")
	}
	if vm.Paused() {
		t.Error("a closed VM reports itself paused")
	}
}
