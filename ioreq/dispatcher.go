package ioreq

import (
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"ember/acrn/iorequest"
	"ember/internal/wake"
)

// Errors a request can end with. The vCPU still gets a value (all ones for a
// read); the error says why, and Emulate has logged it.
var (
	// ErrTimeout: the client did not complete the request within
	// Config.Timeout. The slot was reclaimed.
	ErrTimeout = errors.New("ioreq: client did not complete the request in time")
	// ErrClientGone: the client went away (its socket closed, or its process
	// died) with the request in flight.
	ErrClientGone = errors.New("ioreq: client went away")
	// ErrNoSlot: the vCPU number has no slot in the buffer (0..15).
	ErrNoSlot = errors.New("ioreq: no request slot for this vCPU")
	// ErrAborted: the VM stopped (Dispatcher.Abort) while the request
	// waited for its client.
	ErrAborted = errors.New("ioreq: the VM stopped while the request was with its client")
)

// RequestError is the error of one failed request.
type RequestError struct {
	VCPU   int
	Client string
	Type   iorequest.ReqType
	Dir    iorequest.Direction
	Addr   uint64 // the routing address (Target)
	Size   uint64
	Err    error
}

func (e *RequestError) Error() string {
	return fmt.Sprintf("ioreq: vCPU %d: %v %v %#x size %d to %s: %v", e.VCPU, e.Type, e.Dir, e.Addr, e.Size, e.Client, e.Err)
}

// Unwrap returns the cause: ErrTimeout, ErrClientGone, a client's error.
func (e *RequestError) Unwrap() error { return e.Err }

// DefaultTimeout is how long a vCPU waits for a client when Config.Timeout
// is zero.
const DefaultTimeout = time.Second

// Config configures a Dispatcher.
type Config struct {
	// Timeout bounds how long a request may stay with a client; after it the
	// slot is reclaimed, the error logged, and a read returns all ones.
	// Zero means DefaultTimeout.
	Timeout time.Duration
	// Logger receives failed requests; nil means slog.Default().
	Logger *slog.Logger
	// PCIConf1 makes the dispatcher implement PCI configuration mechanism #1
	// itself: 4-byte accesses to CONFIG_ADDRESS (0xCF8) latch an address
	// without a request, and accesses to CONFIG_DATA (0xCFC-0xCFF) with the
	// enable bit set become ReqPCICfg requests for the latched function and
	// register, routed by PCIAddress. Without it those ports are plain PIO.
	PCIConf1 bool
	// PollWindow is the shortest time a vCPU that is not in
	// completion-polling mode looks at its slot before it sleeps; the window
	// adapts between it and MaxPollWindow to how long clients take (see
	// pollWindow). Zero means DefaultPollWindow, a negative value sleeps at
	// once.
	PollWindow time.Duration
	// Waiting, if set, is called by a vCPU's goroutine when it starts
	// (true) and stops (false) waiting for a client to complete its
	// request. hv uses it to count such a vCPU as stopped for Pause: it is
	// outside the guest and touches nothing of the VM until the client
	// answers, and the client may be the very party that is pausing it (a
	// Service VM, ACRN's pause does not wait on requests either).
	Waiting func(vcpu int, waiting bool)
}

// Dispatcher turns a vCPU's trapped access into a request in its slot, hands
// it to the client the Router picks, waits for completion and returns the
// value. One per VM.
type Dispatcher struct {
	buf     *Buffer
	router  *Router
	timeout time.Duration
	// poll is how long a sleeping-mode wait looks at the slot before it
	// sleeps (Config.PollWindow, adapted).
	poll  *PollWindow
	log   *slog.Logger
	conf1 bool
	latch atomic.Uint32 // CONFIG_ADDRESS
	// waiting is Config.Waiting, or a function that does nothing.
	waiting func(vcpu int, waiting bool)
	// aborted is set by Abort, until Reopen: a request that would wait for
	// its client fails with ErrAborted instead.
	aborted atomic.Bool
	slots   [iorequest.IORequestMax]slot
}

