package devicemodel

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"ember/acrn/iorequest"
	"ember/internal/gobuild"
	"ember/ioreq"
)

var (
	buildOnce sync.Once
	dmPath    string
	dmErr     error
	dmDir     string
)

// buildDeviceModel builds examples/devicemodel once per test binary.
func buildDeviceModel(tb testing.TB) string {
	tb.Helper()
	buildOnce.Do(func() {
		dmDir, dmErr = os.MkdirTemp("", "ioreq-dm")
		if dmErr != nil {
			return
		}
		dmPath, dmErr = gobuild.Build(context.Background(), dmDir, "ember/examples/devicemodel")
	})
	if dmErr != nil {
		tb.Fatal(dmErr)
	}
	return dmPath
}

func TestMain(m *testing.M) {
	code := m.Run()
	if dmDir != "" {
		os.RemoveAll(dmDir)
	}
	os.Exit(code)
}

// deviceModel is a running examples/devicemodel process.
type deviceModel struct {
	cmd   *exec.Cmd
	lines <-chan string
}

func startDeviceModel(tb testing.TB, s *Server, args ...string) *deviceModel {
	tb.Helper()
	cmd := exec.Command(buildDeviceModel(tb), append([]string{"-socket", s.Addr()}, args...)...)
	r, w, err := os.Pipe()
	if err != nil {
		tb.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = w, os.Stderr
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	w.Close()
	dm := &deviceModel{cmd: cmd, lines: lines(r)}
	tb.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		r.Close()
	})
	select {
	case l := <-dm.lines:
		if !strings.HasPrefix(l, "ready") {
			tb.Fatalf("device model said %q", l)
		}
	case <-time.After(10 * time.Second):
		tb.Fatal("device model not ready in 10s")
	}
	return dm
}

// TestExternalDeviceModel: the example device model, a separate process,
// serves a guest's PIO and MMIO accesses: reads return its register file's
// pattern or the value written, writes are recorded on its stdout.
func TestExternalDeviceModel(t *testing.T) {
	d := newDispatcher(t, ioreq.Config{})
	s := startServer(t, d, ServerConfig{})
	dm := startDeviceModel(t, s)
	for _, tc := range []struct {
		name string
		req  iorequest.IORequest
		want uint64
		line string // what the device model prints, for writes
	}{
		{"PIO read 4 bytes from 0x504, never written", ioreq.PIORequest(iorequest.DirRead, 0x504, 4, 0), 0xc0de0504, ""},
		{"PIO read 2 bytes from 0x50e", ioreq.PIORequest(iorequest.DirRead, 0x50e, 2, 0), 0x050e, ""},
		{"PIO write 4 bytes to 0x508", ioreq.PIORequest(iorequest.DirWrite, 0x508, 4, 0xdeadbeef), 0, "write PORTIO 0x508 size 4 value 0xdeadbeef"},
		{"PIO read back 0x508", ioreq.PIORequest(iorequest.DirRead, 0x508, 4, 0), 0xdeadbeef, ""},
		{"MMIO read 8 bytes from 0xd0000040", ioreq.MMIORequest(iorequest.DirRead, 0xd0000040, 8, 0), 0xfeed000000000040, ""},
		{"MMIO write 8 bytes to 0xd0000ff8", ioreq.MMIORequest(iorequest.DirWrite, 0xd0000ff8, 8, 0x0123456789abcdef), 0, "write MMIO 0xd0000ff8 size 8 value 0x123456789abcdef"},
		{"MMIO read back 0xd0000ff8", ioreq.MMIORequest(iorequest.DirRead, 0xd0000ff8, 8, 0), 0x0123456789abcdef, ""},
		{"PIO read outside its range is unclaimed", ioreq.PIORequest(iorequest.DirRead, 0x510, 1, 0), 0xff, ""},
	} {
		v, err := d.Emulate(1, &tc.req)
		if err != nil || v != tc.want {
			t.Errorf("%s: %#x, %v; want %#x", tc.name, v, err, tc.want)
		}
		if tc.line != "" {
			if l := expectLine(t, dm.lines, "write"); l != tc.line {
				t.Errorf("%s: device model recorded %q, want %q", tc.name, l, tc.line)
			}
		}
	}
}

