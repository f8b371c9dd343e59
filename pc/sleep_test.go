package pc

import (
	"context"
	"encoding/binary"
	"errors"
	"log/slog"
	"testing"
	"time"

	"ember/guest"
	"ember/hv"
	"ember/internal/kvmtest"
	"ember/kvm"
	"ember/pc/fwtables"
	"ember/x86"
)

// facsRAM is guest RAM up to the end of the FACS, with a FACS of the given
// version, waking vector and X waking vector.
func facsRAM(sig string, version byte, vector uint32, xvector uint64) []byte {
	ram := make([]byte, fwtables.FACSAddr+64)
	f := ram[fwtables.FACSAddr:]
	copy(f, sig)
	binary.LittleEndian.PutUint32(f[facsWakingVector:], vector)
	binary.LittleEndian.PutUint64(f[facsXWakingVector:], xvector)
	f[facsVersion] = version
	return ram
}

// ramReader reads a byte slice as guest RAM.
type ramReader []byte

func (r ramReader) ReadAt(b []byte, off int64) (int, error) {
	if off < 0 || off+int64(len(b)) > int64(len(r)) {
		return 0, errors.New("outside RAM")
	}
	return copy(b, r[off:]), nil
}

// TestWakingEntry checks where a wake enters the guest for what it left in
// the FACS (ACPI 6.x §5.2.10), and that a FACS it broke is refused.
func TestWakingEntry(t *testing.T) {
	tests := []struct {
		name    string
		ram     []byte
		want    x86.Entry
		wantErr bool
	}{
		{"real mode: CS = vector>>4, IP = vector&0xf", facsRAM("FACS", 2, 0x1000, 0),
			x86.Entry{Mode: x86.RealMode, RIP: 0x1000, CS: 0x100}, false},
		{"real mode, unaligned vector", facsRAM("FACS", 2, 0x9a0e3, 0),
			x86.Entry{Mode: x86.RealMode, RIP: 0x9a0e3, CS: 0x9a0e}, false},
		{"X vector wins: 32-bit flat, no tables written", facsRAM("FACS", 2, 0x1000, 0x2345678),
			x86.Entry{Mode: x86.ProtectedMode, RIP: 0x2345678, NoTables: true}, false},
		{"X vector of a version 0 FACS is not a field", facsRAM("FACS", 0, 0x1000, 0x2345678),
			x86.Entry{Mode: x86.RealMode, RIP: 0x1000, CS: 0x100}, false},
		{"no vector", facsRAM("FACS", 2, 0, 0), x86.Entry{}, true},
		{"real-mode vector above 1 MiB", facsRAM("FACS", 2, 0x100000, 0), x86.Entry{}, true},
		{"X vector above 4 GiB", facsRAM("FACS", 2, 0, 1<<32), x86.Entry{}, true},
		{"signature overwritten", facsRAM("XXXX", 2, 0x1000, 0), x86.Entry{}, true},
		{"no RAM at the FACS", make([]byte, 0x1000), x86.Entry{}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := wakingEntry(ramReader(tt.ram))
			if (err != nil) != tt.wantErr || got != tt.want {
				t.Errorf("wakingEntry = %+v, %v; want %+v, error %v", got, err, tt.want, tt.wantErr)
			}
			if err == nil {
				var s kvm.SRegs
				if err := x86.SRegsFor(nil, &s, got); err != nil {
					t.Errorf("the entry cannot be set up: %v", err)
				}
			}
		})
	}
}

