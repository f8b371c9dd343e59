package ioreq

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"ember/acrn"
	"ember/acrn/iorequest"
	"ember/internal/testlog"
)

// testLogger is testlog.New for a test: a logger whose output it can read.
func testLogger(t *testing.T) (*slog.Logger, *testlog.Buffer) {
	t.Helper()
	return testlog.New()
}

func newDispatcher(t *testing.T, cfg Config) *Dispatcher {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger, _ = testLogger(t)
	}
	return NewDispatcher(newTestBuffer(t), NewRouter(), cfg)
}

// access is what a client saw.
type access struct {
	Type iorequest.ReqType
	Dir  iorequest.Direction
	Addr uint64 // Target
	Size uint64
	Val  uint64
	Bus  uint32
	Dev  uint32
	Fn   uint32
	Reg  uint32
}

// recorder is an in-process device that logs every access and answers reads
// with a value derived from the address.
type recorder struct {
	mu   sync.Mutex
	seen []access
}

func (r *recorder) HandleIORequest(req *iorequest.IORequest) {
	addr, size := Target(req)
	a := access{Type: req.Type, Dir: Dir(req), Addr: addr, Size: size, Val: Value(req)}
	if req.Type == iorequest.ReqPCICfg {
		p := req.PCI()
		a.Bus, a.Dev, a.Fn, a.Reg = p.Bus, p.Dev, p.Func, p.Reg
	}
	r.mu.Lock()
	r.seen = append(r.seen, a)
	r.mu.Unlock()
	if a.Dir == iorequest.DirRead {
		SetValue(req, 0xa5a5a5a5_00000000|addr)
	}
}

