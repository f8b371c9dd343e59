package kvm

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"ember/kvm/kvmcap"
)

// The guests below are 16-bit real-mode code loaded at 0x1000 (CS base 0, IP
// 0x1000). Each instruction's assembly is next to its bytes; the encodings were
// checked with `as --32` (.code16) and `objdump -d -M i8086`.

func TestRunPortOut(t *testing.T) {
	code := []byte{
		0xb8, 0x34, 0x12, // mov $0x1234, %ax
		0xe7, 0x10, // out %ax, $0x10
		0xb0, 0x55, // mov $0x55, %al
		0xba, 0xf8, 0x03, // mov $0x3f8, %dx
		0xee,                               // out %al, (%dx)
		0x66, 0xb8, 0x78, 0x56, 0x34, 0x12, // mov $0x12345678, %eax
		0x66, 0xe7, 0x10, // out %eax, $0x10
		0xf4, // hlt
	}
	_, cpu, _ := newGuest(t, code, false)
	tests := []struct {
		name string
		port uint16
		data []byte
	}{
		{"out 2 bytes to an imm8 port", 0x10, []byte{0x34, 0x12}},
		{"out 1 byte to a DX port", 0x3f8, []byte{0x55}},
		{"out 4 bytes with an operand-size prefix", 0x10, []byte{0x78, 0x56, 0x34, 0x12}},
	}
	for _, tt := range tests {
		exit := runExpect(t, cpu, ExitIO)
		io := exit.IO()
		if io.Direction != IOOut || io.Port != tt.port || int(io.Size) != len(tt.data) || io.Count != 1 {
			t.Errorf("%s: got %+v", tt.name, io)
		}
		if !bytes.Equal(io.Data, tt.data) {
			t.Errorf("%s: Data = %#x, want %#x", tt.name, io.Data, tt.data)
		}
		want := "KVM_EXIT_IO out port"
		if !strings.HasPrefix(exit.String(), want) {
			t.Errorf("%s: String() = %q, want prefix %q", tt.name, exit, want)
		}
	}
	runExpect(t, cpu, ExitHLT)
	regs, err := cpu.GetRegs()
	if err != nil {
		t.Fatalf("GetRegs: %v", err)
	}
	if want := uint64(guestCode + len(code)); regs.RIP != want {
		t.Errorf("after hlt RIP = %#x, want %#x", regs.RIP, want)
	}
}

func TestRunPortInDeliversDataToGuest(t *testing.T) {
	code := []byte{
		0xe4, 0x20, // in $0x20, %al
		0xe6, 0x21, // out %al, $0x21
		0xe5, 0x22, // in $0x22, %ax
		0xe7, 0x23, // out %ax, $0x23
		0xf4, // hlt
	}
	_, cpu, _ := newGuest(t, code, false)
	for _, tt := range []struct {
		in, out uint16
		value   []byte
	}{
		{0x20, 0x21, []byte{0xa5}},
		{0x22, 0x23, []byte{0xef, 0xbe}},
	} {
		io := runExpect(t, cpu, ExitIO).IO()
		if io.Direction != IOIn || io.Port != tt.in || int(io.Size) != len(tt.value) || io.Count != 1 || len(io.Data) != len(tt.value) {
			t.Fatalf("in exit: got %+v, want in of %d bytes from %#x", io, len(tt.value), tt.in)
		}
		copy(io.Data, tt.value)
		io = runExpect(t, cpu, ExitIO).IO()
		if io.Direction != IOOut || io.Port != tt.out || !bytes.Equal(io.Data, tt.value) {
			t.Errorf("guest echoed %+v, want %#x on port %#x", io, tt.value, tt.out)
		}
	}
	runExpect(t, cpu, ExitHLT)
}