// TestS3SuspendAndResume (KVM) runs guest.Sleep: it enters ACPI S3 through
// PM1a_CNT and must come back at its FACS waking vector in real mode with
// its RAM kept, nothing run past its sleep request, WAK_STS (and RTC_STS
// for the alarm) in PM1_STS, PM1_EN kept and the RTC's alarm interrupt
// disabled by the platform reset. A guest that leaves no usable waking
// vector is reset instead.
func TestS3SuspendAndResume(t *testing.T) {
	h := openHV(t)
	tests := []struct {
		name     string
		hostWake bool   // SI=1: no RTC alarm; the test wakes the guest
		vector   uint32 // if not zero, the test puts it in the FACS while the guest sleeps
		status   uint64 // PM1_STS at wake
		enable   uint64 // PM1_EN at wake
		reset    bool   // the wake must reset the machine instead
		vcpus    int
	}{
		{name: "RTC alarm wakes", status: 0x8400, enable: 0x400, vcpus: 1},
		{name: "host wakes", hostWake: true, status: 0x8000, vcpus: 1},
		{name: "RTC alarm wakes two vCPUs", status: 0x8400, enable: 0x400, vcpus: 2},
		{name: "waking vector above 1 MiB: reset", hostWake: true, vector: 0x100000, reset: true, vcpus: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			vm, plat := newPCPlatform(t, h, hv.Config{VCPUs: tt.vcpus, Logger: slog.New(slog.DiscardHandler)}, Config{})
			rep := kvmtest.NewReporter()
			if err := vm.PIO.Register(guest.PortReport, 4, "report", rep); err != nil {
				t.Fatal(err)
			}
			if err := vm.LoadImage(guest.Sleep.Code, guest.LoadAddr); err != nil {
				t.Fatal(err)
			}
			e := guest.Sleep.Entry()
			if tt.hostWake {
				e.Regs.RSI = 1
			}
			if err := vm.SetEntry(0, e); err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			run := vm.Start()
			defer run.Stop()
			if tt.hostWake {
				awaitSleep(t, vm)
				if tt.vector != 0 {
					var b [4]byte
					binary.LittleEndian.PutUint32(b[:], tt.vector)
					if _, err := vm.Memory().WriteAt(b[:], fwtables.FACSAddr+facsWakingVector); err != nil {
						t.Fatal(err)
					}
				}
				if !plat.Wake() {
					t.Fatal("Wake says the guest was not asleep")
				}
			}
			res, err := waitRun(ctx, run)
			if err != nil {
				t.Fatal(err)
			}
			if tt.reset {
				if res.Reason != hv.StopReset {
					t.Fatalf("result %v, want a reset; reports %#x", res, rep.Values())
				}
				return
			}
			want := []uint64{fwtables.FACSAddr, 0x1010, 0, 0x5ee9c0de, 0, tt.status, tt.enable, 0}
			got := rep.Values()
			if res.Reason != hv.StopExit || res.Status != 3 || len(got) != len(want) {
				t.Fatalf("result %v, reports %#x; want exit 3 and %#x", res, got, want)
			}
			got[2] &= x86.CR0PE
			got[7] &= 0x20 // AIE
			for i := range want {
				if got[i] != want[i] {
					t.Errorf("at wake the guest reported %#x, want %#x (FACS, CS, CR0.PE, RAM mark, ran after sleep, PM1_STS, PM1_EN, AIE)", got, want)
					break
				}
			}
		})
	}
}

// awaitSleep waits until the guest is asleep.
func awaitSleep(t *testing.T, vm *hv.VM) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !vm.Sleeping() {
		if time.Now().After(deadline) {
			t.Fatal("the guest did not enter S3 within 10 s")
		}
		time.Sleep(time.Millisecond)
	}
}

// waitRun waits for the run to end, or stops it when ctx ends.
func waitRun(ctx context.Context, run *hv.Background) (hv.Result, error) {
	done := make(chan struct{})
	go func() {
		select {
		case <-ctx.Done():
			run.Stop()
		case <-done:
		}
	}()
	defer close(done)
	return run.Wait()
}

// FuzzWakingEntry reads a FACS the guest wrote anything into: the result
// is an error or an entry the vCPU can be set up for, never a panic.
func FuzzWakingEntry(f *testing.F) {
	f.Add([]byte("FACS\x40\x00\x00\x00\x00\x00\x00\x00\x00\x10\x00\x00"), byte(2), uint64(0))
	f.Add([]byte("FACS"), byte(2), uint64(0x2345678))
	f.Add([]byte("FACS\x40\x00\x00\x00\x00\x00\x00\x00\xff\xff\xff\xff"), byte(0), uint64(1<<40))
	f.Fuzz(func(t *testing.T, head []byte, version byte, xvector uint64) {
		ram := facsRAM("", version, 0, xvector)
		copy(ram[fwtables.FACSAddr:fwtables.FACSAddr+facsXWakingVector], head)
		e, err := wakingEntry(ramReader(ram))
		if err != nil {
			return
		}
		var s kvm.SRegs
		if err := x86.SRegsFor(nil, &s, e); err != nil {
			t.Fatalf("wakingEntry gave %+v, which cannot be set up: %v", e, err)
		}
		if e.Mode == x86.ProtectedMode && !e.NoTables {
			t.Fatalf("a protected-mode wake would write tables into guest RAM")
		}
	})
}