// TestEmulateReachesTheRightClient plays a tiny guest's accesses through the
// dispatcher: PIO, MMIO, PCI configuration through 0xcf8/0xcfc, and a write to
// a write-protected page each reach the client that claimed them with the
// right direction, size, address and value, and reads return its value.
func TestEmulateReachesTheRightClient(t *testing.T) {
	d := newDispatcher(t, Config{PCIConf1: true})
	pio, mmio, pci, wp := &recorder{}, &recorder{}, &recorder{}, &recorder{}
	r := d.Router()
	must(t, r.Claim(Range{iorequest.ReqPortIO, 0x500, 0x50f}, InProcess("pio", pio)))
	must(t, r.Claim(Range{iorequest.ReqMMIO, 0xd0000000, 0xd0000fff}, InProcess("mmio", mmio)))
	must(t, r.Claim(Range{iorequest.ReqPCICfg, PCIAddress(0, 3, 1, 0), PCIAddress(0, 3, 1, 0xfff)}, InProcess("pci", pci)))
	must(t, r.Claim(Range{iorequest.ReqWP, 0x200000, 0x200fff}, InProcess("wp", wp)))

	type step struct {
		name string
		req  iorequest.IORequest
		want uint64 // what the guest sees
		dev  *recorder
		seen access
	}
	steps := []step{
		{"PIO write 4 bytes to 0x504", PIORequest(iorequest.DirWrite, 0x504, 4, 0x11223344), 0, pio,
			access{Type: iorequest.ReqPortIO, Dir: iorequest.DirWrite, Addr: 0x504, Size: 4, Val: 0x11223344}},
		{"PIO read 2 bytes from 0x506", PIORequest(iorequest.DirRead, 0x506, 2, 0), 0x0506, pio,
			access{Type: iorequest.ReqPortIO, Dir: iorequest.DirRead, Addr: 0x506, Size: 2}},
		{"PIO read 1 byte from 0x50f", PIORequest(iorequest.DirRead, 0x50f, 1, 0), 0x0f, pio,
			access{Type: iorequest.ReqPortIO, Dir: iorequest.DirRead, Addr: 0x50f, Size: 1}},
		{"MMIO write 8 bytes to 0xd0000010", MMIORequest(iorequest.DirWrite, 0xd0000010, 8, 0x0102030405060708), 0, mmio,
			access{Type: iorequest.ReqMMIO, Dir: iorequest.DirWrite, Addr: 0xd0000010, Size: 8, Val: 0x0102030405060708}},
		{"MMIO read 8 bytes from 0xd0000ff8", MMIORequest(iorequest.DirRead, 0xd0000ff8, 8, 0), 0xa5a5a5a5_d0000ff8, mmio,
			access{Type: iorequest.ReqMMIO, Dir: iorequest.DirRead, Addr: 0xd0000ff8, Size: 8}},
		{"MMIO read 4 bytes from 0xd0000020", MMIORequest(iorequest.DirRead, 0xd0000020, 4, 0), 0xd0000020, mmio,
			access{Type: iorequest.ReqMMIO, Dir: iorequest.DirRead, Addr: 0xd0000020, Size: 4}},
		{"CONFIG_ADDRESS := 00:03.1 reg 0x10", PIORequest(iorequest.DirWrite, 0xcf8, 4, 0x80001910), 0, nil, access{}},
		{"CONFIG_ADDRESS reads back", PIORequest(iorequest.DirRead, 0xcf8, 4, 0), 0x80001910, nil, access{}},
		{"PCI config read 4 bytes of reg 0x10", PIORequest(iorequest.DirRead, 0xcfc, 4, 0), uint64(uint32(PCIAddress(0, 3, 1, 0x10))), pci,
			access{Type: iorequest.ReqPCICfg, Dir: iorequest.DirRead, Addr: PCIAddress(0, 3, 1, 0x10), Size: 4, Dev: 3, Fn: 1, Reg: 0x10}},
		{"PCI config write 2 bytes to reg 0x12", PIORequest(iorequest.DirWrite, 0xcfe, 2, 0xbeef), 0, pci,
			access{Type: iorequest.ReqPCICfg, Dir: iorequest.DirWrite, Addr: PCIAddress(0, 3, 1, 0x12), Size: 2, Val: 0xbeef, Dev: 3, Fn: 1, Reg: 0x12}},
		{"WP write 4 bytes at 0x200100", WPRequest(0x200100, 4, 0xcafe), 0, wp,
			access{Type: iorequest.ReqWP, Dir: iorequest.DirWrite, Addr: 0x200100, Size: 4, Val: 0xcafe}},
		{"CONFIG_ADDRESS := 00:04.0, nobody's", PIORequest(iorequest.DirWrite, 0xcf8, 4, 0x80002000), 0, nil, access{}},
		{"PCI config read of an absent function is all ones", PIORequest(iorequest.DirRead, 0xcfc, 4, 0), 0xffffffff, nil, access{}},
		{"unclaimed PIO read 2 bytes is all ones", PIORequest(iorequest.DirRead, 0x80, 2, 0), 0xffff, nil, access{}},
		{"unclaimed MMIO read 8 bytes is all ones", MMIORequest(iorequest.DirRead, 0xfed00000, 8, 0), ^uint64(0), nil, access{}},
	}
	for _, s := range steps {
		var before int
		if s.dev != nil {
			before = len(s.dev.seen)
		}
		got, err := d.Emulate(1, &s.req)
		if err != nil || got != s.want {
			t.Errorf("%s: got %#x, %v; want %#x", s.name, got, err, s.want)
		}
		if s.dev == nil {
			continue
		}
		if len(s.dev.seen) != before+1 {
			t.Errorf("%s: device saw %d accesses, want 1", s.name, len(s.dev.seen)-before)
			continue
		}
		if a := s.dev.seen[before]; a != s.seen {
			t.Errorf("%s: device saw %+v, want %+v", s.name, a, s.seen)
		}
	}
	if reads, writes := r.Unclaimed(); reads != 3 || writes != 0 {
		t.Errorf("unclaimed reads %d writes %d, want 3, 0", reads, writes)
	}
	for i := range iorequest.IORequestMax {
		if d.Buffer().State(i) != iorequest.StateFree {
			t.Errorf("slot %d left %v", i, d.Buffer().State(i))
		}
	}
}

func TestUnclaimedWritesDroppedAndCounted(t *testing.T) {
	d := newDispatcher(t, Config{})
	for i := range 5 {
		req := PIORequest(iorequest.DirWrite, 0x80, 1, uint32(i))
		if v, err := d.Emulate(0, &req); v != 0 || err != nil {
			t.Fatalf("write: %#x, %v", v, err)
		}
	}
	if reads, writes := d.Router().Unclaimed(); reads != 0 || writes != 5 {
		t.Errorf("unclaimed reads %d writes %d, want 0, 5", reads, writes)
	}
}

func TestEmulateRefusesBadRequests(t *testing.T) {
	d := newDispatcher(t, Config{})
	req := PIORequest(iorequest.DirRead, 0x80, 3, 0)
	var re *RequestError
	if v, err := d.Emulate(0, &req); !errors.Is(err, acrn.ErrInvalid) || !errors.As(err, &re) || v != 0xffffff {
		t.Errorf("3-byte PIO read: %#x, %v; want all ones and a *RequestError wrapping acrn.ErrInvalid", v, err)
	}
	req = PIORequest(iorequest.DirWrite, 0x80, 3, 7)
	if v, err := d.Emulate(0, &req); !errors.As(err, &re) || v != 0 {
		t.Errorf("3-byte PIO write: %#x, %v; want 0 and a *RequestError", v, err)
	}
	req = PIORequest(iorequest.DirRead, 0x80, 1, 0)
	if _, err := d.Emulate(16, &req); !errors.Is(err, ErrNoSlot) {
		t.Errorf("vCPU 16: %v", err)
	}
}

