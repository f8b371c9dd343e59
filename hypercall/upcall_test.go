package hypercall

import (
	"context"
	"slices"
	"testing"
	"time"

	"ember/acrn"
	"ember/acrn/iorequest"
	"ember/guest"
	"ember/hv"
	"ember/ioreq"
	"ember/x86"
)

// TestServiceVMGuestUpcall is flow 3 end to end: a Service VM guest
// (guest.HCUpcall) creates a User VM, registers a page of its own RAM as the
// User VM's request buffer and serves the User VM's port I/O from its upcall
// handler; the User VM exits with what it read, and writes what it read back
// to ports the Service VM also serves.
func TestServiceVMGuestUpcall(t *testing.T) {
	for _, tt := range []struct {
		name   string
		vector uint64 // RSI: 0 for the default 0xF3
	}{
		{"default vector 0xF3", 0},
		{"HC_SET_CALLBACK_VECTOR 0x40", 0x40},
	} {
		t.Run(tt.name, func(t *testing.T) {
			h := openHV(t) // the callback vector is the hypervisor's: one each
			run := runGuest(t, h, hv.Config{}, Identity{ServiceVM: true}, guest.HCUpcall, func(e *x86.Entry) { e.Regs.RSI = tt.vector })
			vm, elapsed := run.vm, run.took
			if run.res.Reason != hv.StopExit || run.res.Status != 0 {
				t.Fatalf("Service VM: %v (reports %#x)", run.res, run.reports)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			var want []uint64
			if tt.vector != 0 {
				want = append(want, 0) // HC_SET_CALLBACK_VECTOR
			}
			want = append(want, 0, 0, 0, 0, 0, // create, regions, regs, ioreq buffer, start
				// direction, port, size, value, HC_NOTIFY_REQUEST_FINISH
				uint64(iorequest.DirRead), 0x5a0, 4, 0xc0de05a0, 0,
				uint64(iorequest.DirRead), 0x5a2, 2, 0xc0de05a2, 0,
				uint64(iorequest.DirWrite), 0x5a8, 2, 0x05a2, 0, // the word the User VM read
				uint64(iorequest.DirWrite), 0x5ac, 4, 0xc0de05a0, 0, // the dword
			)
			got := run.reports
			if len(got) != len(want) {
				t.Fatalf("reports %#x, want %#x", got, want)
			}
			for i := range want {
				if got[i] != want[i] {
					t.Fatalf("report %d is %#x, want %#x\nreports %#x\nwant    %#x", i, got[i], want[i], got, want)
				}
			}
			uid := uint16(1)
			r, err := h.WaitVM(ctx, uid)
			if err != nil || r.Reason != hv.StopExit || r.Status != 0xc0de05a0 {
				t.Fatalf("User VM: %v %v, want exit 0xc0de05a0", r, err)
			}
			st, ok := h.LookupVM(uid)
			if !ok {
				t.Fatal("User VM gone")
			}
			if rd, wr := st.VM.Unclaimed(); rd != 0 || wr != 0 {
				t.Errorf("%d reads and %d writes reached no client: they should have gone to the Service VM", rd, wr)
			}
			if v := h.CallbackVector(); tt.vector != 0 && uint64(v) != tt.vector {
				t.Errorf("callback vector %#x, want %#x", v, tt.vector)
			}
			page, err := vm.Memory().Slice(0x100000, iorequest.RequestBufferSize)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := ioreq.NewBufferBytes(page)
			for i := range iorequest.IORequestMax {
				if s := b.State(i); s != iorequest.StateFree {
					t.Errorf("slot %d of the Service VM's page is %v after the run", i, s)
				}
			}
			t.Logf("4 requests served by the Service VM guest; Service VM run %v (%.0f µs a request including setup)",
				elapsed.Round(time.Microsecond), float64(elapsed.Microseconds())/4)
		})
	}
}

// TestHostServiceUpcall is the host control plane as the Service VM: with a
// ServiceUpcall registered, the buffer page in ServiceMemory gets the
// requests, the handler hears of each, and HC_NOTIFY_REQUEST_FINISH resumes
// the vCPU with the value the host put in the page.
func TestHostServiceUpcall(t *testing.T) {
	h := openHV(t)
	type upcall struct {
		vmid uint16
		vcpu int
	}
	ups := make(chan upcall, 16)
	h.SetServiceUpcall(func(vmid uint16, vcpu int) error {
		ups <- upcall{vmid, vcpu}
		return nil
	})
	id := createVM(t, h, 1)
	// Real mode at 0:0x1000: in eax, 0x5a0; out 0x5a4, eax; out 0xf4, eax.
	code := []byte{0xba, 0xa0, 0x05, 0x66, 0xed, 0xba, 0xa4, 0x05, 0x66, 0xef, 0x66, 0xe7, 0xf4}
	mem, err := h.ServiceMemory()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := mem.WriteAt(code, gpaRAM+0x1000); err != nil {
		t.Fatal(err)
	}
	regs := acrn.VCPURegs{VCPURegs: acrn.Regs{RIP: 0x1000, CR0: 0x60000010, CSAR: 0x9b, CSLimit: 0xffff, RFlags: 2}}
	finish := func(vcpu uint64) acrn.Errno {
		return errnoOfResult(h.Hypercall(acrn.HCNotifyRequestFinish, uint64(id), vcpu))
	}
	if r := h.Hypercall(acrn.HCSetVCPURegs, uint64(id), hostWrite(t, h, gpaParam, &regs)); r != 0 {
		t.Fatalf("HC_SET_VCPU_REGS: %v", acrn.ResultError(r))
	}
	if e := finish(0); e != acrn.EINVAL {
		t.Fatalf("finish with no request in flight: %v, want EINVAL", e)
	}
	if r := h.Hypercall(acrn.HCStartVM, uint64(id), 0); r != 0 {
		t.Fatalf("HC_START_VM: %v", acrn.ResultError(r))
	}
	page, err := mem.Slice(gpaIOReq+uint64(id)*0x1000, iorequest.RequestBufferSize)
	if err != nil {
		t.Fatal(err)
	}
	b, err := ioreq.NewBufferBytes(page)
	if err != nil {
		t.Fatal(err)
	}
	var seen []iorequest.PIORequest
	for n := range 2 {
		var u upcall
		select {
		case u = <-ups:
		case <-time.After(10 * time.Second):
			t.Fatalf("no upcall for request %d", n)
		}
		if u.vmid != id || u.vcpu != 0 {
			t.Fatalf("upcall %+v, want VM %d vCPU 0", u, id)
		}
		if err := b.Claim(0); err != nil { // PENDING -> PROCESSING, as an HSM does
			t.Fatal(err)
		}
		if e := finish(0); e != acrn.EINVAL {
			t.Fatalf("finish of a PROCESSING request: %v, want EINVAL", e)
		}
		req, err := b.Request(0)
		if err != nil || req.Type != iorequest.ReqPortIO {
			t.Fatalf("request %+v %v", req, err)
		}
		p := req.PIO()
		seen = append(seen, p)
		if ioreq.Dir(&req) == iorequest.DirRead {
			ioreq.SetValue(&req, 0xfeed0000|p.Address)
			if err := b.WriteBody(0, &req); err != nil {
				t.Fatal(err)
			}
		}
		if err := b.Complete(0); err != nil {
			t.Fatal(err)
		}
		if e := finish(0); e != 0 {
			t.Fatalf("finish: %v", e)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	r, err := h.WaitVM(ctx, id)
	if err != nil || r.Reason != hv.StopExit || r.Status != 0xfeed05a0 {
		t.Fatalf("User VM: %v %v, want exit 0xfeed05a0", r, err)
	}
	want := []iorequest.PIORequest{
		{Direction: iorequest.DirRead, Address: 0x5a0, Size: 4},
		{Direction: iorequest.DirWrite, Address: 0x5a4, Size: 4, Value: 0xfeed05a0},
	}
	for i, w := range want {
		if g := seen[i]; g.Direction != w.Direction || g.Address != w.Address || g.Size != w.Size || g.Value != w.Value {
			t.Errorf("request %d: %+v, want %+v", i, g, w)
		}
	}
	if e := finish(0); e != acrn.EINVAL {
		t.Errorf("finish after the run: %v, want EINVAL", e)
	}
}

// runHCUpcall runs guest.HCUpcall as a Service VM guest in mode and returns
// how it ended, its reports, how long it ran and the service.
func runHCUpcall(t *testing.T, mode uint64) (hv.Result, []uint64, time.Duration, *Service) {
	t.Helper()
	h := openHV(t)
	r := runGuest(t, h, hv.Config{}, Identity{ServiceVM: true}, guest.HCUpcall, func(e *x86.Entry) { e.Regs.RDX = mode })
	return r.res, r.reports, r.took, h
}

// TestServiceVMGuestHardCases: a Service VM guest (guest.HCUpcall) that
// serves a User VM created with GUEST_FLAG_IO_COMPLETION_POLLING without
// ever notifying; one that pauses and destroys its User VM from its upcall
// handler on vCPU0 while that VM waits on it; one that answers a request
// after ember gave up on it and then serves the next. None stalls.
func TestServiceVMGuestHardCases(t *testing.T) {
	const einval = 0xffffffea // -EINVAL, as the guest reports EAX
	setup := []uint64{0, 0, 0, 0, 0}
	cat := func(parts ...[]uint64) []uint64 {
		var all []uint64
		for _, p := range parts {
			all = append(all, p...)
		}
		return all
	}
	rd, wr := uint64(iorequest.DirRead), uint64(iorequest.DirWrite)
	for _, tt := range []struct {
		name    string
		mode    uint64
		want    []uint64
		userVM  uint64 // the User VM's exit status; 0: it was destroyed
		maxTime time.Duration
	}{
		{"completion polling, no notify", guest.HCUpcallPolling, cat(setup,
			// direction, port, size, value, completion_polling
			[]uint64{rd, 0x5a0, 4, 0xc0de05a0, 1, rd, 0x5a2, 2, 0xc0de05a2, 1,
				wr, 0x5a8, 2, 0x05a2, 1, wr, 0x5ac, 4, 0xc0de05a0, 1}), 0xc0de05a0, 0},
		{"pause and destroy from the upcall", guest.HCUpcallPauseDestroy, cat(setup,
			// the request; HC_PAUSE_VM; the slot still PENDING for 0x5a0; HC_DESTROY_VM
			[]uint64{rd, 0x5a0, 4, 0, uint64(iorequest.StatePending), 0x5a0, 0}), 0, ioreq.DefaultTimeout / 2},
		{"late completion, then the next request", guest.HCUpcallLate, cat(setup,
			[]uint64{rd, 0x5a0, 4, einval, // claimed and left; the late notify
				rd, 0x5a2, 2, 0xc0de05a2, 0,
				wr, 0x5a8, 2, 0x05a2, 0,
				wr, 0x5ac, 4, 0xffffffff, 0}), 0xffffffff, 0}, // the first read timed out
	} {
		t.Run(tt.name, func(t *testing.T) {
			res, got, elapsed, h := runHCUpcall(t, tt.mode)
			if res.Reason != hv.StopExit || res.Status != 0 {
				t.Fatalf("Service VM: %v (reports %#x)", res, got)
			}
			if !slices.Equal(got, tt.want) {
				t.Fatalf("reports %#x\nwant    %#x", got, tt.want)
			}
			if tt.maxTime > 0 && elapsed > tt.maxTime {
				t.Errorf("the Service VM ran %v: a stall (the request time-out is %v)", elapsed, ioreq.DefaultTimeout)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			r, err := h.WaitVM(ctx, 1)
			switch {
			case tt.userVM == 0:
				if _, ok := h.LookupVM(1); ok || err == nil {
					t.Errorf("the destroyed User VM is still there (%v %v)", r, err)
				}
			case err != nil || r.Reason != hv.StopExit || uint64(uint32(r.Status)) != tt.userVM:
				t.Errorf("User VM: %v %v, want exit %#x", r, err, tt.userVM)
			}
			t.Logf("Service VM ran %v", elapsed.Round(time.Millisecond))
		})
	}
}
