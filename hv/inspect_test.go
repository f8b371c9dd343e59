package hv

import (
	"encoding/binary"
	"fmt"
	"strings"
	"testing"
	"time"

	"ember/guest"
	"ember/kvm"
	"ember/memory"
	"ember/x86"
)

// TestInspectReportsARunningGuest: Inspect of a guest spinning on one
// instruction gives its boot vCPU runnable at that instruction and the AP not
// started, and the guest runs on afterwards, unpaused.
func TestInspectReportsARunningGuest(t *testing.T) {
	vm := spinningVM(t, openHV(t), Config{VCPUs: 2, Logger: quiet}, 1)
	run := vm.Start()
	defer run.Stop()
	time.Sleep(50 * time.Millisecond)
	report := inspectReport(t, vm)
	t.Logf("report:\n%s", report)
	for _, want := range []string{
		// Real mode: the entry's CS holds the load address's segment.
		fmt.Sprintf("vCPU 0: runnable RIP %#x ", guest.LoadAddr&0xf),
		fmt.Sprintf(" CS %#x ", guest.LoadAddr>>4),
		"vCPU 1: waiting for INIT",
		"vCPU 0 LAPIC: IRR [",
		"IOAPIC: IRR ",
	} {
		if !strings.Contains(report, want) {
			t.Errorf("the report has no %q", want)
		}
	}
	if vm.Paused() {
		t.Error("the VM is still paused after Inspect")
	}
	select {
	case <-run.Done():
		t.Fatal("the run ended after Inspect")
	default:
	}
}

// blockingDevice is a port device whose writes wait until release is
// closed: a device that does not return.
type blockingDevice struct{ entered, release chan struct{} }

func (d blockingDevice) Read(uint64, []byte) {}
func (d blockingDevice) Write(uint64, []byte) {
	close(d.entered)
	<-d.release
}