// asyncClient serves requests on its own goroutine, reading them from the
// shared slot as a device model in another process does, and keeps one
// register per (vCPU, address).
type asyncClient struct {
	name string
	jobs chan Ticket
	mu   sync.Mutex
	regs map[[2]uint64]uint64
	hold bool // never complete
}

func newAsyncClient(t *testing.T, name string) *asyncClient {
	c := &asyncClient{name: name, jobs: make(chan Ticket, iorequest.IORequestMax), regs: map[[2]uint64]uint64{}}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for tk := range c.jobs {
			c.serve(tk)
		}
	}()
	t.Cleanup(func() { close(c.jobs); <-done })
	return c
}

func (c *asyncClient) Name() string { return c.name }

func (c *asyncClient) Submit(t Ticket, _ *iorequest.IORequest) error {
	if err := t.Claim(); err != nil {
		return err
	}
	c.jobs <- t
	return nil
}

func (c *asyncClient) serve(t Ticket) {
	if c.hold {
		return
	}
	b, i := t.Buffer(), t.VCPU()
	if b.State(i) != iorequest.StateProcessing {
		return
	}
	req, _ := b.Request(i)
	addr, _ := Target(&req)
	key := [2]uint64{uint64(i), addr}
	c.mu.Lock()
	if Dir(&req) == iorequest.DirWrite {
		c.regs[key] = Value(&req)
	} else {
		SetValue(&req, c.regs[key])
	}
	c.mu.Unlock()
	b.WriteBody(i, &req)
	t.Complete()
}

func TestAsyncClientSleepingAndPolling(t *testing.T) {
	for _, polling := range []uint32{0, 1} {
		t.Run(fmt.Sprintf("completion_polling=%d", polling), func(t *testing.T) {
			d := newDispatcher(t, Config{})
			must(t, d.Router().Claim(Range{iorequest.ReqMMIO, 0x1000, 0x1fff}, newAsyncClient(t, "async")))
			for i := range uint64(100) {
				w := MMIORequest(iorequest.DirWrite, 0x1008, 8, i*0x0101010101)
				w.CompletionPolling = polling
				if _, err := d.Emulate(2, &w); err != nil {
					t.Fatal(err)
				}
				r := MMIORequest(iorequest.DirRead, 0x1008, 8, 0)
				r.CompletionPolling = polling
				if v, err := d.Emulate(2, &r); err != nil || v != i*0x0101010101 {
					t.Fatalf("read back %#x, %v; want %#x", v, err, i*0x0101010101)
				}
			}
		})
	}
}

// TestTimeoutReclaimsSlot: a client that never completes costs the guest one
// timeout: the read returns all ones with ErrTimeout, the error is logged,
// the slot is FREE again, a late completion of the abandoned request is
// refused, and the vCPU's next request works.
func TestTimeoutReclaimsSlot(t *testing.T) {
	for _, polling := range []uint32{0, 1} {
		t.Run(fmt.Sprintf("completion_polling=%d", polling), func(t *testing.T) {
			log, lb := testLogger(t)
			d := newDispatcher(t, Config{Timeout: 50 * time.Millisecond, Logger: log})
			hung := newAsyncClient(t, "hung")
			hung.hold = true
			var tk Ticket
			must(t, d.Router().Claim(Range{iorequest.ReqPortIO, 0x600, 0x601}, captureTicket{hung, &tk}))
			must(t, d.Router().Claim(Range{iorequest.ReqPortIO, 0x602, 0x602}, InProcess("ok", &recorder{})))
			req := PIORequest(iorequest.DirRead, 0x600, 2, 0)
			req.CompletionPolling = polling
			start := time.Now()
			v, err := d.Emulate(4, &req)
			if el := time.Since(start); el < 50*time.Millisecond || el > time.Second {
				t.Errorf("timed out after %v", el)
			}
			var re *RequestError
			if v != 0xffff || !errors.Is(err, ErrTimeout) || !errors.As(err, &re) || re.VCPU != 4 || re.Addr != 0x600 {
				t.Fatalf("got %#x, %v; want 0xffff and a RequestError wrapping ErrTimeout", v, err)
			}
			if s := lb.String(); !strings.Contains(s, "request failed") || !strings.Contains(s, "hung") {
				t.Errorf("log %q does not report the failure", s)
			}
			if d.Buffer().State(4) != iorequest.StateFree {
				t.Errorf("slot left %v", d.Buffer().State(4))
			}
			if tk.Current() {
				t.Error("abandoned ticket still current")
			}
			setState(d.Buffer(), 4, iorequest.StateProcessing) // the client wakes up late...
			if err := tk.Complete(); err == nil {
				t.Error("late completion of an abandoned request accepted")
			}
			ok := PIORequest(iorequest.DirRead, 0x602, 1, 0)
			if v, err := d.Emulate(4, &ok); err != nil || v != 0x02 {
				t.Errorf("next request: %#x, %v", v, err)
			}
		})
	}
}