// slot is the dispatcher's per-vCPU bookkeeping for one buffer slot.
type slot struct {
	d    *Dispatcher
	i    int
	seq  atomic.Uint64 // number of the request in flight (or the last one)
	wake wake.Signal   // "look at the slot again"
	// futex is set while the vCPU sleeps in FUTEX_WAIT on the slot's state
	// word (the futex hand-off): kick then wakes it there too.
	futex atomic.Bool

	mu      sync.Mutex
	failSeq uint64
	failErr error

	// Owned by the vCPU goroutine.
	reclaimed bool
}

// NewDispatcher returns a dispatcher over buf routing with r. buf's slots
// must all be FREE.
func NewDispatcher(buf *Buffer, r *Router, cfg Config) *Dispatcher {
	if cfg.PollWindow == 0 {
		cfg.PollWindow = DefaultPollWindow
	}
	d := &Dispatcher{buf: buf, router: r, timeout: cfg.Timeout, log: cfg.Logger, conf1: cfg.PCIConf1,
		poll: NewPollWindow(cfg.PollWindow), waiting: cfg.Waiting}
	if d.waiting == nil {
		d.waiting = func(int, bool) {}
	}
	if d.timeout <= 0 {
		d.timeout = DefaultTimeout
	}
	if d.log == nil {
		d.log = slog.Default()
	}
	for i := range d.slots {
		d.slots[i] = slot{d: d, i: i, wake: wake.NewSignal()}
	}
	return d
}

// Buffer returns the request buffer.
func (d *Dispatcher) Buffer() *Buffer { return d.buf }

// Router returns the router.
func (d *Dispatcher) Router() *Router { return d.router }

// Logger returns where the dispatcher logs failed requests, for the servers
// built on it to log alongside.
func (d *Dispatcher) Logger() *slog.Logger { return d.log }

// Timeout returns the request timeout in force.
func (d *Dispatcher) Timeout() time.Duration { return d.timeout }

// Notify wakes vCPU vcpu to look at its slot again: the Service VM's
// HC_NOTIFY_REQUEST_FINISH and a device model's notify-request-finish end
// here. A notify for a slot that is not COMPLETE changes nothing.
func (d *Dispatcher) Notify(vcpu int) {
	if vcpu >= 0 && vcpu < len(d.slots) {
		d.slots[vcpu].kick()
	}
}

// Abort fails every request that is waiting for its client, and every one
// that would wait from now until Reopen, with ErrAborted: the VM is stopping,
// and a vCPU must not sit out a client's time-out first (a Service VM that
// is destroying the VM will never answer). Clients hear of it as of a
// time-out (Canceler).
func (d *Dispatcher) Abort() {
	d.aborted.Store(true)
	for i := range d.slots {
		s := &d.slots[i]
		s.fail(s.seq.Load(), ErrAborted)
	}
}

// Reopen undoes Abort, for the VM's next run.
func (d *Dispatcher) Reopen() { d.aborted.Store(false) }

// failure returns why slot s's request seq has failed, or nil.
func (d *Dispatcher) failure(s *slot, seq uint64) error {
	if d.aborted.Load() {
		return ErrAborted
	}
	return s.failure(seq)
}

func (s *slot) kick() {
	s.wake.Send() // merges with one pending: either makes the vCPU re-check everything
	if s.futex.Load() {
		FutexWake(s.d.buf.StateWord(s.i))
	}
}

func (s *slot) fail(seq uint64, err error) {
	s.mu.Lock()
	s.failSeq, s.failErr = seq, err
	s.mu.Unlock()
	s.kick()
}

func (s *slot) failure(seq uint64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.failSeq == seq {
		return s.failErr
	}
	return nil
}

