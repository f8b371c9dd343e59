// Package hvtest is what the tests of the packages built on hv share: the
// hypervisor opened once a test (or the test skipped without KVM) and a
// tiny guest run to its end. hv's own tests keep theirs, since hv cannot be
// imported back into its own package.
package hvtest

import (
	"context"
	"testing"
	"time"

	"ember/guest"
	"ember/hv"
	"ember/internal/kvmtest"
)

// Open opens the hypervisor for t and closes it when t ends; without
// /dev/kvm the test is skipped (kvmtest.Require).
func Open(t testing.TB) *hv.Hypervisor {
	t.Helper()
	kvmtest.Require(t)
	h, err := hv.Open()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	return h
}

// Run loads the tiny guest p into vm, runs it on vCPU 0 for at most 10
// seconds and returns how the run ended and the values the guest reported
// on guest.PortReport.
func Run(t testing.TB, vm *hv.VM, p guest.Program) (hv.Result, []uint64) {
	t.Helper()
	rep := kvmtest.NewReporter()
	if err := vm.PIO.Register(guest.PortReport, 4, "report", rep); err != nil {
		t.Fatal(err)
	}
	if err := vm.LoadImage(p.Code, guest.LoadAddr); err != nil {
		t.Fatal(err)
	}
	if err := vm.SetEntry(0, p.Entry()); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	res, err := vm.Run(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return res, rep.Values()
}
