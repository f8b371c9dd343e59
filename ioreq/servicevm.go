package ioreq

import (
	"errors"
	"fmt"
	"sync"

	"ember/acrn/iorequest"
)

// ErrNoRequest is returned by ServiceVMClient.Finish for a vCPU that has no
// request with the Service VM.
var ErrNoRequest = errors.New("ioreq: no request in flight for this vCPU")

// ServiceVMClient is the client for a User VM whose device model is a Service
// VM guest. The Service VM registered a page of its RAM with
// HC_SET_IOREQ_BUFFER; the client mirrors each request routed to it into the
// requesting vCPU's slot of that page (FREE -> PENDING there, ordering rule
// (a)), raises the upcall, and keeps ember's own slot PROCESSING until the
// Service VM calls HC_NOTIFY_REQUEST_FINISH, which hv turns into Finish.
// The Service VM sees exactly the requests ember routes to it, in the ACRN
// layout, and runs its half of the life cycle (PENDING -> PROCESSING ->
// COMPLETE) in its own memory.
type ServiceVMClient struct {
	name   string
	page   *Buffer
	upcall func(vcpu int) error

	mu       sync.Mutex
	inflight [iorequest.IORequestMax]*pendingRequest
}

type pendingRequest struct {
	t   Ticket
	req iorequest.IORequest
}

// NewServiceVMClient returns a client that serves requests through page, a
// Buffer over the Service VM's registered page (NewBufferBytes on the bytes
// memory.Guest.Slice returns for the GPA it passed). upcall is called after a
// request is PENDING in the page; hv injects the callback vector (0xF3 or the
// one HC_SET_CALLBACK_VECTOR chose) into the Service VM's vCPU0 there. vcpu
// is the requesting vCPU of the User VM, for logs.
func NewServiceVMClient(name string, page *Buffer, upcall func(vcpu int) error) *ServiceVMClient {
	return &ServiceVMClient{name: name, page: page, upcall: upcall}
}

// Name returns the client's name.
func (c *ServiceVMClient) Name() string { return c.name }

// Page returns the Service VM's request page.
func (c *ServiceVMClient) Page() *Buffer { return c.page }

// Submit mirrors the request into the Service VM's page and raises the
// upcall. Ember's own slot goes PROCESSING: ember, as the HSM, has assigned
// it to this client (rules (b), (c)).
func (c *ServiceVMClient) Submit(t Ticket, req *iorequest.IORequest) error {
	i := t.VCPU()
	if err := t.Claim(); err != nil {
		return err
	}
	c.mu.Lock()
	if st := c.page.State(i); st != iorequest.StateFree && c.inflight[i] == nil {
		// Left over from a request ember gave up on (Cancel freed the slot)
		// that the Service VM went on with: its late PROCESSING or
		// COMPLETE is void, and must not shut this vCPU out for good.
		c.page.Reclaim(i)
		t.s.d.log.Warn("ioreq: took back a Service VM slot left from an abandoned request",
			"client", c.name, "vcpu", i, "state", st.String())
	}
	if err := c.page.Issue(i, req); err != nil {
		c.mu.Unlock()
		return fmt.Errorf("the Service VM's page: %w", err)
	}
	c.inflight[i] = &pendingRequest{t: t, req: *req}
	c.mu.Unlock()
	if err := c.upcall(i); err != nil {
		c.take(i, t)
		c.page.Reclaim(i)
		return fmt.Errorf("upcall: %w", err)
	}
	return nil
}

func (c *ServiceVMClient) take(i int, t Ticket) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if r := c.inflight[i]; r != nil && r.t == t {
		c.inflight[i] = nil
		return true
	}
	return false
}

// Finish is HC_NOTIFY_REQUEST_FINISH for vCPU vcpu of the User VM: the
// Service VM has set the request in its page COMPLETE. Finish loads that
// state (the acquire), copies the value of a read into ember's slot,
// completes ember's slot, waking the vCPU (rule (e)), and then frees the
// page's slot (rule (f) on the Service VM's side), in the seed's order. A call for a vCPU with nothing in flight
// returns ErrNoRequest; one for a request that is not yet COMPLETE returns a
// *TransitionError and leaves the request waiting, as ACRN does.
func (c *ServiceVMClient) Finish(vcpu int) error {
	if vcpu < 0 || vcpu >= iorequest.IORequestMax {
		return fmt.Errorf("%w: vCPU %d", ErrNoSlot, vcpu)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	r := c.inflight[vcpu]
	if r == nil {
		// A late completion of a request ember gave up on: free the slot
		// for the vCPU's next request, but there is nothing to finish.
		c.page.Release(vcpu)
		return fmt.Errorf("%w: vCPU %d", ErrNoRequest, vcpu)
	}
	if st := c.page.State(vcpu); st != iorequest.StateComplete {
		return &TransitionError{Slot: vcpu, From: iorequest.StateComplete, To: iorequest.StateFree, Actual: st}
	}
	v := c.page.ReadValue(vcpu, &r.req)
	c.inflight[vcpu] = nil
	if Dir(&r.req) == iorequest.DirRead {
		SetValue(&r.req, v)
		if err := r.t.Buffer().WriteBody(vcpu, &r.req); err != nil {
			c.page.Release(vcpu)
			return err
		}
	}
	// Rule (e) before (f): the vCPU resumes with the value, then the page's
	// slot is FREE. The vCPU's next request waits for c.mu, so it cannot
	// find the slot still COMPLETE.
	err := r.t.Complete()
	c.page.Release(vcpu)
	if err != nil {
		return fmt.Errorf("ioreq: finishing vCPU %d: %w", vcpu, err)
	}
	return nil
}

// Poll is Finish for a vCPU in completion-polling mode: a Service VM that
// sees completion_polling set in its page (GUEST_FLAG_IO_COMPLETION_POLLING)
// stores COMPLETE and does not call HC_NOTIFY_REQUEST_FINISH, so the vCPU
// looks at the page itself, as ACRN's does.
func (c *ServiceVMClient) Poll(t Ticket) {
	i := t.VCPU()
	if c.page.State(i) != iorequest.StateComplete {
		return
	}
	c.mu.Lock()
	r := c.inflight[i]
	c.mu.Unlock()
	if r != nil && r.t == t {
		c.Finish(i) // a NOTIFY_FINISH may have been first; then this one finds nothing
	}
}

// Cancel takes an abandoned request back from the Service VM's page.
func (c *ServiceVMClient) Cancel(t Ticket, _ error) {
	if c.take(t.VCPU(), t) {
		c.page.Reclaim(t.VCPU())
	}
}