// Ticket is a client's handle on one request: the slot it is in and the
// request's number, so that a late completion or failure of an abandoned
// request cannot touch the next one.
type Ticket struct {
	s   *slot
	seq uint64
}

// VCPU returns the requesting vCPU, which is also the slot number.
func (t Ticket) VCPU() int { return t.s.i }

// Seq returns the request's number (counting from 1, per vCPU).
func (t Ticket) Seq() uint64 { return t.seq }

// Buffer returns the buffer the request is in.
func (t Ticket) Buffer() *Buffer { return t.s.d.buf }

// Current reports whether the vCPU is still waiting for this request.
func (t Ticket) Current() bool { return t.s.seq.Load() == t.seq }

// Claim moves the slot PENDING -> PROCESSING (ordering rule (b)); see
// Buffer.Claim.
func (t Ticket) Claim() error { return t.s.d.buf.Claim(t.s.i) }

// Complete moves the slot PROCESSING -> COMPLETE and wakes the vCPU.
func (t Ticket) Complete() error {
	if !t.Current() {
		return fmt.Errorf("ioreq: vCPU %d: request %d was abandoned", t.s.i, t.seq)
	}
	if err := t.s.d.buf.Complete(t.s.i); err != nil {
		return err
	}
	t.s.kick()
	return nil
}

// Notify wakes the vCPU to look at its slot (someone else stored COMPLETE).
func (t Ticket) Notify() {
	if t.Current() {
		t.s.kick()
	}
}

// Fail ends the request with err: the vCPU reclaims the slot, logs err and
// a read returns all ones.
func (t Ticket) Fail(err error) { t.s.fail(t.seq, err) }

// serve runs a synchronous handler in the life cycle: claim (b), handle (c,
// d) on the vCPU's own copy, write the body back while PROCESSING, and store
// COMPLETE as the last operation.
func (t Ticket) serve(req *iorequest.IORequest, handle func(*iorequest.IORequest)) error {
	if err := t.Claim(); err != nil {
		return err
	}
	handle(req)
	if err := t.s.d.buf.WriteBody(t.s.i, req); err != nil {
		return err
	}
	return t.s.d.buf.Complete(t.s.i)
}

// AllOnes is what a failed read of size bytes returns.
func AllOnes(size uint64) uint64 { return sizeMask(size) }

