package hv

import (
	"encoding/binary"
	"errors"
	"runtime"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"ember/hyperv"
	"ember/internal/kvmtest"
	"ember/kvm"
)

// TestSINTRoutes (KVM): a VM with Hyper-V makes SINT routes on irqfd GSIs
// from the table its MSI vectors share, and refuses a vCPU or a SINT it
// does not have; a route puts messages into the message page KVM reported
// (a busy slot's message waits for the guest's EOM, and arrives when KVM
// signals the acknowledgement) and event flags into the event page; closing
// the VM closes the routes left open, with their descriptors and
// goroutines.
func TestSINTRoutes(t *testing.T) {
	h := openHV(t)
	if n, _ := h.System().CheckExtension(kvm.CapSysHypervCPUID); n <= 0 {
		t.Skip("this host's KVM has no KVM_CAP_SYS_HYPERV_CPUID")
	}
	plain, err := h.NewVM(Config{MemorySize: 2 << 20})
	if err != nil {
		t.Fatal(err)
	}
	if plain.HyperV() != nil {
		t.Error("a VM without Config.HyperV has a SynIC service")
	}
	plain.Close()

	fds, gs := kvmtest.OpenFDs(t), runtime.NumGoroutine()
	vm, err := h.NewVM(Config{MemorySize: 2 << 20, VCPUs: 2, HyperV: true})
	if err != nil {
		t.Fatal(err)
	}
	syn := vm.HyperV()
	for _, bad := range []struct{ vp, sint uint32 }{{2, 0}, {0, 16}} {
		if _, err := syn.NewSINTRoute(bad.vp, bad.sint, false); !errors.Is(err, unix.EINVAL) {
			t.Errorf("route to vCPU %d SINT %d: %v, want EINVAL", bad.vp, bad.sint, err)
		}
	}
	msi, err := vm.EventFDs().NewMSIVector(0xfee00000, 0x41)
	if err != nil {
		t.Fatal(err)
	}
	msgs, err := syn.NewSINTRoute(1, 8, true)
	if err != nil {
		t.Fatal(err)
	}
	events, err := syn.NewSINTRoute(1, 9, false)
	if err != nil {
		t.Fatal(err)
	}
	if msi.GSI() != 24 || msgs.GSI() != 25 || events.GSI() != 26 || vm.EventFDs().MSIRoutes() != 3 {
		t.Errorf("GSIs %d %d %d, %d routes; want 24 25 26, 3", msi.GSI(), msgs.GSI(), events.GSI(), vm.EventFDs().MSIRoutes())
	}

	// vCPU 1's SynIC as a KVM_EXIT_HYPERV_SYNIC reports it: message page
	// at 0x10000, event page at 0x11000.
	const msgPage, evtPage = 0x10000, 0x11000
	vm.vcpus[1].synic.Update(1, evtPage|1, msgPage|1)
	mem := vm.Memory()
	slot := func() (uint32, uint8, uint32) {
		b, _ := mem.Slice(msgPage+8*hyperv.MessageSize, hyperv.MessageSize)
		return binary.LittleEndian.Uint32(b), b[5], binary.LittleEndian.Uint32(b[16:])
	}
	post := func(n uint32) hyperv.Status {
		m := hyperv.Message{Type: 0x77, PayloadSize: 4}
		binary.LittleEndian.PutUint32(m.Payload[:], n)
		return msgs.Post(m)
	}
	steps := []struct {
		name         string
		n            uint32
		status       hyperv.Status
		typ, payload uint32
		flags        uint8
	}{
		{"into the free slot", 1, hyperv.StatusSuccess, 0x77, 1, 0},
		{"into the busy slot: waits", 2, hyperv.StatusSuccess, 0x77, 1, 1},
		{"a third while one waits", 3, hyperv.StatusInsufficientBuffers, 0x77, 1, 1},
	}
	for _, st := range steps {
		status := post(st.n)
		typ, flags, payload := slot()
		if status != st.status || typ != st.typ || flags != st.flags || payload != st.payload {
			t.Errorf("%s: %v, slot type %#x flags %d payload %d; want %v, %#x %d %d", st.name, status, typ, flags, payload, st.status, st.typ, st.flags, st.payload)
		}
	}
	// The guest consumes the message and writes EOM: KVM signals the
	// route's resample eventfd, and the waiting message arrives.
	b, _ := mem.Slice(msgPage+8*hyperv.MessageSize, 4)
	binary.LittleEndian.PutUint32(b, 0)
	if n, err := vm.vcpus[1].kvm.SetMSRs([]kvm.MSREntry{{Index: 0x40000084}}); n != 1 || err != nil { // HV_X64_MSR_EOM
		t.Fatalf("writing EOM: %d, %v", n, err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for typ, _, payload := slot(); typ != 0x77 || payload != 2; typ, _, payload = slot() {
		if time.Now().After(deadline) {
			t.Fatalf("the waiting message never arrived: slot type %#x payload %d", typ, payload)
		}
		time.Sleep(time.Millisecond)
	}

	if err := events.SetEventFlag(0x21); err != nil {
		t.Fatal(err)
	}
	f, _ := mem.Slice(evtPage+9*256, 8)
	if w := binary.LittleEndian.Uint64(f); w != 1<<0x21 {
		t.Errorf("event flags %#x, want bit 0x21", w)
	}
	if err := msgs.Close(); err != nil {
		t.Fatal(err)
	}
	if err := msgs.Signal(); err == nil {
		t.Error("a closed route raised its SINT")
	}
	if n := vm.EventFDs().MSIRoutes(); n != 2 {
		t.Errorf("%d routes after closing one of 3", n)
	}
	msi.Close()
	if err := vm.Close(); err != nil { // closes the event route
		t.Fatal(err)
	}
	if got := kvmtest.OpenFDs(t); got != fds {
		t.Errorf("open descriptors: %d before the VM, %d after", fds, got)
	}
	for runtime.NumGoroutine() > gs && time.Now().Before(deadline) {
		runtime.Gosched()
	}
	if got := runtime.NumGoroutine(); got != gs {
		t.Errorf("goroutines: %d before the VM, %d after", gs, got)
	}
}
