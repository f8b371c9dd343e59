package hv

import (
	"context"
	"encoding/binary"
	"testing"
	"time"

	"ember/guest"
	"ember/x86"
)

// TestPortTrapRegisters: a trap reads the guest's registers at its OUT and
// sets them for the guest's next instruction, through ioctls (a cold trap)
// and through kvm_run's sync_regs (a hot one, where KVM has them) — the same
// values either way.
func TestPortTrapRegisters(t *testing.T) {
	const port, rounds = 0x4f4, 10
	code := []byte{
		0xba, 0xf4, 0x04, // mov $0x4f4, %dx
		0x31, 0xc9, // xor %cx, %cx
		0xbe, 0x00, 0x06, // mov $0x600, %si
		0x89, 0xc8, // again: mov %cx, %ax
		0xee,       // out %al, (%dx): the trap sets BX = AX + 100
		0x89, 0x1c, // mov %bx, (%si)
		0x83, 0xc6, 0x02, // add $2, %si
		0x41,               // inc %cx
		0x83, 0xf9, rounds, // cmp $10, %cx
		0x75, 0xf2, // jne again
		0xb0, 0x00, // mov $0, %al
		0xe6, PortExit, // out %al, $0xf4
	}
	for _, hot := range []bool{false, true} {
		name := map[bool]string{false: "cold", true: "hot"}[hot]
		t.Run(name, func(t *testing.T) {
			h := openHV(t)
			vm, err := h.NewVM(Config{MemorySize: 1 << 20, Logger: quiet})
			if err != nil {
				t.Fatal(err)
			}
			defer vm.Close()
			if err := vm.LoadImage(code, guest.LoadAddr); err != nil {
				t.Fatal(err)
			}
			if err := vm.SetEntry(0, x86.Entry{Mode: x86.RealMode, RIP: guest.LoadAddr}); err != nil {
				t.Fatal(err)
			}
			var seen []uint64
			var synced []bool
			vm.SetPortTrap(port, func(c *VCPU) {
				synced = append(synced, c.vm.syncRegs())
				regs, sregs, err := c.ExitRegs()
				if err != nil {
					c.Fail(err)
					return
				}
				seen = append(seen, regs.RAX&0xffff)
				regs.RBX = regs.RAX&0xffff + 100
				if err := c.SetExitRegs(regs, sregs, false); err != nil {
					c.Fail(err)
				}
			}, hot)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if res, err := vm.Run(ctx); err != nil || res.Reason != StopExit || res.Status != 0 {
				t.Fatalf("Run = %v, %v; want the guest's exit 0", res, err)
			}
			out := make([]byte, 2*rounds)
			if _, err := vm.Memory().ReadAt(out, 0x600); err != nil {
				t.Fatal(err)
			}
			if len(seen) != rounds {
				t.Fatalf("the trap ran %d times, want %d", len(seen), rounds)
			}
			for i := range rounds {
				if seen[i] != uint64(i) {
					t.Errorf("trap %d read AX %d, want %d", i, seen[i], i)
				}
				if got := binary.LittleEndian.Uint16(out[2*i:]); got != uint16(i+100) {
					t.Errorf("after trap %d the guest had BX %d, want %d", i, got, i+100)
				}
			}
			t.Logf("KVM_CAP_SYNC_REGS with GPRs and segment registers: %v", vm.syncCap)
			wantSync := hot && vm.syncCap
			for i, s := range synced {
				if s != wantSync {
					t.Errorf("trap %d: registers shared through kvm_run %v, want %v", i, s, wantSync)
				}
			}
		})
	}
}

// stopDevice ends the VM's run from the vCPU's thread when written, as a
// power-off register does.
type stopDevice struct{ vm *VM }

func (stopDevice) Read(uint64, []byte) {}
func (d stopDevice) Write(uint64, []byte) {
	d.vm.StopWith(Result{Reason: StopShutdown})
}

// TestADeviceStopRunsNoFurtherGuestCode: when a device stops the VM during
// a guest's access, on the vCPU's thread, the guest does not run on past
// that access.
func TestADeviceStopRunsNoFurtherGuestCode(t *testing.T) {
	h := openHV(t)
	for round := range 20 {
		vm, err := h.NewVM(Config{MemorySize: 1 << 20, Logger: quiet})
		if err != nil {
			t.Fatal(err)
		}
		code := []byte{
			0xba, 0xf0, 0x04, // mov $0x4f0, %dx
			0xee,                         // out %al, (%dx): the device stops the VM
			0xc6, 0x06, 0x00, 0x06, 0x01, // movb $1, 0x600
			0xeb, 0xfe, // jmp .
		}
		if err := vm.PIO.Register(0x4f0, 1, "stop", stopDevice{vm}); err != nil {
			t.Fatal(err)
		}
		if err := vm.LoadImage(code, guest.LoadAddr); err != nil {
			t.Fatal(err)
		}
		if err := vm.SetEntry(0, x86.Entry{Mode: x86.RealMode, RIP: guest.LoadAddr}); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		res, err := vm.Run(ctx)
		cancel()
		if err != nil || res.Reason != StopShutdown {
			t.Fatalf("Run = %v, %v; want the device's StopShutdown", res, err)
		}
		b := make([]byte, 1)
		if _, err := vm.Memory().ReadAt(b, 0x600); err != nil {
			t.Fatal(err)
		}
		vm.Close()
		if b[0] != 0 {
			t.Fatalf("round %d: the guest ran past the access that stopped it", round)
		}
	}
}