// captureTicket remembers the ticket it is handed.
type captureTicket struct {
	Client
	t *Ticket
}

func (c captureTicket) Submit(t Ticket, req *iorequest.IORequest) error {
	*c.t = t
	return c.Client.Submit(t, req)
}

// TestStressVCPUsAndClients runs 4 vCPUs against 3 clients (in-process,
// asynchronous with sleeping vCPUs, asynchronous with polling vCPUs) with
// thousands of requests each, on a memfd buffer and on a heap page (where the
// race detector also sees the slot bodies).
func TestStressVCPUsAndClients(t *testing.T) {
	n := 3000
	if testing.Short() {
		n = 300
	}
	for _, kind := range []string{"memfd", "heap"} {
		t.Run(kind, func(t *testing.T) {
			var buf *Buffer
			if kind == "memfd" {
				buf = newTestBuffer(t)
			} else {
				b, err := NewBufferBytes(make([]byte, iorequest.RequestBufferSize))
				must(t, err)
				b.Reset()
				buf = b
			}
			log, _ := testLogger(t)
			d := NewDispatcher(buf, NewRouter(), Config{Logger: log, Timeout: 10 * time.Second})
			regs := &regFile{regs: map[uint64]uint64{}}
			must(t, d.Router().Claim(Range{iorequest.ReqPortIO, 0x100, 0x1ff}, InProcess("inproc", regs)))
			must(t, d.Router().Claim(Range{iorequest.ReqMMIO, 0x10000, 0x1ffff}, newAsyncClient(t, "async-a")))
			must(t, d.Router().Claim(Range{iorequest.ReqMMIO, 0x20000, 0x2ffff}, newAsyncClient(t, "async-b")))
			var wg sync.WaitGroup
			errs := make(chan error, 4)
			for vcpu := range 4 {
				wg.Go(func() {
					for i := range n {
						v := uint64(vcpu)<<32 | uint64(i)
						var w, r iorequest.IORequest
						switch i % 3 {
						case 0:
							port := 0x100 + uint16(vcpu)*0x40 + uint16(i%16)*4
							w = PIORequest(iorequest.DirWrite, port, 4, uint32(v))
							r = PIORequest(iorequest.DirRead, port, 4, 0)
							v = uint64(uint32(v))
						case 1:
							w = MMIORequest(iorequest.DirWrite, 0x10000+uint64(i%128)*8, 8, v)
							r = MMIORequest(iorequest.DirRead, 0x10000+uint64(i%128)*8, 8, 0)
						case 2:
							w = MMIORequest(iorequest.DirWrite, 0x20000+uint64(i%128)*8, 8, v)
							r = MMIORequest(iorequest.DirRead, 0x20000+uint64(i%128)*8, 8, 0)
							w.CompletionPolling, r.CompletionPolling = 1, 1
						}
						if _, err := d.Emulate(vcpu, &w); err != nil {
							errs <- err
							return
						}
						got, err := d.Emulate(vcpu, &r)
						if err != nil || got != v {
							errs <- fmt.Errorf("vCPU %d request %d: read %#x, %v; want %#x", vcpu, i, got, err, v)
							return
						}
					}
				})
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Error(err)
			}
		})
	}
}

// regFile is an in-process register file keyed by address. The stress test
// gives each vCPU its own ports, so a read returns what that vCPU last wrote.
type regFile struct {
	mu   sync.Mutex
	regs map[uint64]uint64
}

func (p *regFile) HandleIORequest(req *iorequest.IORequest) {
	addr, _ := Target(req)
	p.mu.Lock()
	defer p.mu.Unlock()
	if Dir(req) == iorequest.DirWrite {
		p.regs[addr] = Value(req)
		return
	}
	SetValue(req, p.regs[addr])
}