// TestRunRepOutsb: KVM's emulator performs OUTS one element per exit, so a
// rep outsb of five bytes is five exits of Count 1 (the read-ahead that
// batches a string instruction exists only for INS, below).
func TestRunRepOutsb(t *testing.T) {
	code := []byte{
		0xbe, 0x00, 0x11, // mov $0x1100, %si
		0xb9, 0x05, 0x00, // mov $5, %cx
		0xba, 0x30, 0x00, // mov $0x30, %dx
		0xfc,       // cld
		0xf3, 0x6e, // rep outsb
		0xf4, // hlt
	}
	_, cpu, mem := newGuest(t, code, false)
	copy(mem[guestData:], "hello")
	var got []byte
	for {
		exit := run(t, cpu)
		if exit.Reason == ExitHLT {
			break
		}
		if exit.Reason != ExitIO {
			t.Fatalf("exit = %v, want KVM_EXIT_IO or KVM_EXIT_HLT", exit)
		}
		io := exit.IO()
		if io.Direction != IOOut || io.Port != 0x30 || io.Size != 1 || io.Count < 1 || len(io.Data) != int(io.Count) {
			t.Fatalf("rep outsb exit: got %+v, want out of 1-byte elements to 0x30", io)
		}
		got = append(got, io.Data...)
	}
	if string(got) != "hello" {
		t.Errorf("rep outsb wrote %q, want %q", got, "hello")
	}
	regs, _ := cpu.GetRegs()
	if regs.RCX&0xffff != 0 || regs.RSI&0xffff != guestData+5 {
		t.Errorf("after rep outsb CX = %#x SI = %#x, want 0 and %#x", regs.RCX, regs.RSI, guestData+5)
	}
}

// TestRunRepInsbIsOneStringExit: KVM reads ahead for INS, so rep insb of five
// bytes is one exit with Count 5 whose Data the VMM fills in full.
func TestRunRepInsbIsOneStringExit(t *testing.T) {
	code := []byte{
		0xbf, 0x00, 0x11, // mov $0x1100, %di
		0xb9, 0x05, 0x00, // mov $5, %cx
		0xba, 0x30, 0x00, // mov $0x30, %dx
		0xfc,       // cld
		0xf3, 0x6c, // rep insb
		0xf4, // hlt
	}
	_, cpu, mem := newGuest(t, code, false)
	exit := runExpect(t, cpu, ExitIO)
	io := exit.IO()
	if io.Direction != IOIn || io.Port != 0x30 || io.Size != 1 || io.Count != 5 || len(io.Data) != 5 {
		t.Fatalf("rep insb exit: got %+v, want in of 5 x 1 byte from 0x30", io)
	}
	if !strings.Contains(exit.String(), "in port 0x30 size 1 count 5") {
		t.Errorf("String() = %q", exit)
	}
	copy(io.Data, "world")
	runExpect(t, cpu, ExitHLT)
	if got := string(mem[guestData : guestData+5]); got != "world" {
		t.Errorf("guest memory after rep insb = %q, want %q", got, "world")
	}
}

func TestRunMMIOToUnbackedAddress(t *testing.T) {
	code := []byte{
		0xb8, 0x00, 0x20, // mov $0x2000, %ax
		0x8e, 0xd8, // mov %ax, %ds          (DS base 0x20000, past the 64 KiB of RAM)
		0xc6, 0x06, 0x10, 0x00, 0x99, // movb $0x99, 0x10
		0xc7, 0x06, 0x12, 0x00, 0xef, 0xbe, // movw $0xbeef, 0x12
		0xa1, 0x20, 0x00, // mov 0x20, %ax
		0xe7, 0x10, // out %ax, $0x10
		0xf4, // hlt
	}
	_, cpu, _ := newGuest(t, code, false)
	tests := []struct {
		name  string
		addr  uint64
		write bool
		data  []byte // written by the guest, or returned to it
	}{
		{"byte write", 0x20010, true, []byte{0x99}},
		{"word write", 0x20012, true, []byte{0xef, 0xbe}},
		{"word read", 0x20020, false, []byte{0x5a, 0xa5}},
	}
	for _, tt := range tests {
		exit := runExpect(t, cpu, ExitMMIO)
		m := exit.MMIO()
		if m.PhysAddr != tt.addr || m.IsWrite != tt.write || len(m.Data) != len(tt.data) {
			t.Fatalf("%s: got %+v, want addr %#x write %v len %d", tt.name, m, tt.addr, tt.write, len(tt.data))
		}
		if tt.write && !bytes.Equal(m.Data, tt.data) {
			t.Errorf("%s: Data = %#x, want %#x", tt.name, m.Data, tt.data)
		}
		if !tt.write {
			copy(m.Data, tt.data)
		}
		if !strings.HasPrefix(exit.String(), "KVM_EXIT_MMIO addr") {
			t.Errorf("%s: String() = %q", tt.name, exit)
		}
	}
	io := runExpect(t, cpu, ExitIO).IO()
	if !bytes.Equal(io.Data, []byte{0x5a, 0xa5}) {
		t.Errorf("guest read %#x from MMIO, want 0xa55a", io.Data)
	}
	runExpect(t, cpu, ExitHLT)
}

