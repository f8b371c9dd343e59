package ioreq

import (
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"ember/acrn/iorequest"
)

// TestServiceVMClient plays a Service VM on a heap page: it waits for the
// upcall, runs its half of the life cycle in its page, and calls
// HC_NOTIFY_REQUEST_FINISH (Finish).
func TestServiceVMClient(t *testing.T) {
	d := newDispatcher(t, Config{})
	page := make([]byte, iorequest.RequestBufferSize)
	pb, err := NewBufferBytes(page)
	must(t, err)
	pb.Reset()
	upcalls := make(chan int, iorequest.IORequestMax)
	client := NewServiceVMClient("service-vm", pb, func(vcpu int) error { upcalls <- vcpu; return nil })
	d.Router().SetDefault(client) // the Service VM serves everything ember does not
	must(t, d.Router().Claim(Range{iorequest.ReqPortIO, 0xe9, 0xe9}, InProcess("debugcon", &recorder{})))

	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() { // the Service VM's vCPU0 upcall handler
		for {
			select {
			case <-stop:
				return
			case <-upcalls:
			}
			for i := range iorequest.IORequestMax { // scan for PENDING, as the HSM does
				if pb.State(i) != iorequest.StatePending {
					continue
				}
				must(t, pb.Claim(i))
				req, _ := pb.Request(i)
				if Dir(&req) == iorequest.DirRead {
					addr, _ := Target(&req)
					SetValue(&req, 0x5e000000|addr)
				}
				pb.WriteBody(i, &req)
				must(t, pb.Complete(i))
				if err := client.Finish(i); err != nil {
					t.Errorf("Finish(%d): %v", i, err)
				}
			}
		}
	})
	var stopOnce sync.Once
	stopHSM := func() { stopOnce.Do(func() { close(stop); wg.Wait() }) }
	defer stopHSM()

	if err := client.Finish(3); !errors.Is(err, ErrNoRequest) {
		t.Errorf("Finish with nothing in flight: %v", err)
	}
	for vcpu := range 4 {
		r := PIORequest(iorequest.DirRead, 0x60, 1, 0)
		if v, err := d.Emulate(vcpu, &r); err != nil || v != 0x60 {
			t.Errorf("vCPU %d: port 0x60 reads %#x, %v; want 0x60 (the low byte of 0x5e000060)", vcpu, v, err)
		}
		r = PIORequest(iorequest.DirRead, 0x1f0, 4, 0)
		if v, err := d.Emulate(vcpu, &r); err != nil || v != 0x5e0001f0 {
			t.Errorf("vCPU %d: port 0x1f0 reads %#x, %v", vcpu, v, err)
		}
		w := PIORequest(iorequest.DirWrite, 0xe9, 1, 'x')
		if _, err := d.Emulate(vcpu, &w); err != nil {
			t.Error(err)
		}
	}
	// The vCPU resumes before the HSM's Finish frees the page's slot (rule
	// (e) before (f)): let the HSM finish before looking at the page.
	stopHSM()
	for i := range iorequest.IORequestMax {
		if pb.State(i) != iorequest.StateFree || d.Buffer().State(i) != iorequest.StateFree {
			t.Errorf("slot %d: page %v, ember %v", i, pb.State(i), d.Buffer().State(i))
		}
	}
}

func TestServiceVMClientTimeout(t *testing.T) {
	d := newDispatcher(t, Config{Timeout: 30 * time.Millisecond})
	pb, err := NewBufferBytes(make([]byte, iorequest.RequestBufferSize))
	must(t, err)
	pb.Reset()
	client := NewServiceVMClient("sleepy", pb, func(int) error { return nil })
	d.Router().SetDefault(client)
	r := PIORequest(iorequest.DirRead, 0x60, 1, 0)
	if v, err := d.Emulate(0, &r); v != 0xff || !errors.Is(err, ErrTimeout) {
		t.Errorf("%#x, %v; want 0xff, ErrTimeout", v, err)
	}
	if pb.State(0) != iorequest.StateFree {
		t.Errorf("Service VM page slot left %v", pb.State(0))
	}
	if err := client.Finish(0); !errors.Is(err, ErrNoRequest) {
		t.Errorf("late Finish: %v", err)
	}
	// An upcall that fails fails the request at once.
	client2 := NewServiceVMClient("broken", pb, func(int) error { return errors.New("no vCPU0") })
	d.Router().SetDefault(client2)
	if v, err := d.Emulate(0, &r); v != 0xff || err == nil || !strings.Contains(err.Error(), "no vCPU0") {
		t.Errorf("%#x, %v", v, err)
	}
}