// Emulate performs one guest access for vCPU vcpu and returns the value the
// guest sees: the client's result of a read, 0 for a write. It is what a
// vCPU's exit path calls for every PIO, MMIO, PCI-config and write-protect
// exit; req is the access (PIORequest, MMIORequest, WPRequest, or a PCICFG
// request), with CompletionPolling set if the VM was created with
// IO_COMPLETION_POLLING.
//
// The request goes through the vCPU's slot: Issue (FREE -> PENDING), the
// client Claims it (PROCESSING) and Completes it (COMPLETE), Emulate copies
// the value and Releases the slot (FREE). While the client has it, the vCPU
// polls the state (CompletionPolling) or sleeps until notified, never longer
// than the timeout.
//
// On failure (timeout, a client gone, a refused request) the error is logged
// here and also returned, a *RequestError; the value returned is still the one
// to give the guest (all ones for a read), so the caller may ignore err and
// the VM goes on. Emulate must not be called for one vCPU from two goroutines
// at once.
func (d *Dispatcher) Emulate(vcpu int, req *iorequest.IORequest) (uint64, error) {
	if vcpu < 0 || vcpu >= len(d.slots) {
		return AllOnes(accessSize(req)), fmt.Errorf("%w: vCPU %d", ErrNoSlot, vcpu)
	}
	local := *req
	local.Processed = iorequest.StatePending
	if err := local.Validate(); err != nil {
		// An access no request can describe (a dword at port 0xffff):
		// refused, logged, and a read gets all ones, as any failure.
		return d.failed(&d.slots[vcpu], nil, &local, err)
	}
	if d.conf1 && local.Type == iorequest.ReqPortIO {
		p := local.PIO()
		if v, done := d.pciConf1(&local, p); done {
			return v, nil
		}
	}
	s := &d.slots[vcpu]
	if s.reclaimed {
		// The last request was taken back from a client that may still
		// write to the slot; whatever it left there is void.
		if st := d.buf.Reclaim(vcpu); st != iorequest.StateFree {
			d.log.Warn("ioreq: reclaimed slot changed after timeout", "vcpu", vcpu, "state", st.String())
		}
		s.reclaimed = false
	}
	select { // drop a stale wake-up of an earlier request
	case <-s.wake:
	default:
	}
	c := d.router.Route(&local)
	seq := s.seq.Add(1)
	if err := d.buf.Issue(vcpu, &local); err != nil {
		return d.failed(s, c, &local, err)
	}
	t := Ticket{s, seq}
	// A vCPU that will look at its slot for a while says so in the slot, so
	// a device model that completes meanwhile need not signal (SetPolling).
	// The client's own copy keeps the VM's mode: a Service VM honours that.
	if local.CompletionPolling == 0 && d.poll.Get() > 0 {
		d.buf.SetPolling(vcpu, true)
	}
	if err := c.Submit(t, &local); err != nil {
		return d.abandon(t, c, &local, err)
	}
	if d.buf.State(vcpu) != iorequest.StateComplete {
		d.waiting(vcpu, true)
		err := d.wait(s, t, c, local.CompletionPolling != 0)
		d.waiting(vcpu, false)
		if err != nil {
			return d.abandon(t, c, &local, err)
		}
	}
	// Rule (e) then (f): take the value the client released with COMPLETE,
	// then hand the slot back.
	v := d.buf.ReadValue(vcpu, &local)
	if err := d.buf.Release(vcpu); err != nil {
		d.buf.Reclaim(vcpu)
		return d.failed(s, c, &local, err)
	}
	if Dir(&local) == iorequest.DirWrite {
		return 0, nil
	}
	return v, nil
}

// wait blocks until slot s is COMPLETE, the request t fails, or the
// timeout. c is the client that has it.
func (d *Dispatcher) wait(s *slot, t Ticket, c Client, polling bool) error {
	seq := t.seq
	if polling {
		// IO_COMPLETION_POLLING: spin on the state, yielding the processor
		// between looks so the client (perhaps on this very CPU) can run.
		// A client whose side of the request lives elsewhere (a Service
		// VM's page) is asked to look there: it will not notify.
		p, _ := c.(Poller)
		deadline := time.Now().Add(d.timeout)
		for n := 0; ; n++ {
			if d.buf.State(s.i) == iorequest.StateComplete {
				return nil
			}
			if p != nil {
				p.Poll(t)
			}
			if n&63 == 63 {
				if err := d.failure(s, seq); err != nil {
					return err
				}
				if time.Now().After(deadline) {
					return ErrTimeout
				}
			}
			runtime.Gosched()
		}
	}
	// Before sleeping, look at the state for a short while, as KVM's halt
	// polling does: a device model on another CPU usually answers within
	// microseconds, while a sleep costs two cross-thread wake-ups (its
	// eventfd's reader, then this vCPU) that take tens of microseconds.
	// An in-process client has completed already, so the first look ends it.
	//
	// The look yields only now and then, and not at all for a client in
	// another process: a vCPU goroutine is locked to its thread, and
	// runtime.Gosched on a locked thread hands the thread over and back
	// (two futex wake-ups) and wakes an idle P's thread besides, which costs
	// more than most waits, and where CPUs are few takes one from the device
	// model this vCPU is waiting for; but an in-process client's goroutine
	// may need this processor to answer.
	fw, _ := c.(FutexWaker)
	if window := d.poll.Get(); window > 0 && (fw == nil || !fw.Woken(t)) {
		_, remote := c.(Remote)
		start := time.Now()
		for n := 0; ; n++ {
			if d.buf.State(s.i) == iorequest.StateComplete {
				return nil
			}
			if n&63 == 63 {
				if time.Since(start) > window {
					break
				}
				if !remote {
					runtime.Gosched()
				}
			}
		}
	}
	// From here the vCPU sleeps: a device model must signal. The state is
	// looked at again after the store (the loop's first check), so a
	// completion that saw the flag still set is not missed.
	d.buf.SetPolling(s.i, false)
	asleep := time.Now()
	if fw != nil {
		return d.sleepOnFutex(s, seq, asleep)
	}
	timer := time.NewTimer(d.timeout)
	defer timer.Stop()
	for {
		// Every notifier stores its state or failure before kicking, and
		// the kick stays in the channel, so checking before each sleep
		// loses no wake-up.
		if d.buf.State(s.i) == iorequest.StateComplete {
			d.poll.Slept(time.Since(asleep))
			return nil
		}
		if err := d.failure(s, seq); err != nil {
			return err
		}
		select {
		case <-s.wake:
		case <-timer.C:
			if d.buf.State(s.i) == iorequest.StateComplete {
				return nil
			}
			return ErrTimeout
		}
	}
}

