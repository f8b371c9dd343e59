package hv

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"ember/acrn"
	"ember/acrn/iorequest"
	"ember/guest"
	"ember/ioreq"
	"ember/kvm"
)

// benchPort is the port guest.BenchPIO writes to.
const benchPort = 0x4f0

type nopDevice struct{}

func (nopDevice) Read(uint64, []byte)  {}
func (nopDevice) Write(uint64, []byte) {}

// BenchmarkEmulatedPIO is the cost of one emulated PIO access — a guest
// `out` of one byte (guest.BenchPIO, 16 per loop turn) — in the same run for:
// a raw KVM exit (a KVM_RUN loop of this process that just re-enters: the
// floor), an in-process client, the unclaimed default, an out-of-process
// client (examples/devicemodel over the VM's device-model socket) and an
// ioeventfd (no exit at all). One op is one access.
func BenchmarkEmulatedPIO(b *testing.B) {
	h := openHV(b)
	count := func(b *testing.B) uint32 { return uint32((b.N + 15) &^ 15) }
	newVM := func(b *testing.B, cfg Config) *VM {
		b.Helper()
		cfg.MemorySize = 2 << 20
		cfg.Logger = quiet
		vm, err := h.NewVM(cfg)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { vm.Close() })
		if err := vm.LoadImage(benchImage(guest.BenchPIO, count(b)), guest.LoadAddr); err != nil {
			b.Fatal(err)
		}
		if err := vm.SetEntry(0, guest.BenchPIO.Entry()); err != nil {
			b.Fatal(err)
		}
		return vm
	}
	run := func(b *testing.B, vm *VM) {
		b.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		b.ResetTimer()
		res, err := vm.Run(ctx)
		b.StopTimer()
		if err != nil || res.Reason != StopExit || res.Status != 0 {
			b.Fatalf("Run = %v, %v", res, err)
		}
	}

	b.Run("raw-kvm-exit", func(b *testing.B) {
		vm := newVM(b, Config{})
		c := vm.VCPU(0).kvm
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		b.ResetTimer()
		for {
			exit, err := c.Run()
			if err != nil {
				b.Fatal(err)
			}
			if exit.Reason == kvm.ExitIntr {
				continue // the Go runtime's preemption signal: enter again
			}
			if exit.Reason != kvm.ExitIO {
				b.Fatalf("exit %v", exit)
			}
			if exit.IO().Port == PortExit {
				break
			}
		}
		b.StopTimer()
	})
	b.Run("inprocess", func(b *testing.B) {
		vm := newVM(b, Config{})
		if err := vm.PIO.Register(benchPort, 1, "nop", nopDevice{}); err != nil {
			b.Fatal(err)
		}
		run(b, vm)
	})
	b.Run("unclaimed", func(b *testing.B) {
		run(b, newVM(b, Config{}))
	})
	b.Run("outofprocess", func(b *testing.B) {
		bin := buildDeviceModel(b)
		socket := filepath.Join(b.TempDir(), "vm.ioreq")
		vm := newVM(b, Config{DeviceModelSocket: socket})
		startQuietModel(b, bin, socket, "-pio", "0x4f0-0x4f0", "-mmio", "", "-quiet")
		req := ioreq.PIORequest(iorequest.DirWrite, benchPort, 1, 0)
		if c := vm.IORequests().Router().Route(&req); c.Name() == "unclaimed" {
			b.Fatal("the device model's range is not claimed")
		}
		run(b, vm)
	})
	b.Run("ioeventfd", func(b *testing.B) {
		vm := newVM(b, Config{})
		fd := newEventfd(b)
		if err := vm.EventFDs().IOEventFD(acrn.IOEventFD{Flags: acrn.IOEventFDFlagPIO, Addr: benchPort, Len: 1}, fd); err != nil {
			b.Fatal(err)
		}
		run(b, vm)
		if got := readEventfd(fd); got != uint64(count(b)) {
			b.Fatalf("%d signals, want %d", got, count(b))
		}
	})
}

// startQuietModel runs examples/devicemodel with its stdout in a file (it
// logs every write; a pipe would make this process read each line) and
// waits until it has attached.
func startQuietModel(tb testing.TB, bin, socket string, args ...string) {
	tb.Helper()
	out, err := os.Create(filepath.Join(tb.TempDir(), "devicemodel.out"))
	if err != nil {
		tb.Fatal(err)
	}
	defer out.Close()
	cmd := exec.Command(bin, append([]string{"-socket", socket}, args...)...)
	cmd.Stdout, cmd.Stderr = out, os.Stderr
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(time.Millisecond) {
		if b, _ := os.ReadFile(out.Name()); strings.HasPrefix(string(b), "ready") {
			return
		}
		if time.Now().After(deadline) {
			tb.Fatal("device model not ready in 10s")
		}
	}
}
