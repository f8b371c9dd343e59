package synic

import (
	"encoding/binary"
	"errors"
	"runtime"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"ember/guest"
	"ember/hv"
	"ember/hyperv"
	"ember/internal/hvtest"
	"ember/internal/kvmtest"
	"ember/kvm"
	"ember/kvm/kvmcap"
)

// TestSINTRoutes (KVM): a VM with Hyper-V makes SINT routes on irqfd GSIs
// from the table its MSI vectors share, and refuses a vCPU or a SINT it
// does not have; a route puts messages into the message page KVM reported
// (a busy slot's message waits for the guest's EOM, and arrives when KVM
// signals the acknowledgement) and event flags into the event page; closing
// the VM closes the routes left open, with their descriptors and
// goroutines.
func TestSINTRoutes(t *testing.T) {
	h := hvtest.Open(t)
	if n, _ := h.System().CheckExtension(kvmcap.SysHypervCPUID); n <= 0 {
		t.Skip("this host's KVM has no KVM_CAP_SYS_HYPERV_CPUID")
	}
	plain, err := h.NewVM(hv.Config{MemorySize: 2 << 20})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := New(plain); !errors.Is(err, ErrNoHyperV) {
		t.Errorf("a SynIC service on a VM without Config.HyperV: %v, want ErrNoHyperV", err)
	}
	plain.Close()

	fds, gs := kvmtest.OpenFDs(t), runtime.NumGoroutine()
	vm, err := h.NewVM(hv.Config{MemorySize: 2 << 20, VCPUs: 2, HyperV: true})
	if err != nil {
		t.Fatal(err)
	}
	syn, err := New(vm)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := New(vm); err == nil {
		t.Error("a second SynIC service on one VM was accepted")
	}
	for _, bad := range []struct{ vp, sint uint32 }{{2, 0}, {0, 16}} {
		if _, err := syn.NewRoute(bad.vp, bad.sint, false); !errors.Is(err, unix.EINVAL) {
			t.Errorf("route to vCPU %d SINT %d: %v, want EINVAL", bad.vp, bad.sint, err)
		}
	}
	msi, err := vm.EventFDs().NewMSIVector(0xfee00000, 0x41)
	if err != nil {
		t.Fatal(err)
	}
	msgs, err := syn.NewRoute(1, 8, true)
	if err != nil {
		t.Fatal(err)
	}
	events, err := syn.NewRoute(1, 9, false)
	if err != nil {
		t.Fatal(err)
	}
	if msi.GSI() != 24 || msgs.GSI() != 25 || events.GSI() != 26 || vm.EventFDs().MSIRoutes() != 3 {
		t.Errorf("GSIs %d %d %d, %d routes; want 24 25 26, 3", msi.GSI(), msgs.GSI(), events.GSI(), vm.EventFDs().MSIRoutes())
	}

	// vCPU 1's SynIC as a KVM_EXIT_HYPERV_SYNIC reports it: message page
	// at 0x10000, event page at 0x11000.
	const msgPage, evtPage = 0x10000, 0x11000
	syn.SynIC(1, 1, evtPage|1, msgPage|1)
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
	if n, err := vm.VCPU(1).KVM().SetMSRs([]kvm.MSREntry{{Index: 0x40000084}}); n != 1 || err != nil { // HV_X64_MSR_EOM
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

// TestGuestPostsAMessage (KVM): a Hyper-V guest's HvPostMessage, which KVM
// hands to user space, reaches the connection's handler through the
// service, with the status the handler gives back; an unknown connection
// fails with HV_STATUS_INVALID_CONNECTION_ID, and a VM that no service
// serves answers HV_STATUS_INVALID_HYPERCALL_CODE. The message page the
// guest set in its SIMP MSR is where a route then posts.
func TestGuestPostsAMessage(t *testing.T) {
	h := hvtest.Open(t)
	if n, _ := h.System().CheckExtension(kvmcap.SysHypervCPUID); n <= 0 {
		t.Skip("this host's KVM has no KVM_CAP_SYS_HYPERV_CPUID")
	}
	const msgPage = 0x23000 // the guest's SIMP (guest/src/hv_post.S)
	tests := []struct {
		name    string
		serve   bool
		handler bool
		status  hyperv.Status
	}{
		{"no service", false, false, hyperv.StatusInvalidHypercallCode},
		{"no such connection", true, false, hyperv.StatusInvalidConnectionID},
		{"to a handler", true, true, hyperv.StatusInsufficientMemory},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			vm, err := h.NewVM(hv.Config{MemorySize: 2 << 20, HyperV: true})
			if err != nil {
				t.Fatal(err)
			}
			defer vm.Close()
			var syn *Service
			var got []hyperv.PostMessageInput
			if tt.serve {
				if syn, err = New(vm); err != nil {
					t.Fatal(err)
				}
			}
			if tt.handler {
				err := syn.HandleMessages(7, func(in hyperv.PostMessageInput) hyperv.Status {
					got = append(got, in)
					return hyperv.StatusInsufficientMemory // any status: the guest gets it
				})
				if err != nil {
					t.Fatal(err)
				}
			}
			status := runGuest(t, vm, guest.HVPost)
			if status != tt.status {
				t.Errorf("the guest's HvPostMessage: %v, want %v", status, tt.status)
			}
			if tt.handler {
				if len(got) != 1 || got[0].ConnectionID != 7 || got[0].MessageType != 0x55 || got[0].PayloadSize != 4 ||
					binary.LittleEndian.Uint32(got[0].Payload[:]) != 0xfeedbeef {
					t.Errorf("the handler got %+v, want one message to connection 7, type 0x55, payload 0xfeedbeef", got)
				}
			}
			if syn == nil {
				return
			}
			r, err := syn.NewRoute(0, 1, true)
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			if st := r.Post(hyperv.Message{Type: 0x66}); st != hyperv.StatusSuccess {
				t.Fatalf("posting to the guest: %v", st)
			}
			b, _ := vm.Memory().Slice(msgPage+hyperv.MessageSize, 4)
			if typ := binary.LittleEndian.Uint32(b); typ != 0x66 {
				t.Errorf("SINT 1's slot of the guest's message page holds type %#x, want 0x66", typ)
			}
		})
	}
}

// runGuest runs a tiny guest on vCPU 0 of vm until it exits and returns
// the one value it reported, as a Hyper-V status.
func runGuest(t *testing.T, vm *hv.VM, p guest.Program) hyperv.Status {
	t.Helper()
	res, v := hvtest.Run(t, vm, p)
	if res.Reason != hv.StopExit || res.Status != 0 {
		t.Fatalf("the guest ended with %+v; want its exit 0", res)
	}
	if len(v) != 1 {
		t.Fatalf("the guest reported %#x, want one status", v)
	}
	return hyperv.Status(v[0])
}