func TestRunHLTWithoutIRQChipExits(t *testing.T) {
	_, cpu, _ := newGuest(t, []byte{
		0xf4, // hlt
	}, false)
	exit := runExpect(t, cpu, ExitHLT)
	if exit.String() != "KVM_EXIT_HLT" {
		t.Errorf("String() = %q", exit)
	}
}

// TestRunTripleFaultShutsDown runs 32-bit protected-mode code with an empty
// IDT (limit 0), so the first exception cannot be delivered: it becomes #GP,
// then #DF, then a triple fault, which KVM reports as KVM_EXIT_SHUTDOWN.
//
// In real mode this does not work here: KVM's real-mode interrupt emulation
// ignores the IDTR limit and jumps through vector 6 of the IVT at address 0,
// so the guest runs on through zeroed memory instead of shutting down.
func TestRunTripleFaultShutsDown(t *testing.T) {
	tests := []struct {
		name string
		code []byte
	}{
		{"ud2", []byte{
			0x0f, 0x0b, // ud2
		}},
		{"divide by zero", []byte{
			0x31, 0xc9, // xor %ecx, %ecx
			0xf7, 0xf1, // div %ecx
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, cpu, _ := newGuest(t, tt.code, false)
			protectedMode(t, cpu, guestCode)
			runExpect(t, cpu, ExitShutdown)
		})
	}
}

// TestRunUnemulatedInstruction: on a host with VT-x or AMD-V, `int $0x80`
// through an empty IDT triple-faults like ud2 does. On the kvm-pvm backend of
// ember's build machines CPL0 code is emulated and the emulator has no software
// INT n at CPL0 (nor INT3), so KVM gives up with KVM_EXIT_INTERNAL_ERROR,
// suberror KVM_INTERNAL_ERROR_EMULATION. Both are what a VMM must handle.
func TestRunUnemulatedInstruction(t *testing.T) {
	code := []byte{
		0xcd, 0x80, // int $0x80
	}
	_, cpu, _ := newGuest(t, code, false)
	protectedMode(t, cpu, guestCode)
	exit := run(t, cpu)
	switch exit.Reason {
	case ExitShutdown:
	case ExitInternalError:
		ie := exit.InternalError()
		if ie.Suberror != InternalErrorEmulation {
			t.Errorf("InternalError() = %v, want an emulation failure", ie)
		}
		if !strings.Contains(exit.String(), "emulation failure") {
			t.Errorf("String() = %q", exit)
		}
		if regs, _ := cpu.GetRegs(); regs.RIP != guestCode {
			t.Errorf("RIP = %#x, want the failing instruction at %#x", regs.RIP, guestCode)
		}
	default:
		t.Fatalf("exit = %v, want KVM_EXIT_SHUTDOWN or KVM_EXIT_INTERNAL_ERROR", exit)
	}
}

