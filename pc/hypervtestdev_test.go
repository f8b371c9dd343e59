package pc

import (
	"encoding/binary"
	"errors"
	"testing"

	"ember/acrn/iorequest"
	"ember/hv"
	"ember/hv/synic"
	"ember/internal/kvmtest"
	"ember/kvm/kvmcap"
)

// TestHyperVTestDev (KVM): with Config.HyperVTestDev, port 0x3000 takes
// hyperv-testdev's commands, each route one irqfd GSI of the VM's, and
// closing the VM drops the routes the guest left; without the VM's Hyper-V
// enlightenments the device is refused.
func TestHyperVTestDev(t *testing.T) {
	h := openHV(t)
	vm, err := h.NewVM(hv.Config{MemorySize: 2 << 20})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Attach(vm, Config{HyperVTestDev: true}); !errors.Is(err, synic.ErrNoHyperV) {
		t.Errorf("hyperv-testdev without Hyper-V: %v, want ErrNoHyperV", err)
	}
	vm.Close()
	if n, _ := h.System().CheckExtension(kvmcap.SysHypervCPUID); n <= 0 {
		t.Skip("this host's KVM has no KVM_CAP_SYS_HYPERV_CPUID")
	}

	fds := kvmtest.OpenFDs(t)
	vm, err = h.NewVM(hv.Config{MemorySize: 2 << 20, VCPUs: 2, HyperV: true})
	if err != nil {
		t.Fatal(err)
	}
	p, err := Attach(vm, Config{HyperVTestDev: true})
	if err != nil || p.HyperVTestDev == nil {
		t.Fatalf("Attach: %v, device %v", err, p.HyperVTestDev)
	}
	write := func(cmd, vp, sint, conn uint32) {
		b := binary.LittleEndian.AppendUint32(nil, conn<<24|cmd<<16|vp<<8|sint)
		if !vm.IORequests().Direct(iorequest.ReqPortIO, 0x3000, true, b) {
			t.Fatal("port 0x3000 is not an in-process device")
		}
	}
	steps := []struct {
		name                string
		cmd, vp, sint, conn uint32
		routes              int
	}{
		{"a route to vCPU 1 SINT 2", 1, 1, 2, 0, 1},
		{"raising it", 3, 1, 2, 0, 1},
		{"a message connection", 4, 0, 8, 0x10, 2},
		{"an event connection", 6, 1, 9, 0x21, 3},
		{"dropping the route", 2, 1, 2, 0, 2},
		{"a route to a vCPU the VM does not have", 1, 2, 0, 0, 2},
	}
	for _, st := range steps {
		write(st.cmd, st.vp, st.sint, st.conn)
		if n := vm.EventFDs().MSIRoutes(); n != st.routes {
			t.Errorf("%s: %d routes, want %d", st.name, n, st.routes)
		}
	}
	if err := vm.Close(); err != nil { // with the connections' routes
		t.Fatal(err)
	}
	if got := kvmtest.OpenFDs(t); got != fds {
		t.Errorf("open descriptors: %d before the VM, %d after", fds, got)
	}
}
