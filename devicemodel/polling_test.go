package devicemodel

import (
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"ember/acrn/iorequest"
	"ember/ioreq"
)

// kicks returns how many kicks ember has written to c's kick eventfd since
// the last call, without blocking.
func kicks(c *Conn) (uint64, error) {
	var b [8]byte
	n, err := unix.Read(int(c.kick.Fd()), b[:])
	if err == unix.EAGAIN {
		return 0, nil
	}
	if err != nil || n != 8 {
		return 0, fmt.Errorf("reading the kick eventfd: %d, %v", n, err)
	}
	return binary.LittleEndian.Uint64(b[:]), nil
}

// TestKickSkippedWhilePolling: ember kicks a device model for each request
// unless the model's client page says it is polling; a model that never
// asked for the page (an old one) is kicked every time.
func TestKickSkippedWhilePolling(t *testing.T) {
	for _, tt := range []struct {
		name      string
		page      bool // the model asked for the client page
		polling   uint32
		handoff   uint32 // the client page's futex hand-off word
		wantKicks uint64 // on the eventfd
		wantWord  uint32 // changes of the kick word
	}{
		{"no client page: kicked", false, 0, 0, 1, 0},
		{"client page, not polling: kicked", true, 0, 0, 1, 0},
		{"client page, polling: not kicked", true, 1, 0, 0, 0},
		{"futex hand-off, not polling: kick word changed", true, 0, 1, 0, 1},
		{"futex hand-off, polling: not kicked", true, 1, 1, 0, 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			d := newDispatcher(t, ioreq.Config{Timeout: 5 * time.Second})
			s := startServer(t, d, ServerConfig{})
			c := dial(t, s, "raw")
			if c.polling == nil {
				t.Fatal("ember offered no client page")
			}
			polling := c.polling
			if !tt.page { // forget it: as far as this test goes, ember made it for nothing
				polling = nil
			}
			must(t, c.Claim(ioreq.Range{Type: iorequest.ReqPortIO, Start: 0x500, End: 0x50f}))
			must(t, c.Attach())
			if polling != nil {
				polling.Store(tt.polling)
				c.handoff.Store(tt.handoff)
			}
			word := c.kickWord.Load()
			// The model's side, by hand: wait for the request in the buffer
			// and complete it. Nobody reads the kick eventfd meanwhile, and
			// ember kicks (or not) before the vCPU waits, so once Emulate
			// has returned the eventfd holds every kick ember wrote.
			done := make(chan struct{})
			go func() {
				defer close(done)
				for c.Buffer().State(2) != iorequest.StateProcessing {
					time.Sleep(10 * time.Microsecond)
				}
				req, _ := c.Buffer().Request(2)
				ioreq.SetValue(&req, 0x42)
				c.Buffer().WriteBody(2, &req)
				c.Buffer().Complete(2)
				if !c.Buffer().Polling(2) { // the vCPU stopped looking: tell it
					if tt.handoff == 1 {
						ioreq.FutexWake(c.Buffer().StateWord(2))
						return
					}
					var one [8]byte
					one[0] = 1
					unix.Write(c.done, one[:])
				}
			}()
			r := ioreq.PIORequest(iorequest.DirRead, 0x504, 4, 0)
			if v, err := d.Emulate(2, &r); err != nil || v != 0x42 {
				t.Fatalf("read %#x, %v", v, err)
			}
			<-done
			if n, err := kicks(c); err != nil || n != tt.wantKicks {
				t.Errorf("%d kicks (%v), want %d", n, err, tt.wantKicks)
			}
			if n := c.kickWord.Load() - word; n != tt.wantWord {
				t.Errorf("kick word changed %d times, want %d", n, tt.wantWord)
			}
		})
	}
}

// TestNoLostWakeUp: vCPUs make requests at random moments while the device
// model keeps moving between polling and sleeping, with every combination
// of poll windows on both sides. A kick ember skipped for a model that then
// slept without seeing the request would leave it waiting until the
// time-out (with one vCPU; with more, until another vCPU's request woke the
// model): every request must be served soon, with its own value. Run it
// with -race. Each case runs with the futex hand-off and with the eventfds.
func TestNoLostWakeUp(t *testing.T) {
	const perVCPU = 300
	for _, futex := range []bool{true, false} {
		t.Run(fmt.Sprintf("futex=%v", futex), func(t *testing.T) { testNoLostWakeUp(t, futex, perVCPU) })
	}
}

func testNoLostWakeUp(t *testing.T, futex bool, perVCPU int) {
	for _, tt := range []struct {
		name        string
		vcpus       int
		modelWindow time.Duration // Conn.SetPollWindow
		vcpuWindow  time.Duration // ioreq.Config.PollWindow
	}{
		{"one vCPU, model polls briefly, vCPU polls", 1, time.Microsecond, 0},
		{"one vCPU, model polls briefly, vCPU sleeps at once", 1, time.Microsecond, -1},
		{"one vCPU, model polls by default", 1, 0, 0},
		{"four vCPUs, model polls briefly", 4, time.Microsecond, 0},
		{"four vCPUs, model polls by default, vCPUs sleep at once", 4, 0, -1},
		{"four vCPUs, model never polls", 4, -1, 0},
		{"one vCPU, neither polls", 1, -1, -1},
	} {
		t.Run(tt.name, func(t *testing.T) {
			vcpus := tt.vcpus
			log, lb := testLogger(t)
			d := newDispatcher(t, ioreq.Config{Timeout: 2 * time.Second, PollWindow: tt.vcpuWindow, Logger: log})
			s := startServer(t, d, ServerConfig{})
			c := dial(t, s, "stress")
			c.SetPollWindow(tt.modelWindow)
			c.SetFutexHandoff(futex)
			must(t, c.Claim(ioreq.Range{Type: iorequest.ReqPortIO, Start: 0x500, End: 0x5ff}))
			must(t, c.Attach())
			serve(t, c, &regFile{regs: map[uint64]uint64{}})
			errs := make(chan error, vcpus) // one result from each vCPU
			for v := range vcpus {
				go func() {
					rng := rand.New(rand.NewPCG(uint64(v), 1))
					port := uint16(0x500 + 4*v)
					for i := range perVCPU {
						// Gaps from none to past the model's window, so that
						// requests come while it polls, as it stops, and
						// while it sleeps.
						if g := rng.IntN(4); g > 0 {
							time.Sleep(time.Duration(rng.IntN(100*g)) * time.Microsecond)
						}
						val := uint32(v<<16 | i)
						w := ioreq.PIORequest(iorequest.DirWrite, port, 4, val)
						r := ioreq.PIORequest(iorequest.DirRead, port, 4, 0)
						start := time.Now()
						if _, err := d.Emulate(v, &w); err != nil {
							errs <- err
							return
						}
						got, err := d.Emulate(v, &r)
						if err != nil || got != uint64(val) {
							errs <- fmt.Errorf("vCPU %d request %d: read %#x, %v; want %#x", v, i, got, err, val)
							return
						}
						if el := time.Since(start); el > time.Second {
							errs <- fmt.Errorf("vCPU %d request %d took %v: a wake-up was lost until something else came", v, i, el)
							return
						}
					}
					errs <- nil
				}()
			}
			for range vcpus {
				if err := <-errs; err != nil {
					t.Error(err)
				}
			}
			if t.Failed() {
				t.Logf("log:\n%s", lb.String())
			}
		})
	}
}