// protectedMode puts cpu in flat 32-bit protected mode (no paging) at rip with
// an empty IDT.
func protectedMode(t testing.TB, cpu *VCPU, rip uint64) {
	t.Helper()
	s, err := cpu.GetSRegs()
	if err != nil {
		t.Fatalf("GetSRegs: %v", err)
	}
	code := Segment{Base: 0, Limit: 0xffffffff, Selector: 0x8, Type: 0xb, Present: 1, DB: 1, S: 1, G: 1}
	data := Segment{Base: 0, Limit: 0xffffffff, Selector: 0x10, Type: 0x3, Present: 1, DB: 1, S: 1, G: 1}
	s.CS = code
	s.DS, s.ES, s.FS, s.GS, s.SS = data, data, data, data, data
	s.IDT = DTable{Base: 0, Limit: 0}
	s.CR0 |= 1 // PE
	if err := cpu.SetSRegs(s); err != nil {
		t.Fatalf("SetSRegs(protected mode): %v", err)
	}
	if err := cpu.SetRegs(Regs{RIP: rip, RFLAGS: 2, RSP: guestStack}); err != nil {
		t.Fatalf("SetRegs: %v", err)
	}
}

func TestKickStopsASpinningGuest(t *testing.T) {
	code := []byte{
		0xc6, 0x06, 0x00, 0x11, 0x01, // movb $1, 0x1100   (tell the test the guest runs)
		0xeb, 0xfe, // spin: jmp spin
		0xe6, 0x10, // out %al, $0x10
		0xf4, // hlt
	}
	const spin, after = guestCode + 5, guestCode + 7
	_, cpu, mem := newGuest(t, code, false)

	// A Kick before the vCPU ever ran only sets immediate_exit, which stops
	// the next KVM_RUN before it enters the guest.
	if err := cpu.Kick(); err != nil {
		t.Fatalf("Kick before Run: %v", err)
	}
	if exit, err := cpu.Run(); err != nil || exit.Reason != ExitIntr {
		t.Fatalf("Run with immediate_exit set = %v, %v; want KVM_EXIT_INTR", exit, err)
	}
	if regs, _ := cpu.GetRegs(); regs.RIP != guestCode {
		t.Fatalf("immediate exit moved RIP to %#x", regs.RIP)
	}
	cpu.SetImmediateExit(false)

	type result struct {
		exit Exit
		err  error
	}
	var kicked atomic.Bool
	done := make(chan result, 1)
	go func() {
		// KVM wants one thread per vCPU, and Kick signals that thread.
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		cpu.BindThread()
		for {
			exit, err := cpu.Run()
			// The Go runtime's own SIGURG preemption also ends KVM_RUN
			// with EINTR; only our kick ends this loop.
			if err == nil && exit.Reason == ExitIntr && !kicked.Load() {
				continue
			}
			done <- result{exit, err}
			return
		}
	}()

	// Wait, with a deadline, until the guest has stored its flag: from then
	// on it is spinning inside KVM_RUN and only a signal gets it out.
	flag := (*uint32)(unsafe.Pointer(&mem[guestData]))
	for deadline := time.Now().Add(runTimeout); atomic.LoadUint32(flag) == 0; {
		if time.Now().After(deadline) {
			cpu.Kick()
			t.Fatalf("guest did not start within %v", runTimeout)
		}
		runtime.Gosched()
	}
	start := time.Now()
	kicked.Store(true)
	if err := cpu.Kick(); err != nil {
		t.Fatalf("Kick: %v", err)
	}
	var r result
	select {
	case r = <-done:
	case <-time.After(runTimeout):
		t.Fatal("Kick did not stop the guest")
	}
	t.Logf("Kick to return from KVM_RUN: %v", time.Since(start))
	if r.err != nil || r.exit.Reason != ExitIntr {
		t.Fatalf("Run after Kick = %v, %v; want KVM_EXIT_INTR", r.exit, r.err)
	}
	regs, err := cpu.GetRegs()
	if err != nil {
		t.Fatalf("GetRegs: %v", err)
	}
	if regs.RIP != spin {
		t.Errorf("kicked guest at RIP %#x, want the loop at %#x", regs.RIP, spin)
	}

	// Clear the request and step past the loop: the vCPU runs again.
	cpu.SetImmediateExit(false)
	regs.RIP = after
	regs.RAX = 0x77
	if err := cpu.SetRegs(regs); err != nil {
		t.Fatalf("SetRegs: %v", err)
	}
	io := runExpect(t, cpu, ExitIO).IO()
	if io.Port != 0x10 || !bytes.Equal(io.Data, []byte{0x77}) {
		t.Errorf("after the kick the guest wrote %+v, want 0x77 to 0x10", io)
	}
}