// TestExternalDeviceModelKilledMidRequest: SIGKILL while a request is with
// the device model; the vCPU gets all ones and ErrClientGone at once (not
// after the timeout), the error is logged, the ranges are released, and the
// VM's other clients go on.
func TestExternalDeviceModelKilledMidRequest(t *testing.T) {
	log, lb := testLogger(t)
	d := newDispatcher(t, ioreq.Config{Timeout: 10 * time.Second, Logger: log})
	must(t, d.Router().Claim(ioreq.Range{Type: iorequest.ReqPortIO, Start: 0x70, End: 0x71}, ioreq.InProcess("rtc", &recorder{})))
	s := startServer(t, d, ServerConfig{})
	dm := startDeviceModel(t, s, "-stall", "0x50c")

	type result struct {
		v   uint64
		err error
		el  time.Duration
	}
	got := make(chan result)
	go func() {
		r := ioreq.PIORequest(iorequest.DirRead, 0x50c, 4, 0)
		start := time.Now()
		v, err := d.Emulate(2, &r)
		got <- result{v, err, time.Since(start)}
	}()
	expectLine(t, dm.lines, "stall") // the request is in the device model's hands
	if st := d.Buffer().State(2); st != iorequest.StateProcessing {
		t.Errorf("slot is %v while the device model holds it", st)
	}
	dm.cmd.Process.Signal(syscall.SIGKILL)
	res := <-got
	if res.v != 0xffffffff || !errors.Is(res.err, ioreq.ErrClientGone) {
		t.Fatalf("got %#x, %v; want 0xffffffff and ioreq.ErrClientGone", res.v, res.err)
	}
	if res.el > 5*time.Second {
		t.Errorf("took %v: the death was not noticed before the timeout", res.el)
	}
	t.Logf("killed device model: vCPU resumed after %v with %v", res.el, res.err)
	waitFor(t, func() bool { return s.Clients() == 0 }) // cleanup has finished
	if l := lb.String(); !strings.Contains(l, "client went away") || !strings.Contains(l, "device model gone") || strings.Contains(l, "stopped answering") {
		t.Errorf("log does not report the death as such:\n%s", l)
	}
	r := ioreq.PIORequest(iorequest.DirRead, 0x504, 4, 0)
	if v, err := d.Emulate(2, &r); v != 0xffffffff || err != nil {
		t.Errorf("its range after death: %#x, %v; want unclaimed all ones", v, err)
	}
	r = ioreq.PIORequest(iorequest.DirRead, 0x71, 1, 0)
	if v, err := d.Emulate(2, &r); v != 0x71 || err != nil {
		t.Errorf("another client after the death: %#x, %v", v, err)
	}
	// A new device model can take the ranges over.
	startDeviceModel(t, s)
	r = ioreq.PIORequest(iorequest.DirRead, 0x504, 4, 0)
	if v, err := d.Emulate(2, &r); v != 0xc0de0504 || err != nil {
		t.Errorf("the new device model: %#x, %v", v, err)
	}
}

