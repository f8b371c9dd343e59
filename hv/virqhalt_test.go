package hv

import (
	"bytes"
	"testing"
	"time"

	"ember/guest"
)

// TestVirqGuestTakesAnInterruptOnItsHLT: the lab now and then delivers the
// interrupt a guest waits for on the HLT after STI, inside STI's shadow,
// so the handler's IRET returns to a HLT nothing ends (README, "Host
// notes"; guest/src/idle.inc). Here that is made to happen on any KVM: the
// virq guest, halted in its wait for its one interrupt, is paused, put back
// on its HLT, and resumed with the interrupt pending, which KVM delivers
// before the HLT runs. The guest must count the interrupt and exit 0x56,
// not halt for good.
func TestVirqGuestTakesAnInterruptOnItsHLT(t *testing.T) {
	vm, v := newVirqVM(t, Config{MemorySize: 2 << 20})
	i := bytes.Index(guest.Virq.Code, []byte{0xfb, 0xf4}) // STI; HLT
	if i < 0 {
		t.Fatal("no STI; HLT in the virq guest")
	}
	halt := guest.LoadAddr + uint64(i) + 1

	reports, done := startVirq(t, vm, 1)
	select {
	case got := <-reports:
		if got != 0 {
			t.Fatalf("guest reported %d, want 0 (ready)", got)
		}
	case res := <-done:
		t.Fatalf("guest ended with %v before it was ready", res)
	case <-time.After(10 * time.Second):
		t.Fatal("guest not ready")
	}
	time.Sleep(100 * time.Millisecond) // into its HLT
	vm.Pause()
	regs, sregs, err := vm.VCPURegs(0)
	if err != nil {
		t.Fatal(err)
	}
	if regs.RIP != halt+1 || regs.RFLAGS&(1<<9) == 0 {
		t.Fatalf("guest at RIP %#x RFLAGS %#x, want halted past its HLT at %#x with interrupts on", regs.RIP, regs.RFLAGS, halt)
	}
	regs.RIP = halt
	if err := vm.SetVCPURegs(0, regs, sregs); err != nil {
		t.Fatal(err)
	}
	if err := v.Signal(); err != nil {
		t.Fatal(err)
	}
	vm.Resume()
	select {
	case res := <-done:
		if res.Reason != StopExit || res.Status != 0x56 {
			t.Errorf("Run = %v, want exit 0x56", res)
		}
	case <-time.After(10 * time.Second):
		vm.Stop()
		<-done
		regs, _, _ := vm.VCPURegs(0)
		t.Fatalf("guest did not end: RIP %#x, %d interrupts taken of %d", regs.RIP, regs.RBP, regs.RCX)
	}
	select {
	case got := <-reports:
		if got != 1 {
			t.Errorf("guest reported %d, want 1", got)
		}
	default:
		t.Error("guest did not report its interrupt")
	}
}