// TestKickFollowsTheBoundThread: a vCPU that runs from one thread, then
// from another that called BindThread, is kicked out of the guest on the
// new thread. Kick signals the bound thread, and only a signal ends a
// KVM_RUN already in the guest: without the rebind the kick would reach
// the first thread and the guest would spin on.
func TestKickFollowsTheBoundThread(t *testing.T) {
	code := []byte{
		0xc6, 0x06, 0x00, 0x11, 0x01, // movb $1, 0x1100   (tell the test the guest runs)
		0xeb, 0xfe, // spin: jmp spin
	}
	_, cpu, mem := newGuest(t, code, false)
	flag := (*uint32)(unsafe.Pointer(&mem[guestData]))

	// The first thread binds and stays locked (so the second is another
	// thread) until the test ends.
	first, release := make(chan int), make(chan struct{})
	defer close(release)
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		cpu.BindThread()
		first <- unix.Gettid()
		<-release
	}()
	firstTID := <-first

	type result struct {
		tid  int
		exit Exit
		err  error
	}
	var kicked atomic.Bool
	var second atomic.Int32
	done := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		second.Store(int32(unix.Gettid()))
		cpu.BindThread()
		for {
			exit, err := cpu.Run()
			if err == nil && exit.Reason == ExitIntr && !kicked.Load() {
				continue // the Go runtime's own preemption signal
			}
			done <- result{unix.Gettid(), exit, err}
			return
		}
	}()
	for deadline := time.Now().Add(runTimeout); atomic.LoadUint32(flag) == 0; {
		if time.Now().After(deadline) {
			cpu.Kick()
			t.Fatalf("guest did not start within %v", runTimeout)
		}
		runtime.Gosched()
	}
	kicked.Store(true)
	if err := cpu.Kick(); err != nil {
		t.Fatalf("Kick: %v", err)
	}
	select {
	case r := <-done:
		if r.err != nil || r.exit.Reason != ExitIntr {
			t.Fatalf("Run after Kick = %v, %v; want KVM_EXIT_INTR", r.exit, r.err)
		}
		if r.tid == firstTID {
			t.Fatalf("the second run was on the first thread (%d)", r.tid)
		}
	case <-time.After(runTimeout):
		unix.Tgkill(unix.Getpid(), int(second.Load()), kickSignal) // free the guest's thread
		t.Fatalf("Kick did not reach the thread bound last; the guest spins on (first thread %d)", firstTID)
	}
}

