package hv

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"ember/acrn/iorequest"
	"ember/guest"
	"ember/internal/kvmtest"
	"ember/ioreq"
	"ember/x86"
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

// stuckClient takes requests and never completes them: a device model that
// hangs, or a Service VM that is busy pausing the VM.
type stuckClient struct {
	got      chan ioreq.Ticket
	canceled chan error
}

func (c *stuckClient) Name() string { return "stuck" }

func (c *stuckClient) Submit(t ioreq.Ticket, _ *iorequest.IORequest) error {
	if err := t.Claim(); err != nil {
		return err
	}
	c.got <- t
	return nil
}

func (c *stuckClient) Cancel(_ ioreq.Ticket, err error) { c.canceled <- err }

// TestPauseAndStopDoNotWaitForAClient: a vCPU waiting for a client to
// complete its request counts as stopped, so Pause returns at once instead
// of after the request's time-out, and stopping the run fails the request
// at once (ErrAborted) instead of sitting the time-out out.
func TestPauseAndStopDoNotWaitForAClient(t *testing.T) {
	h := openHV(t)
	vm, err := h.NewVM(Config{MemorySize: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer vm.Close()
	c := &stuckClient{got: make(chan ioreq.Ticket, 1), canceled: make(chan error, 1)}
	if err := vm.IORequests().Router().Claim(ioreq.Range{Type: iorequest.ReqPortIO, Start: 0x5a0, End: 0x5a3}, c); err != nil {
		t.Fatal(err)
	}
	// Real mode: mov $0x5a0, %dx; in %dx, %eax; out %eax, $PortExit.
	code := []byte{0xba, 0xa0, 0x05, 0x66, 0xed, 0x66, 0xe7, guest.PortExit}
	if err := vm.LoadImage(code, guest.LoadAddr); err != nil {
		t.Fatal(err)
	}
	if err := vm.SetEntry(0, x86.Entry{Mode: x86.RealMode, RIP: guest.LoadAddr}); err != nil {
		t.Fatal(err)
	}
	run := vm.Start()
	select {
	case <-c.got:
	case <-time.After(10 * time.Second):
		t.Fatal("the guest's read never reached the client")
	}
	timeout := vm.IORequests().Timeout()
	start := time.Now()
	vm.Pause()
	if d := time.Since(start); d > timeout/2 {
		t.Errorf("Pause took %v with a vCPU waiting for its client (time-out %v)", d, timeout)
	}
	start = time.Now()
	run.Stop()
	if d := time.Since(start); d > timeout/2 {
		t.Errorf("stopping the run took %v with a vCPU waiting for its client (time-out %v)", d, timeout)
	}
	select {
	case err := <-c.canceled:
		if !errors.Is(err, ioreq.ErrAborted) {
			t.Errorf("request canceled with %v, want ErrAborted", err)
		}
	default:
		t.Error("the client never heard its request was given up")
	}
	if res, err := run.Wait(); err != nil || res.Reason != StopHost {
		t.Errorf("run ended %v %v, want StopHost", res, err)
	}
}