// TestExternalDeviceModelStopsAnswering: a device model that holds a request
// past the timeout costs that request (all ones, ErrTimeout, logged) and is
// disconnected.
func TestExternalDeviceModelStopsAnswering(t *testing.T) {
	log, lb := testLogger(t)
	d := newDispatcher(t, ioreq.Config{Timeout: 200 * time.Millisecond, Logger: log})
	s := startServer(t, d, ServerConfig{})
	dm := startDeviceModel(t, s, "-stall", "0x50f")
	r := ioreq.PIORequest(iorequest.DirRead, 0x50f, 1, 0)
	start := time.Now()
	v, err := d.Emulate(0, &r)
	if v != 0xff || !errors.Is(err, ioreq.ErrTimeout) {
		t.Fatalf("%#x, %v; want 0xff, ioreq.ErrTimeout", v, err)
	}
	if el := time.Since(start); el < 200*time.Millisecond || el > 2*time.Second {
		t.Errorf("timed out after %v", el)
	}
	expectLine(t, dm.lines, "stall")
	waitFor(t, func() bool { return s.Clients() == 0 })
	if !strings.Contains(lb.String(), "stopped answering") {
		t.Errorf("log:\n%s", lb.String())
	}
	r = ioreq.PIORequest(iorequest.DirRead, 0x500, 1, 0)
	if v, err := d.Emulate(0, &r); v != 0xff || err != nil {
		t.Errorf("after disconnect: %#x, %v", v, err)
	}
}

// BenchmarkRoundTrip is the cost of one emulated PIO read through the
// dispatcher for each kind of client, next to the floor an out-of-process
// client cannot beat here: an eventfd ping-pong between two goroutines.
func BenchmarkRoundTrip(b *testing.B) {
	read := ioreq.PIORequest(iorequest.DirRead, 0x504, 4, 0)
	run := func(b *testing.B, d *ioreq.Dispatcher, req iorequest.IORequest) {
		b.Helper()
		if _, err := d.Emulate(0, &req); err != nil {
			b.Fatal(err)
		}
		b.ResetTimer()
		for b.Loop() {
			d.Emulate(0, &req)
		}
	}
	newD := func(b *testing.B) *ioreq.Dispatcher {
		buf, err := ioreq.NewBuffer()
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { buf.Close() })
		return ioreq.NewDispatcher(buf, ioreq.NewRouter(), ioreq.Config{Timeout: 10 * time.Second, Logger: slog.New(slog.DiscardHandler)})
	}
	b.Run("inprocess", func(b *testing.B) {
		d := newD(b)
		d.Router().Claim(ioreq.Range{Type: iorequest.ReqPortIO, Start: 0x500, End: 0x50f}, ioreq.InProcess("regs", &regFile{regs: map[uint64]uint64{}}))
		run(b, d, read)
	})
	b.Run("unclaimed", func(b *testing.B) { run(b, newD(b), read) })
	for _, polling := range []uint32{0, 1} {
		name := "outofprocess"
		if polling != 0 {
			name += "-polling"
		}
		b.Run(name, func(b *testing.B) {
			d := newD(b)
			s, err := Listen(filepath.Join(b.TempDir(), "s"), d, ServerConfig{Logger: quietLogger})
			if err != nil {
				b.Fatal(err)
			}
			go s.Serve()
			b.Cleanup(func() { s.Close() })
			startDeviceModel(b, s)
			req := read
			req.CompletionPolling = polling
			run(b, d, req)
		})
	}
	b.Run("servicevm-goroutine", func(b *testing.B) {
		d := newD(b)
		pb, _ := ioreq.NewBufferBytes(make([]byte, iorequest.RequestBufferSize))
		pb.Reset()
		up := make(chan int, 1)
		client := ioreq.NewServiceVMClient("client", pb, func(v int) error { up <- v; return nil })
		d.Router().SetDefault(client)
		done := make(chan struct{})
		go func() {
			for {
				select {
				case <-done:
					return
				case i := <-up:
					pb.Claim(i)
					req, _ := pb.Request(i)
					ioreq.SetValue(&req, 1)
					pb.WriteBody(i, &req)
					pb.Complete(i)
					client.Finish(i)
				}
			}
		}()
		b.Cleanup(func() { close(done) })
		run(b, d, read)
	})
	b.Run("eventfd-pingpong-floor", func(b *testing.B) {
		ping, pong := newEventPair(b), newEventPair(b)
		go func() {
			var x [8]byte
			for {
				if _, err := ping.r.Read(x[:]); err != nil {
					return
				}
				pong.signal()
			}
		}()
		var x [8]byte
		for b.Loop() {
			ping.signal()
			pong.r.Read(x[:])
		}
	})
}