func TestSyncRegs(t *testing.T) {
	code := []byte{
		0xe7, 0x10, // out %ax, $0x10
		0xe7, 0x10, // out %ax, $0x10
		0xf4, // hlt
	}
	vm, cpu, _ := newGuest(t, code, false)
	if v, _ := vm.CheckExtension(kvmcap.SyncRegs); v&(SyncRegsGPRs|SyncRegsSRegs) != SyncRegsGPRs|SyncRegsSRegs {
		t.Skipf("skipping: KVM_CAP_SYNC_REGS = %#x", v)
	}
	cpu.SetSyncValid(SyncRegsGPRs | SyncRegsSRegs)
	runExpect(t, cpu, ExitIO)
	regs, err := cpu.GetRegs()
	if err != nil {
		t.Fatalf("GetRegs: %v", err)
	}
	s := cpu.SyncRegs()
	// KVM documents that a PIO exit's instruction completes only when
	// KVM_RUN is entered again, so RIP may still point at the OUT (SVM and
	// VMX KVM advance it on re-entry) or already past it (kvm-pvm). Either
	// way the sync area and KVM_GET_REGS must agree.
	if s.Regs != regs || (s.Regs.RIP != guestCode && s.Regs.RIP != guestCode+2) {
		t.Errorf("SyncRegs().Regs = %+v, GetRegs() = %+v, want equal with RIP at the OUT (%#x) or after it (%#x)", s.Regs, regs, guestCode, guestCode+2)
	}
	if sregs, _ := cpu.GetSRegs(); s.SRegs.CS != sregs.CS || s.SRegs.CR0 != sregs.CR0 {
		t.Errorf("SyncRegs().SRegs.CS = %+v, GetSRegs().CS = %+v", s.SRegs.CS, sregs.CS)
	}

	// Registers changed in the sync area and marked dirty reach the guest.
	s.Regs.RAX = 0x4242
	cpu.SetSyncDirty(SyncRegsGPRs)
	io := runExpect(t, cpu, ExitIO).IO()
	if !bytes.Equal(io.Data, []byte{0x42, 0x42}) {
		t.Errorf("guest saw AX = %#x, want 0x4242 from the dirty sync regs", io.Data)
	}
}

func TestExitReasonString(t *testing.T) {
	tests := []struct {
		r    ExitReason
		want string
	}{
		{ExitIO, "KVM_EXIT_IO"},
		{ExitHLT, "KVM_EXIT_HLT"},
		{ExitMMIO, "KVM_EXIT_MMIO"},
		{ExitShutdown, "KVM_EXIT_SHUTDOWN"},
		{ExitIntr, "KVM_EXIT_INTR"},
		{ExitInternalError, "KVM_EXIT_INTERNAL_ERROR"},
		{ExitSystemEvent, "KVM_EXIT_SYSTEM_EVENT"},
		{ExitNotify, "KVM_EXIT_NOTIFY"},
		{ExitReason(1000), "KVM_EXIT_1000"},
	}
	for _, tt := range tests {
		if got := tt.r.String(); got != tt.want {
			t.Errorf("ExitReason(%d).String() = %q, want %q", uint32(tt.r), got, tt.want)
		}
	}
}

