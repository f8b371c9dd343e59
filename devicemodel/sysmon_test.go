package devicemodel

import (
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"ember/acrn/iorequest"
	"ember/internal/sysmon"
	"ember/internal/threadstat"
	"ember/ioreq"
)

// TestFutexServeLeavesSysmonAlone: a device model serving with the futex
// hand-off, asked a thousand times a second, does not keep Go's sysmon
// polling. Its thread holds its P in FUTEX_WAIT; if its goroutine never went
// through the scheduler, sysmon would take the P at nearly every look and
// look again 20 µs later (package internal/sysmon).
//
// The requests come from a goroutine that makes system calls too (the kick,
// its own FUTEX_WAIT). In ember a vCPU's thread has a P of its own and goes
// through the scheduler now and then (hv/internal/vcputhread); so the
// requester is counted in the P budget as a vCPU is (sysmon.Budget), and
// yields after each request: a goroutine woken by its timer runs in the
// time slice of the one that woke it, and would be due for sysmon as well.
func TestFutexServeLeavesSysmonAlone(t *testing.T) {
	sysmon.Budget.Start(sysmon.VCPU)
	defer sysmon.Budget.End(sysmon.VCPU)
	log, _ := testLogger(t)
	d := newDispatcher(t, ioreq.Config{Timeout: 2 * time.Second, PollWindow: -1, Logger: log})
	s := startServer(t, d, ServerConfig{})
	c := dial(t, s, "sysmon")
	c.SetPollWindow(-1) // sleep at once: one FUTEX_WAIT a request
	c.SetFutexHandoff(true)
	must(t, c.Claim(ioreq.Range{Type: iorequest.ReqPortIO, Start: 0x500, End: 0x5ff}))
	must(t, c.Attach())
	serve(t, c, &regFile{regs: map[uint64]uint64{}})

	stop := make(chan struct{})
	done := make(chan error)
	var served atomic.Uint64
	go func() {
		for {
			select {
			case <-stop:
				done <- nil
				return
			case <-time.After(time.Millisecond):
			}
			w := ioreq.PIORequest(iorequest.DirWrite, 0x500, 4, 1)
			if _, err := d.Emulate(0, &w); err != nil {
				done <- err
				return
			}
			served.Add(1)
			runtime.Gosched()
		}
	}()
	time.Sleep(100 * time.Millisecond) // past sysmon's first looks
	before, err := threadstat.Sysmon()
	if err != nil {
		t.Fatal(err)
	}
	asked := served.Load()
	start := time.Now()
	time.Sleep(time.Second)
	after, err := threadstat.Sysmon()
	if err != nil {
		t.Fatal(err)
	}
	n, requests := after.Switches-before.Switches, served.Load()-asked
	close(stop)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	t.Logf("sysmon switched %d times in %v; %d requests", n, time.Since(start).Round(time.Millisecond), requests)
	if requests < 100 {
		t.Fatalf("only %d requests served", requests)
	}
	// About a hundred a second (sysmon's 10 ms back-off) on the build
	// machine with the yield; 2,200-2,400 without it.
	if n > requests {
		t.Errorf("sysmon switched %d times for %d requests: it keeps taking the device model's P", n, requests)
	}
}

// TestFutexServeAddsAPWhileItServes: the futex serve keeps its thread's P
// in FUTEX_WAIT, so the process has one more while it serves, and the
// count goes back when the connection closes: a back-end that served a
// thousand connections in turn does not keep a thousand Ps.
func TestFutexServeAddsAPWhileItServes(t *testing.T) {
	before := runtime.GOMAXPROCS(0)
	log, _ := testLogger(t)
	d := newDispatcher(t, ioreq.Config{Timeout: 2 * time.Second, PollWindow: -1, Logger: log})
	s := startServer(t, d, ServerConfig{})
	c := dial(t, s, "procs")
	c.SetFutexHandoff(true)
	must(t, c.Claim(ioreq.Range{Type: iorequest.ReqPortIO, Start: 0x500, End: 0x5ff}))
	must(t, c.Attach())
	done := make(chan error, 1)
	go func() { done <- c.Serve(&regFile{regs: map[uint64]uint64{}}) }()
	waitFor(t, func() bool { return runtime.GOMAXPROCS(0) == before+1 })
	c.Close()
	if err := <-done; err != nil {
		t.Fatalf("Conn.Serve: %v", err)
	}
	if got := runtime.GOMAXPROCS(0); got != before {
		t.Errorf("after Serve returned: GOMAXPROCS %d, want %d", got, before)
	}
}
