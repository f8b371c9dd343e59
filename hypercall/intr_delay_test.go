package hypercall

import (
	"testing"
	"time"

	"ember/acrn"
)

// TestDelayedInjectionsKeepTheirOrder: with INTR_CMD_DELAY_INT in force,
// SET_HIGH then SET_LOW on a line reach the VM in that order, every time,
// and injections made after the delay is cancelled do not overtake those
// still waiting.
func TestDelayedInjectionsKeepTheirOrder(t *testing.T) {
	h := fakeService(t)
	id := createVM(t, h, 1)
	m := h.table.ids.Lookup(uint64(id)).vm.(*fakeMachine)
	delay := func(ms uint64) {
		t.Helper()
		p := hostWrite(t, h, gpaParam, &acrn.IntrMonitor{Cmd: acrn.IntrCmdDelayInt, Buffer: [48]uint64{ms}})
		if r := h.Hypercall(acrn.HCVMIntrMonitor, uint64(id), p); r != 0 {
			t.Fatal(acrn.ResultError(r))
		}
	}
	line := func(op uint32) {
		t.Helper()
		if r := h.Hypercall(acrn.HCSetIRQLine, uint64(id), acrn.IRQLineOps{GSI: 5, Op: op}.Param()); r != 0 {
			t.Fatal(acrn.ResultError(r))
		}
	}
	const pairs = 200
	delay(1)
	for range pairs {
		line(acrn.GSISetHigh)
		line(acrn.GSISetLow)
	}
	delay(0)
	line(acrn.GSISetHigh) // after every delayed one
	deadline := time.Now().Add(10 * time.Second)
	for {
		m.mu.Lock()
		got := append([]bool(nil), m.gsi5...)
		m.mu.Unlock()
		if len(got) == 2*pairs+1 {
			for i, high := range got {
				if want := i%2 == 0; high != want {
					t.Fatalf("injection %d set the line %v, want %v: delayed injections overtook each other", i, high, want)
				}
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d injections arrived", len(got), 2*pairs+1)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