// TestExitDecoders fills the exit union of a fake kvm_run by hand, as KVM
// lays it out, and checks what each decoder reports.
func TestExitDecoders(t *testing.T) {
	c := fakeVCPU(3 * 4096)
	u := c.run.Exit[:]
	le := binary.LittleEndian
	put := func(reason ExitReason, fill func()) Exit {
		clear(u)
		c.run.ExitReason = uint32(reason)
		fill()
		return Exit{Reason: reason, c: c}
	}

	e := put(ExitInternalError, func() {
		le.PutUint32(u[0:], InternalErrorEmulation)
		le.PutUint32(u[4:], 2)
		le.PutUint64(u[8:], 0x11)
		le.PutUint64(u[16:], 0x22)
	})
	ie := e.InternalError()
	if ie.Suberror != InternalErrorEmulation || len(ie.Data) != 2 || ie.Data[0] != 0x11 || ie.Data[1] != 0x22 {
		t.Errorf("InternalError() = %+v", ie)
	}
	if !strings.Contains(e.String(), "emulation failure") {
		t.Errorf("String() = %q", e)
	}

	e = put(ExitSystemEvent, func() {
		le.PutUint32(u[0:], SystemEventReset)
		le.PutUint32(u[4:], 1)
		le.PutUint64(u[8:], 0xabc)
	})
	if se := e.SystemEvent(); se.Type != SystemEventReset || len(se.Data) != 1 || se.Data[0] != 0xabc {
		t.Errorf("SystemEvent() = %+v", se)
	}

	e = put(ExitFailEntry, func() {
		le.PutUint64(u[0:], 0x80000021)
		le.PutUint32(u[8:], 1)
	})
	if fe := e.FailEntry(); fe.HardwareEntryFailureReason != 0x80000021 || fe.CPU != 1 {
		t.Errorf("FailEntry() = %+v", fe)
	}

	e = put(ExitUnknown, func() { le.PutUint64(u[0:], 0x30) })
	if e.HardwareExitReason() != 0x30 {
		t.Errorf("HardwareExitReason() = %#x", e.HardwareExitReason())
	}

	e = put(ExitDebug, func() {
		le.PutUint32(u[0:], 1)
		le.PutUint64(u[8:], 0x1001)
		le.PutUint64(u[16:], 0x4000)
		le.PutUint64(u[24:], 0x400)
	})
	if d := e.Debug(); d != (DebugExit{Exception: 1, PC: 0x1001, DR6: 0x4000, DR7: 0x400}) {
		t.Errorf("Debug() = %+v", d)
	}

	e = put(ExitX86RDMSR, func() {
		le.PutUint32(u[8:], MSRExitReasonUnknown)
		le.PutUint32(u[12:], 0xc0000080)
	})
	if m := e.MSR(); m.Reason != MSRExitReasonUnknown || m.Index != 0xc0000080 {
		t.Errorf("MSR() = %+v", m)
	}
	e.SetMSRResult(0x500, true)
	if u[0] != 1 || le.Uint64(u[16:]) != 0x500 {
		t.Errorf("SetMSRResult wrote error %d data %#x", u[0], le.Uint64(u[16:]))
	}

	e = put(ExitException, func() {
		le.PutUint32(u[0:], 13)
		le.PutUint32(u[4:], 0x18)
	})
	if v, code := e.Exception(); v != 13 || code != 0x18 {
		t.Errorf("Exception() = %d, %#x", v, code)
	}

	e = put(ExitMMIO, func() {
		le.PutUint64(u[0:], 0xfee00000)
		le.PutUint32(u[16:], 100) // a length past data[8] is clamped
		u[20] = 1
	})
	if m := e.MMIO(); m.PhysAddr != 0xfee00000 || len(m.Data) != 8 || !m.IsWrite {
		t.Errorf("MMIO() = %+v", m)
	}

	e = put(ExitIO, func() {
		u[0], u[1] = IOIn, 4
		le.PutUint16(u[2:], 0xcf8)
		le.PutUint32(u[4:], 1)
		le.PutUint64(u[8:], 4096)
	})
	if io := e.IO(); io.Port != 0xcf8 || len(io.Data) != 4 || &io.Data[0] != &c.mem[4096] {
		t.Errorf("IO() = %+v, want 4 bytes at offset 4096 of the region", io)
	}
	e = put(ExitHyperv, func() {
		le.PutUint32(u[0:], HypervHcall)
		le.PutUint64(u[8:], 0x5c) // HvPostMessage
		le.PutUint64(u[24:], 0x1000)
		le.PutUint64(u[32:], 0x2000)
	})
	if h := e.Hyperv(); h.Type != HypervHcall || h.Input != 0x5c || h.Params != [2]uint64{0x1000, 0x2000} {
		t.Errorf("Hyperv() = %+v", h)
	}
	e.SetHypervResult(2)
	if r := le.Uint64(u[16:]); r != 2 {
		t.Errorf("hcall result in kvm_run = %d, want 2", r)
	}
	e = put(ExitHyperv, func() {
		le.PutUint32(u[0:], HypervSynIC)
		le.PutUint32(u[8:], 0x40000080)
		le.PutUint64(u[16:], 1)
		le.PutUint64(u[24:], 0x3000)
		le.PutUint64(u[32:], 0x4000)
	})
	if h := e.Hyperv(); h.Type != HypervSynIC || h.MSR != 0x40000080 || h.Control != 1 || h.EventPage != 0x3000 || h.MessagePage != 0x4000 {
		t.Errorf("Hyperv() = %+v", h)
	}

	e = put(ExitIO, func() {
		u[1] = 4
		le.PutUint32(u[4:], 1)
		le.PutUint64(u[8:], uint64(len(c.mem)-2)) // runs past the region
	})
	if io := e.IO(); io.Data != nil {
		t.Errorf("IO() with data past the region = %d bytes, want none", len(io.Data))
	}
}

