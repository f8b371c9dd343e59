package hypercall

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"ember/acrn"
	"ember/acrn/iorequest"
	"ember/ioreq"
)

// hostServiceVM is the host control plane acting as a VM's Service VM in a
// test: it hears the upcalls and serves the request page in ServiceMemory.
type hostServiceVM struct {
	t    *testing.T
	h    *Service
	id   uint16
	ups  chan int
	page *ioreq.Buffer
}

// newHostServiceVM registers an upcall handler and creates a one-vCPU VM
// with flags whose request buffer it serves.
func newHostServiceVM(t *testing.T, h *Service, flags uint64) *hostServiceVM {
	t.Helper()
	s := &hostServiceVM{t: t, h: h, ups: make(chan int, 16)}
	h.SetServiceUpcall(func(_ uint16, vcpu int) error {
		s.ups <- vcpu
		return nil
	})
	s.id = createVMFlags(t, h, 1, flags)
	mem, err := h.ServiceMemory()
	if err != nil {
		t.Fatal(err)
	}
	b, err := mem.Slice(gpaIOReq+uint64(s.id)*0x1000, iorequest.RequestBufferSize)
	if err != nil {
		t.Fatal(err)
	}
	if s.page, err = ioreq.NewBufferBytes(b); err != nil {
		t.Fatal(err)
	}
	return s
}

// upcall waits for the next upcall and checks it names vCPU 0.
func (s *hostServiceVM) upcall() {
	s.t.Helper()
	select {
	case v := <-s.ups:
		if v != 0 {
			s.t.Fatalf("upcall for vCPU %d, want 0", v)
		}
	case <-time.After(10 * time.Second):
		s.t.Fatal("no upcall")
	}
}

// complete answers the request in slot 0 with v (for a read) and stores
// COMPLETE, as a Service VM does, with a plain store whatever the slot's
// state; it does not notify.
func (s *hostServiceVM) complete(v uint64) {
	s.t.Helper()
	req, err := s.page.Request(0)
	if err != nil {
		s.t.Fatal(err)
	}
	ioreq.SetValue(&req, v)
	if err := s.page.WriteBody(0, &req); err != nil {
		s.t.Fatal(err)
	}
	atomic.StoreUint32(slotState(s.page.Bytes(), 0), uint32(iorequest.StateComplete))
}

// finish is HC_NOTIFY_REQUEST_FINISH for vCPU 0.
func (s *hostServiceVM) finish() acrn.Errno {
	return errnoOfResult(s.h.Hypercall(acrn.HCNotifyRequestFinish, uint64(s.id), 0))
}

// access is one read of port as the VM's vCPU 0 makes it, on a goroutine of
// its own: the value and error Emulate returns arrive on the channel.
type access struct {
	v   uint64
	err error
}

func (s *hostServiceVM) read(port uint16) <-chan access {
	m := s.h.table.ids.Lookup(uint64(s.id)).vm
	req := ioreq.PIORequest(iorequest.DirRead, port, 4, 0)
	if m.Config().CompletionPolling {
		req.CompletionPolling = 1 // as hv's vCPU sets it
	}
	ch := make(chan access, 1)
	go func() {
		v, err := m.IORequests().Emulate(0, &req)
		ch <- access{v, err}
	}()
	return ch
}

func (s *hostServiceVM) result(ch <-chan access) access {
	s.t.Helper()
	select {
	case a := <-ch:
		return a
	case <-time.After(10 * time.Second):
		s.t.Fatal("the access never finished")
		return access{}
	}
}

// TestLateCompletionDoesNotWedgeTheVCPU: a Service VM that answers a
// request after the vCPU gave up on it (the time-out) must not shut that
// vCPU's later requests out: whatever it left in its slot (PROCESSING,
// COMPLETE, with or without HC_NOTIFY_REQUEST_FINISH) is void, and the next
// request is served normally.
func TestLateCompletionDoesNotWedgeTheVCPU(t *testing.T) {
	eachService(t, func(t *testing.T, h *Service) {
		for _, tt := range []struct {
			name             string
			complete, notify bool
		}{
			{"claimed, never completed", false, false},
			{"completed late", true, false},
			{"completed and notified late", true, true},
		} {
			t.Run(tt.name, func(t *testing.T) {
				s := newHostServiceVM(t, h, 0)
				defer destroyVM(t, h, s.id)
				first := s.read(0x5a0)
				s.upcall()
				if err := s.page.Claim(0); err != nil {
					t.Fatal(err)
				}
				if a := s.result(first); !errors.Is(a.err, ioreq.ErrTimeout) || a.v != 0xffffffff {
					t.Fatalf("unanswered read: %#x %v, want all ones and a time-out", a.v, a.err)
				}
				if tt.complete {
					s.complete(0xdead)
				}
				if tt.notify {
					if e := s.finish(); e != acrn.EINVAL {
						t.Errorf("late notify: %v, want EINVAL (nothing in flight)", e)
					}
				}
				next := s.read(0x5a4)
				s.upcall()
				if err := s.page.Claim(0); err != nil {
					t.Fatalf("next request: %v", err)
				}
				s.complete(0xbeef)
				if e := s.finish(); e != 0 {
					t.Fatalf("notify: %v", e)
				}
				if a := s.result(next); a.err != nil || a.v != 0xbeef {
					t.Fatalf("next read: %#x %v, want 0xbeef", a.v, a.err)
				}
			})
		}
	})
}