// TestInspectNamesAVCPUStuckInADevice: when a vCPU cannot leave a device,
// Inspect gives up after its wait with an error saying so, and does not leave
// the VM paused: the guest goes on once the device returns.
func TestInspectNamesAVCPUStuckInADevice(t *testing.T) {
	h := openHV(t)
	vm, err := h.NewVM(Config{MemorySize: 1 << 20, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer vm.Close()
	dev := blockingDevice{make(chan struct{}), make(chan struct{})}
	if err := vm.PIO.Register(0x4f0, 1, "blocking", dev); err != nil {
		t.Fatal(err)
	}
	// mov $0x4f0, %dx; out %al, (%dx); jmp .
	if err := vm.LoadImage([]byte{0xba, 0xf0, 0x04, 0xee, 0xeb, 0xfe}, guest.LoadAddr); err != nil {
		t.Fatal(err)
	}
	if err := vm.SetEntry(0, x86.Entry{Mode: x86.RealMode, RIP: guest.LoadAddr}); err != nil {
		t.Fatal(err)
	}
	run := vm.Start()
	defer run.Stop()
	<-dev.entered
	start := time.Now()
	_, err = vm.Inspect()
	if err == nil || !strings.Contains(err.Error(), "vCPU 0 running") {
		t.Fatalf("Inspect with vCPU 0 in a device = %v; want an error naming vCPU 0 running", err)
	}
	if d := time.Since(start); d > inspectWait+time.Second {
		t.Errorf("Inspect took %v, want about %v", d, inspectWait)
	}
	if vm.Paused() {
		t.Error("the VM is left paused")
	}
	close(dev.release)
	// Once the device returns, the vCPU is in the guest's jmp again and
	// Inspect works.
	deadline := time.Now().Add(5 * time.Second)
	for {
		s, err := vm.Inspect()
		if err == nil {
			if got := s.vcpus[0].regs.RIP; got != guest.LoadAddr&0xf+4 {
				t.Errorf("RIP after the device returned = %#x, want %#x (the jmp after the out)", got, guest.LoadAddr&0xf+4)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("Inspect after the device returned: %v", err)
		}
	}
}

// TestReportLines: the lines a Report writes for given states, without KVM.
func TestReportLines(t *testing.T) {
	// The offsets are spelled out from their sources, so the test checks
	// hv/report's own against them: the Intel SDM's LAPIC register page
	// (TPR 0x80, ISR 0x100, IRR 0x200, LVT timer 0x320, initial count
	// 0x380, current count 0x390) and Linux's struct kvm_pic_state (irr,
	// imr, isr at 1, 2, 3) and struct kvm_ioapic_state (irr at 16, the
	// redirection table at 24).
	var lapic kvm.LAPICState
	le := binary.LittleEndian
	le.PutUint32(lapic.Regs[0x200+16:], 1<<1)    // vector 0x21 requested
	le.PutUint32(lapic.Regs[0x100+16*7:], 1<<31) // vector 0xff in service
	le.PutUint32(lapic.Regs[0x80:], 0x20)
	le.PutUint32(lapic.Regs[0x320:], 0xec)
	le.PutUint32(lapic.Regs[0x380:], 1000)
	le.PutUint32(lapic.Regs[0x390:], 400)

	var ioapic kvm.IRQChip
	const masked, level, remoteIRR = 1 << 16, 1 << 15, 1 << 14
	le.PutUint32(ioapic.Chip[16:], 1<<4)
	for pin := range 24 {
		le.PutUint64(ioapic.Chip[24+8*pin:], masked)
	}
	le.PutUint64(ioapic.Chip[24+8*4:], 0x24)                  // COM1: edge, unmasked
	le.PutUint64(ioapic.Chip[24+8*11:], 0x31|level|remoteIRR) // level, awaiting EOI
	var pic kvm.IRQChip
	pic.Chip[1], pic.Chip[2], pic.Chip[3] = 0x01, 0xfe, 0x00 // IRR, IMR, ISR

	halted := vcpuState{mp: kvm.MPStateHalted, lapic: &lapic}
	halted.regs.RIP, halted.regs.RSP, halted.regs.RFLAGS = 0xffffffff81000000, 0x8000, 0x202
	halted.sregs.CS.Selector, halted.sregs.CR0 = 0x10, 0x80050033
	// The same vCPU with its timer in TSC-deadline mode, once with the
	// deadline ahead and once passed (an interrupt never delivered).
	deadlineLAPIC := lapic
	le.PutUint32(deadlineLAPIC.Regs[0x320:], 2<<17|0xec)
	waiting, missed := halted, halted
	waiting.lapic, missed.lapic = &deadlineLAPIC, &deadlineLAPIC
	waiting.timer = &tscTimer{deadline: 0x1000, tsc: 0x400}
	missed.timer = &tscTimer{deadline: 0x1000, tsc: 0x1500}
	unarmed := waiting
	unarmed.timer = &tscTimer{tsc: 0x1500}
	// A Linux guest's spinlock waiter halted with interrupts off, waiting
	// for a paravirtual kick, beside the lock's spinning holder-to-be.
	kickWait := halted
	kickWait.regs.RFLAGS = 0x46
	spinning := vcpuState{mp: kvm.MPStateRunnable}
	spinning.regs.RFLAGS = 0x46
	faulting := vcpuState{mp: kvm.MPStateRunnable}
	faulting.events.Exception.Pending, faulting.events.Exception.Nr, faulting.events.Exception.ErrorCode = 1, 14, 2
	faulting.events.Interrupt.Shadow = 1
	faulting.events.NMI.Masked = 1
	faulting.sregs.CS.DPL = 3
	// The lab's hung guests: a page fault pending at the vCPU's own RIP,
	// its page tables past the end of RAM (Inspect found them so).
	lost := vcpuState{mp: kvm.MPStateRunnable, rootOutside: true}
	lost.regs.RIP, lost.regs.RFLAGS = 0xffffffffc036f20c, 0x10246
	lost.sregs.CR0, lost.sregs.CR2, lost.sregs.CR3, lost.sregs.CR4, lost.sregs.EFER = 0x80050033, 0xffffffffc036f20c, 0x100a44000, 0x751eb0, 0xd01
	lost.events.Exception.Pending, lost.events.Exception.Nr, lost.events.Exception.ErrorCode = 1, 14, 0x10

	tests := []struct {
		name string
		s    State
		want []string
	}{
		{"a halted vCPU and the chips", State{vcpus: []vcpuState{halted}, chips: []*kvm.IRQChip{&pic, &pic, &ioapic}}, []string{
			"vCPU 0: halted RIP 0xffffffff81000000 RSP 0x8000 RFLAGS 0x202 CS 0x10 CPL 0 CR0 0x80050033 CR2 0x0 CR3 0x0 CR4 0x0 EFER 0x0",
			"vCPU 0 LAPIC: IRR [0x21] ISR [0xff] TPR 0x20 timer LVT 0xec (unmasked) count 400 of 1000",
			"PIC: master IRR 0x01 IMR 0xfe ISR 0x00; slave IRR 0x01 IMR 0xfe ISR 0x00",
			"IOAPIC: IRR 0x10; pin 4 vector 0x24 edge; pin 11 vector 0x31 level remote-IRR",
		}},
		{"TSC-deadline timers", State{vcpus: []vcpuState{waiting, missed, unarmed}}, []string{
			"vCPU 0: halted RIP 0xffffffff81000000 RSP 0x8000 RFLAGS 0x202 CS 0x10 CPL 0 CR0 0x80050033 CR2 0x0 CR3 0x0 CR4 0x0 EFER 0x0",
			"vCPU 0 LAPIC: IRR [0x21] ISR [0xff] TPR 0x20 timer LVT 0x400ec (unmasked) count 400 of 1000; TSC deadline 0x1000, due in 3072 ticks",
			"vCPU 1: halted RIP 0xffffffff81000000 RSP 0x8000 RFLAGS 0x202 CS 0x10 CPL 0 CR0 0x80050033 CR2 0x0 CR3 0x0 CR4 0x0 EFER 0x0",
			"vCPU 1 LAPIC: IRR [0x21] ISR [0xff] TPR 0x20 timer LVT 0x400ec (unmasked) count 400 of 1000; TSC deadline 0x1000, passed 1280 ticks ago",
			"vCPU 2: halted RIP 0xffffffff81000000 RSP 0x8000 RFLAGS 0x202 CS 0x10 CPL 0 CR0 0x80050033 CR2 0x0 CR3 0x0 CR4 0x0 EFER 0x0",
			"vCPU 2 LAPIC: IRR [0x21] ISR [0xff] TPR 0x20 timer LVT 0x400ec (unmasked) count 400 of 1000; TSC deadline not armed",
		}},
		{"pending events, no irqchip", State{vcpus: []vcpuState{{}, faulting}}, []string{
			"vCPU 0: runnable RIP 0x0 RSP 0x0 RFLAGS 0x0 CS 0x0 CPL 0 CR0 0x0 CR2 0x0 CR3 0x0 CR4 0x0 EFER 0x0; interrupts off",
			"vCPU 1: runnable RIP 0x0 RSP 0x0 RFLAGS 0x0 CS 0x0 CPL 3 CR0 0x0 CR2 0x0 CR3 0x0 CR4 0x0 EFER 0x0; interrupts off; exception 14 pending (error code 0x2); interrupt shadow; NMIs masked",
		}},
		{"page tables outside RAM", State{vcpus: []vcpuState{lost}}, []string{
			"vCPU 0: runnable RIP 0xffffffffc036f20c RSP 0x0 RFLAGS 0x10246 CS 0x0 CPL 0 CR0 0x80050033 CR2 0xffffffffc036f20c CR3 0x100a44000 CR4 0x751eb0 EFER 0xd01; exception 14 pending (error code 0x10); page tables at 0x100a44000, outside guest RAM",
		}},
		{"halted with interrupts off", State{vcpus: []vcpuState{spinning, kickWait}}, []string{
			"vCPU 0: runnable RIP 0x0 RSP 0x0 RFLAGS 0x46 CS 0x0 CPL 0 CR0 0x0 CR2 0x0 CR3 0x0 CR4 0x0 EFER 0x0; interrupts off",
			"vCPU 1: halted RIP 0xffffffff81000000 RSP 0x8000 RFLAGS 0x46 CS 0x10 CPL 0 CR0 0x80050033 CR2 0x0 CR3 0x0 CR4 0x0 EFER 0x0; interrupts off (only an NMI, an INIT or a paravirtual kick wakes it)",
			"vCPU 1 LAPIC: IRR [0x21] ISR [0xff] TPR 0x20 timer LVT 0xec (unmasked) count 400 of 1000",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var b strings.Builder
			if err := tt.s.Report(&b); err != nil {
				t.Fatal(err)
			}
			got := strings.Split(strings.TrimSuffix(b.String(), "\n"), "\n")
			if strings.Join(got, "\n") != strings.Join(tt.want, "\n") {
				t.Errorf("Report:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}
		})
	}
}

// TestInspectReadsTheTSCDeadline: a vCPU whose LAPIC timer is in
// TSC-deadline mode gets its deadline in the report, read from KVM
// (IA32_TSC_DEADLINE beside the TSC) — where a hung guest's timer stands.
// The deadline is set from the host far ahead; KVM keeps it only where the
// vCPU's CPUID offers the TSC-deadline timer, so "due in" is asked only there.
func TestInspectReadsTheTSCDeadline(t *testing.T) {
	vm := spinningVM(t, openHV(t), Config{Logger: quiet}, 1)
	c := vm.vcpus[0].kvm
	l, err := c.GetLAPIC()
	if err != nil {
		t.Fatal(err)
	}
	binary.LittleEndian.PutUint32(l.Regs[0x320:], 2<<17|0xec) // LVT timer: TSC-deadline mode, vector 0xec
	if err := c.SetLAPIC(l); err != nil {
		t.Fatal(err)
	}
	const far = 1 << 62
	if _, err := c.SetMSRs([]kvm.MSREntry{{Index: msrTSCDeadline, Data: far}}); err != nil {
		t.Fatal(err)
	}
	cpuid, err := c.GetCPUID2()
	if err != nil {
		t.Fatal(err)
	}
	offered := false
	for _, e := range cpuid {
		if e.Function == 1 {
			offered = e.ECX&(1<<24) != 0
		}
	}
	run := vm.Start()
	defer run.Stop()
	time.Sleep(50 * time.Millisecond)
	report := inspectReport(t, vm)
	t.Logf("CPUID offers the TSC-deadline timer: %v; report:\n%s", offered, report)
	want := "timer LVT 0x400ec (unmasked) count 0 of 0; TSC deadline "
	if offered {
		want += fmt.Sprintf("%#x, due in ", uint64(far))
	}
	if !strings.Contains(report, want) {
		t.Errorf("the report has no %q", want)
	}
}

// inspectReport is the Report of vm.Inspect: what `ember run` prints on
// SIGUSR1.
func inspectReport(t *testing.T, vm *VM) string {
	t.Helper()
	s, err := vm.Inspect()
	if err != nil {
		t.Fatalf("Inspect: %v", err)
	}
	var b strings.Builder
	if err := s.Report(&b); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// TestRootOutside: Inspect's check of a vCPU's page-table root against
// guest RAM, for each paging mode, on a guest of 512 MiB.
func TestRootOutside(t *testing.T) {
	mem, err := memory.New([]memory.Range{{GPA: 0, Size: 512 << 20}})
	if err != nil {
		t.Fatal(err)
	}
	defer mem.Close()
	const pg, pae, lma = 1 << 31, 1 << 5, 1 << 10
	tests := []struct {
		name string
		sr   kvm.SRegs
		want bool
	}{
		{"paging off, CR3 anywhere", kvm.SRegs{CR0: 0x11, CR3: 0x100a44000}, false},
		{"long mode inside RAM", kvm.SRegs{CR0: pg | 1, CR4: pae, EFER: lma, CR3: 0x1d7ee000}, false},
		{"long mode, bit 32 set (the lab's hung guests)", kvm.SRegs{CR0: pg | 1, CR4: pae, EFER: lma, CR3: 0x100a44000}, true},
		{"long mode, the last page of RAM", kvm.SRegs{CR0: pg | 1, CR4: pae, EFER: lma, CR3: 512<<20 - 4096}, false},
		{"long mode, just past RAM", kvm.SRegs{CR0: pg | 1, CR4: pae, EFER: lma, CR3: 512 << 20}, true},
		{"32-bit PAE inside RAM", kvm.SRegs{CR0: pg | 1, CR4: pae, CR3: 0x3fe0}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := rootOutside(mem, tt.sr); got != tt.want {
				t.Errorf("rootOutside(CR3 %#x) = %v, want %v", tt.sr.CR3, got, tt.want)
			}
		})
	}
}
