package hv

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"

	"ember/guest"
	"ember/internal/kvmtest"
	"ember/kvm"
	"ember/kvm/kvmcap"
	"ember/x86"
)

func openHV(t testing.TB) *Hypervisor {
	t.Helper()
	kvmtest.Require(t)
	h, err := Open()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	return h
}

// runProgram boots a tiny guest in a fresh VM and returns its result, console
// output and reported values.
func runProgram(t *testing.T, h *Hypervisor, p guest.Program, cfg Config) (Result, string, []uint64) {
	t.Helper()
	var console bytes.Buffer
	cfg.Console = &console
	if cfg.MemorySize == 0 {
		cfg.MemorySize = 2 << 20
	}
	vm, err := h.NewVM(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer vm.Close()
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
	return res, console.String(), rep.Values()
}

func TestGuestsInEveryMode(t *testing.T) {
	h := openHV(t)
	tests := []struct {
		prog   guest.Program
		status int
		check  func(t *testing.T, vals []uint64)
	}{
		{guest.Real, 0, func(t *testing.T, v []uint64) {
			if len(v) != 2 || v[0]&x86.CR0PE != 0 || v[1] != 0x2345 {
				t.Errorf("real mode reported %#x, want CR0 without PE and 0x2345", v)
			}
		}},
		{guest.Prot32, 0, func(t *testing.T, v []uint64) {
			if len(v) != 2 || v[0]&x86.CR0PE == 0 || v[0]&x86.CR0PG != 0 || v[1] != x86.SelCode {
				t.Errorf("protected mode reported %#x, want CR0 with PE, no PG, CS %#x", v, x86.SelCode)
			}
		}},
		{guest.Long64, 0, func(t *testing.T, v []uint64) {
			if len(v) != 4 || v[0]&(x86.CR0PE|x86.CR0PG) != x86.CR0PE|x86.CR0PG || v[1] != x86.SelCode ||
				v[2]&(x86.EFERLME|x86.EFERLMA) != x86.EFERLME|x86.EFERLMA || v[3] != 0xabcdef00 {
				t.Errorf("long mode reported %#x", v)
			}
		}},
		{guest.Ring3, 3, func(t *testing.T, v []uint64) {
			if len(v) != 2 || v[0] != 3 || v[1] != x86.SelUserCode64 {
				t.Errorf("ring 3 reported %#x, want [3 %#x] (CPL 3)", v, x86.SelUserCode64)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.prog.Name, func(t *testing.T) {
			res, _, vals := runProgram(t, h, tt.prog, Config{})
			if res.Reason != StopExit || res.Status != tt.status {
				t.Fatalf("result %v, want exit status %d", res, tt.status)
			}
			tt.check(t, vals)
		})
	}
}

func TestDemoPrintsAndExitsZero(t *testing.T) {
	h := openHV(t)
	res, out, _ := runProgram(t, h, guest.Demo, Config{})
	if res.Reason != StopExit || res.Status != 0 {
		t.Fatalf("result %v", res)
	}
	for _, want := range []string{"Hello from ember's demo guest", "counted 2262 primes below 20000", "Goodbye."} {
		if !strings.Contains(out, want) {
			t.Errorf("console output lacks %q:\n%s", want, out)
		}
	}
}

func TestTripleFaultIsShutdown(t *testing.T) {
	h := openHV(t)
	for _, cfg := range []Config{{}, {NoIRQChip: true}} {
		res, _, _ := runProgram(t, h, guest.Triple, cfg)
		if res.Reason != StopShutdown {
			t.Errorf("NoIRQChip=%v: result %v, want shutdown", cfg.NoIRQChip, res)
		}
	}
}

// spinningVM is a VM of cfg (1 MiB of RAM unless cfg says) whose first
// entries vCPUs run jmp . in real mode: a guest that never exits by
// itself, so a vCPU stays in the guest until kicked. The test closes it.
func spinningVM(t *testing.T, h *Hypervisor, cfg Config, entries int) *VM {
	t.Helper()
	if cfg.MemorySize == 0 {
		cfg.MemorySize = 1 << 20
	}
	vm, err := h.NewVM(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { vm.Close() })
	if err := vm.LoadImage([]byte{0xeb, 0xfe}, guest.LoadAddr); err != nil {
		t.Fatal(err)
	}
	for i := range entries {
		if err := vm.SetEntry(i, x86.Entry{Mode: x86.RealMode, RIP: guest.LoadAddr}); err != nil {
			t.Fatal(err)
		}
	}
	return vm
}

func TestStopEndsASpinningGuest(t *testing.T) {
	vm := spinningVM(t, openHV(t), Config{VCPUs: 2}, 2)
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(200*time.Millisecond, cancel)
	res, err := vm.Run(ctx)
	if err != nil || res.Reason != StopHost {
		t.Fatalf("Run = %v, %v; want stopped by host", res, err)
	}
}

// TestVCPUThreadsAreNamed: while a VM runs, each vCPU's thread carries the
// name ps -T and top -H show for it ("ember-vcpu0", ...), except one that
// happens to be the process's main thread, which keeps the process's name.
func TestVCPUThreadsAreNamed(t *testing.T) {
	vm := spinningVM(t, openHV(t), Config{VCPUs: 2}, 2)
	run := vm.Start()
	defer run.Stop()
	deadline := time.Now().Add(5 * time.Second)
	for i, c := range vm.vcpus {
		var tid int32
		for tid = c.tid.Load(); tid == 0 && time.Now().Before(deadline); tid = c.tid.Load() {
			time.Sleep(time.Millisecond)
		}
		if tid == 0 {
			t.Fatalf("vCPU %d never started its loop", i)
		}
		comm, err := os.ReadFile(fmt.Sprintf("/proc/self/task/%d/comm", tid))
		got := strings.TrimSpace(string(comm))
		switch {
		case err != nil:
			t.Errorf("vCPU %d's thread %d: %v", i, tid, err)
		case int(tid) == os.Getpid():
			t.Logf("vCPU %d ran on the main thread, which keeps the process's name %q", i, got)
		case got != fmt.Sprintf("ember-vcpu%d", i):
			t.Errorf("vCPU %d's thread is named %q, want ember-vcpu%d", i, got, i)
		}
	}
}

// TestCreateRunDestroyLeavesNothing runs 500 VMs one after another and checks
// the process's descriptors and goroutines come back to where they started.
func TestCreateRunDestroyLeavesNothing(t *testing.T) {
	h := openHV(t)
	n := 500
	if testing.Short() {
		n = 50
	}
	runOne := func() {
		vm, err := h.NewVM(Config{MemorySize: 1 << 20})
		if err != nil {
			t.Fatal(err)
		}
		defer vm.Close()
		vm.LoadImage(guest.Real.Code, guest.LoadAddr)
		vm.SetEntry(0, guest.Real.Entry())
		if err := vm.PIO.Register(guest.PortReport, 4, "report", kvmtest.NewReporter()); err != nil {
			t.Fatal(err)
		}
		res, err := vm.Run(context.Background())
		if err != nil || res.Reason != StopExit {
			t.Fatalf("Run = %v, %v", res, err)
		}
	}
	runOne() // warm up lazily created runtime threads and descriptors
	fds, gs := kvmtest.OpenFDs(t), runtime.NumGoroutine()
	start := time.Now()
	for i := 0; i < n; i++ {
		runOne()
	}
	t.Logf("%d create/run/destroy cycles in %v (%v each)", n, time.Since(start), time.Since(start)/time.Duration(n))
	if got := kvmtest.OpenFDs(t); got != fds {
		t.Errorf("open descriptors: %d before, %d after %d VMs", fds, got, n)
	}
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > gs && time.Now().Before(deadline) {
		runtime.Gosched()
	}
	if got := runtime.NumGoroutine(); got != gs {
		t.Errorf("goroutines: %d before, %d after %d VMs", gs, got, n)
	}
}

// A vCPU is offered the TSC-deadline timer (CPUID leaf 1 ECX bit 24) where
// KVM emulates it, which needs the in-kernel LAPIC; not without the
// irqchip, and not when the user masks it.
func TestVCPUOffersTSCDeadline(t *testing.T) {
	h := openHV(t)
	n, err := h.System().CheckExtension(kvmcap.TSCDeadlineTimer)
	if err != nil {
		t.Fatal(err)
	}
	kvmHasIt := n > 0
	for _, tt := range []struct {
		name string
		cfg  Config
		want bool
	}{
		{"in-kernel irqchip", Config{}, kvmHasIt},
		{"no irqchip", Config{NoIRQChip: true}, false},
		{"masked", Config{CPUIDMask: []string{"tsc_deadline"}}, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			for _, e := range vcpuCPUID(t, h, tt.cfg) {
				if e.Function == 1 {
					if got := e.ECX&(1<<24) != 0; got != tt.want {
						t.Errorf("leaf 1 ECX %#x: TSC-deadline offered %v, want %v (KVM_CAP_TSC_DEADLINE_TIMER %d)", e.ECX, got, tt.want, n)
					}
					return
				}
			}
			t.Fatal("the vCPU has no CPUID leaf 1")
		})
	}
}

// TestVCPUNamesTheHostCPU: a guest reads the host CPU's name from its
// brand string, as under QEMU's -cpu host, where KVM's own supported CPUID
// leaves it empty (and Linux would call the CPU "AMD Hammer").
func TestVCPUNamesTheHostCPU(t *testing.T) {
	host := x86.HostCPUName()
	if host == "" {
		t.Skip("this host's /proc/cpuinfo names no CPU model")
	}
	entries := vcpuCPUID(t, openHV(t), Config{})
	if got, want := x86.Brand(entries), host[:min(len(host), 47)]; got != want {
		t.Errorf("the guest's brand string is %q, want the host's %q", got, want)
	}
}

// vcpuCPUID makes a 2 MiB VM with cfg and returns the CPUID its first vCPU
// was given, as KVM reports it back.
func vcpuCPUID(t *testing.T, h *Hypervisor, cfg Config) []kvm.CPUIDEntry {
	t.Helper()
	cfg.MemorySize = 2 << 20
	vm, err := h.NewVM(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer vm.Close()
	entries, err := vm.VCPU(0).KVM().GetCPUID2()
	if err != nil {
		t.Fatal(err)
	}
	return entries
}