// fakeVCPU is a VCPU over a plain byte slice standing in for the mmap'd
// kvm_run region, for decoding tests that need no kernel.
func fakeVCPU(size int) *VCPU {
	// uint64 backing gives the 8-byte alignment of the real mapping.
	w := make([]uint64, size/8)
	return newVCPU(-1, 0, unsafe.Slice((*byte)(unsafe.Pointer(&w[0])), size))
}

// TestRunHoldingPLetsTheCollectorIn: RunHoldingP and RunHandingOverP
// report exits as Run does, and a guest halted inside either does not hold
// up a garbage collection. Holding, KVM blocks the thread with its P, and Go's
// preemption signal ends KVM_RUN; handing over, the thread blocks without
// one, and nothing need interrupt it. A Kick ends both.
func TestRunHoldingPLetsTheCollectorIn(t *testing.T) {
	for _, tc := range []struct {
		name     string
		run      func(*VCPU) (Exit, error)
		wantIntr bool // Go's signal ends the halted run
	}{
		{"holding", (*VCPU).RunHoldingP, true},
		{"handing over", (*VCPU).RunHandingOverP, false},
	} {
		t.Run(tc.name, func(t *testing.T) { testHaltedRun(t, tc.run, tc.wantIntr) })
	}
}

func testHaltedRun(t *testing.T, run func(*VCPU) (Exit, error), wantIntr bool) {
	code := []byte{
		0xb0, 0x5a, // mov $0x5a, %al
		0xe6, 0x10, // out %al, $0x10
		0xfa,       // cli
		0xf4,       // halt: hlt (with the in-kernel irqchip KVM blocks here)
		0xeb, 0xfd, // jmp halt
	}
	_, cpu, _ := newGuest(t, code, true)
	var kicked atomic.Bool
	exits := make(chan Exit, 1)
	intr := make(chan struct{}, 1)
	done := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		cpu.BindThread()
		for {
			exit, err := run(cpu)
			switch {
			case err != nil:
				done <- err
				return
			case exit.Reason == ExitIntr && kicked.Load():
				done <- nil
				return
			case exit.Reason == ExitIntr:
				select { // a signal of Go's: enter again, holding the P
				case intr <- struct{}{}:
				default:
				}
			default:
				io := exit.IO()
				exits <- Exit{Reason: exit.Reason}
				if io.Port != 0x10 || !bytes.Equal(io.Data, []byte{0x5a}) {
					done <- fmt.Errorf("exit %+v, want 0x5a out to port 0x10", io)
					return
				}
			}
		}
	}()
	select {
	case e := <-exits:
		if e.Reason != ExitIO {
			t.Fatalf("first exit %v, want KVM_EXIT_IO", e.Reason)
		}
	case err := <-done:
		t.Fatal(err)
	case <-time.After(runTimeout):
		cpu.Kick()
		t.Fatal("no exit from the guest's port write")
	}
	time.Sleep(20 * time.Millisecond) // into the halt
	gc := make(chan time.Duration, 1)
	go func() {
		start := time.Now()
		runtime.GC()
		gc <- time.Since(start)
	}()
	select {
	case d := <-gc:
		t.Logf("a garbage collection beside the halted vCPU took %v", d.Round(time.Microsecond))
	case <-time.After(runTimeout):
		t.Error("a garbage collection waited on a halted guest")
	}
	kicked.Store(true)
	if err := cpu.Kick(); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	select {
	case <-intr:
		if !wantIntr {
			t.Error("Go's signal ended a run that had handed its P over")
		}
	default:
		if wantIntr {
			t.Error("the halted guest's KVM_RUN never returned for Go's signal")
		}
	}
}