// TestCompletionPollingThroughTheServiceVM: for a VM created with
// GUEST_FLAG_IO_COMPLETION_POLLING the Service VM's page says
// completion_polling, and a Service VM that then stores COMPLETE without
// HC_NOTIFY_REQUEST_FINISH (as Linux's HSM does) has answered: the vCPU
// sees it. A notify that comes anyway succeeds, as in ACRN.
func TestCompletionPollingThroughTheServiceVM(t *testing.T) {
	eachService(t, func(t *testing.T, h *Service) {
		s := newHostServiceVM(t, h, acrn.GuestFlagIOCompletionPolling)
		for i, notify := range []bool{false, true} {
			ch := s.read(0x5a0)
			s.upcall()
			req, err := s.page.Request(0)
			if err != nil || req.CompletionPolling != 1 {
				t.Fatalf("request %d in the Service VM's page: completion_polling %d, %v; want 1",
					i, req.CompletionPolling, err)
			}
			if err := s.page.Claim(0); err != nil {
				t.Fatal(err)
			}
			start := time.Now()
			s.complete(0x600d + uint64(i))
			if notify {
				if e := s.finish(); e != 0 {
					t.Errorf("notify for a polling VM: %v, want 0", e)
				}
			}
			a := s.result(ch)
			if a.err != nil || a.v != 0x600d+uint64(i) {
				t.Fatalf("read %d: %#x %v, want %#x", i, a.v, a.err, 0x600d+i)
			}
			if d := time.Since(start); d > ioreq.DefaultTimeout/2 {
				t.Errorf("read %d took %v after COMPLETE", i, d)
			}
			if st := s.page.State(0); st != iorequest.StateFree {
				t.Errorf("Service VM's slot %v after read %d, want FREE", st, i)
			}
		}
	})
}

// TestPauseAndDestroyWhileTheVMWaitsOnTheServiceVM: HC_PAUSE_VM and
// HC_DESTROY_VM of a VM whose vCPU waits for the Service VM to answer its
// request return at once (ACRN's pause does not wait on requests), rather
// than after the request's time-out; a Service VM guest's vCPU0 making them
// could otherwise never take the upcall it waits for. KVM only: the fake
// machine has no vCPU to wait.
func TestPauseAndDestroyWhileTheVMWaitsOnTheServiceVM(t *testing.T) {
	h := openHV(t)
	s := newHostServiceVM(t, h, 0)
	// Real mode at 0:0x1000: in eax, 0x5a0; out 0xf4, eax.
	code := []byte{0xba, 0xa0, 0x05, 0x66, 0xed, 0x66, 0xe7, 0xf4}
	mem, _ := h.ServiceMemory()
	if _, err := mem.WriteAt(code, gpaRAM+0x1000); err != nil {
		t.Fatal(err)
	}
	regs := acrn.VCPURegs{VCPURegs: acrn.Regs{RIP: 0x1000, CR0: 0x60000010, CSAR: 0x9b, CSLimit: 0xffff, RFlags: 2}}
	if r := h.Hypercall(acrn.HCSetVCPURegs, uint64(s.id), hostWrite(t, h, gpaParam, &regs)); r != 0 {
		t.Fatal(acrn.ResultError(r))
	}
	if r := h.Hypercall(acrn.HCStartVM, uint64(s.id), 0); r != 0 {
		t.Fatal(acrn.ResultError(r))
	}
	s.upcall() // the vCPU now waits on us
	st, _ := h.LookupVM(s.id)
	timeout := st.VM.IORequests().Timeout()
	for _, c := range []struct {
		name string
		id   acrn.ID
	}{{"HC_PAUSE_VM", acrn.HCPauseVM}, {"HC_DESTROY_VM", acrn.HCDestroyVM}} {
		start := time.Now()
		if r := h.Hypercall(c.id, uint64(s.id), 0); r != 0 {
			t.Fatalf("%s: %v", c.name, acrn.ResultError(r))
		}
		if d := time.Since(start); d > timeout/2 {
			t.Errorf("%s took %v while the VM waited on the Service VM (time-out %v)", c.name, d, timeout)
		}
	}
	if _, ok := h.LookupVM(s.id); ok {
		t.Error("the VM is still in the table after HC_DESTROY_VM")
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if _, err := h.WaitVM(ctx, s.id); err == nil {
		t.Error("WaitVM found the destroyed VM")
	}
}

// TestResetFreesTheRequestPage: HC_RESET_VM sets every slot of the VM's
// request buffer FREE (ACRN's reset_vm_ioreqs), so nothing a Service VM
// left there from the last run is taken for a request of the next.
func TestResetFreesTheRequestPage(t *testing.T) {
	eachService(t, func(t *testing.T, h *Service) {
		s := newHostServiceVM(t, h, 0)
		for i, st := range []iorequest.State{iorequest.StatePending, iorequest.StateProcessing, iorequest.StateComplete} {
			atomic.StoreUint32(slotState(s.page.Bytes(), i), uint32(st))
		}
		for _, c := range []acrn.ID{acrn.HCPauseVM, acrn.HCResetVM} {
			if r := s.h.Hypercall(c, uint64(s.id), 0); r != 0 {
				t.Fatalf("%v: %v", c, acrn.ResultError(r))
			}
		}
		for i := range iorequest.IORequestMax {
			if st := s.page.State(i); st != iorequest.StateFree {
				t.Errorf("slot %d is %v after HC_RESET_VM, want FREE", i, st)
			}
		}
	})
}