// futexSlice bounds one FUTEX_WAIT of a vCPU: a failure or an abort that
// kicks the slot between the vCPU's last look and its FUTEX_WAIT wakes
// nobody, and is seen at the end of the slice.
var futexSlice = 10 * time.Millisecond // a variable for tests

// sleepOnFutex is wait's sleep for a client that wakes by futex: the vCPU's
// thread blocks in FUTEX_WAIT on its slot's state word until the state
// changes (the client's COMPLETE, and its FUTEX_WAKE), a kick (a failure,
// an abort, a NOTIFY_FINISH), or the timeout. No other thread of ember runs
// on the way: where the device model's thread shares this CPU, the two take
// turns on it with two context switches per request.
func (d *Dispatcher) sleepOnFutex(s *slot, seq uint64, asleep time.Time) error {
	s.futex.Store(true)
	defer s.futex.Store(false)
	w := d.buf.StateWord(s.i)
	deadline := asleep.Add(d.timeout)
	for {
		// The state is loaded after SetPolling(false) and before the
		// wait, which returns at once if the word has changed since: a
		// COMPLETE stored in between is not slept through.
		st := w.Load()
		if iorequest.State(st) == iorequest.StateComplete {
			d.poll.Slept(time.Since(asleep))
			return nil
		}
		if err := d.failure(s, seq); err != nil {
			return err
		}
		left := time.Until(deadline)
		if left <= 0 {
			return ErrTimeout
		}
		FutexWait(w, st, min(left, futexSlice))
	}
}

// abandon takes the slot back from a client that failed the request.
func (d *Dispatcher) abandon(t Ticket, c Client, req *iorequest.IORequest, cause error) (uint64, error) {
	s := t.s
	s.seq.Add(1) // the ticket is no longer current: late completions are ignored
	d.buf.Reclaim(s.i)
	s.reclaimed = true
	if cc, ok := c.(Canceler); ok {
		cc.Cancel(t, cause)
	}
	return d.failed(s, c, req, cause)
}

func (d *Dispatcher) failed(s *slot, c Client, req *iorequest.IORequest, cause error) (uint64, error) {
	addr, size := Target(req)
	name := "?"
	if c != nil {
		name = c.Name()
	}
	err := &RequestError{VCPU: s.i, Client: name, Type: req.Type, Dir: Dir(req), Addr: addr, Size: size, Err: cause}
	d.log.Error("ioreq: request failed", "vcpu", s.i, "client", name, "type", req.Type.String(),
		"dir", Dir(req).String(), "addr", addr, "size", size, "err", cause)
	if Dir(req) == iorequest.DirWrite {
		return 0, err
	}
	return AllOnes(size), err
}
