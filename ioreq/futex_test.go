package ioreq

import (
	"errors"
	"testing"
	"time"

	"ember/acrn/iorequest"
)

// futexClient is a client in "another process" that uses the futex
// hand-off: it claims each request and hands the ticket to the test, which
// ends it the way the case says.
type futexClient struct{ tickets chan Ticket }

func (c futexClient) Name() string { return "futex" }
func (c futexClient) Remote()      {}
func (c futexClient) Woken(Ticket) bool {
	return true
}
func (c futexClient) Submit(t Ticket, _ *iorequest.IORequest) error {
	if err := t.Claim(); err != nil {
		return err
	}
	c.tickets <- t
	return nil
}

// TestFutexSleepEnds: a vCPU asleep in FUTEX_WAIT on its slot's state word
// is woken promptly (well within the wait's slice) by each way a request
// ends: the client's COMPLETE and FUTEX_WAKE, a notification (Ticket.Notify
// after a COMPLETE stored by someone else), a failure, and an abort.
func TestFutexSleepEnds(t *testing.T) {
	const delay = 20 * time.Millisecond // the vCPU is asleep by then
	for _, tt := range []struct {
		name    string
		end     func(d *Dispatcher, t Ticket)
		want    uint64
		wantErr error
	}{
		{"complete and FUTEX_WAKE", func(d *Dispatcher, t Ticket) {
			req, _ := d.buf.Request(t.VCPU())
			SetValue(&req, 0x5a)
			d.buf.WriteBody(t.VCPU(), &req)
			d.buf.Complete(t.VCPU())
			FutexWake(d.buf.StateWord(t.VCPU()))
		}, 0x5a, nil},
		{"complete without a wake, then Notify", func(d *Dispatcher, t Ticket) {
			req, _ := d.buf.Request(t.VCPU())
			SetValue(&req, 0x77)
			d.buf.WriteBody(t.VCPU(), &req)
			// COMPLETE changes the word the vCPU waits on: it wakes by
			// itself if it had not slept yet; Notify covers the rest.
			d.buf.Complete(t.VCPU())
			t.Notify()
		}, 0x77, nil},
		{"failure", func(_ *Dispatcher, t Ticket) { t.Fail(ErrClientGone) }, 0xff, ErrClientGone},
		{"abort", func(d *Dispatcher, _ Ticket) { d.Abort() }, 0xff, ErrAborted},
	} {
		t.Run(tt.name, func(t *testing.T) {
			// A sleep far longer than any scheduling delay on a loaded
			// machine: a missed wake-up shows as a 5 s wait, and a slow
			// but real one passes.
			defer func(old time.Duration) { futexSlice = old }(futexSlice)
			futexSlice = 5 * time.Second
			d := newDispatcher(t, Config{Timeout: 10 * time.Second, PollWindow: -1})
			c := futexClient{make(chan Ticket, 1)}
			if err := d.Router().Claim(Range{Type: iorequest.ReqPortIO, Start: 0x600, End: 0x600}, c); err != nil {
				t.Fatal(err)
			}
			ended := make(chan struct{})
			defer func() { <-ended }() // before the buffer is closed
			go func() {
				defer close(ended)
				tk := <-c.tickets
				time.Sleep(delay)
				tt.end(d, tk)
			}()
			req := PIORequest(iorequest.DirRead, 0x600, 1, 0)
			start := time.Now()
			v, err := d.Emulate(3, &req)
			if el := time.Since(start); el > delay+time.Second {
				t.Errorf("woken after %v: not by the wake-up, by the end of the %v sleep", el, futexSlice)
			}
			if v != tt.want || !errors.Is(err, tt.wantErr) {
				t.Errorf("Emulate = %#x, %v; want %#x, %v", v, err, tt.want, tt.wantErr)
			}
		})
	}
}
