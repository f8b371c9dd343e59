package devicemodel

import (
	"io"
	"log/slog"
	"sync"
	"testing"

	"ember/acrn/iorequest"
	"ember/internal/testlog"
	"ember/ioreq"
)

// testLogger is testlog.New for a test: a logger whose output it can read.
func testLogger(t *testing.T) (*slog.Logger, *testlog.Buffer) {
	t.Helper()
	return testlog.New()
}

// newDispatcher returns a dispatcher over a fresh memfd request buffer,
// released when the test ends.
func newDispatcher(t *testing.T, cfg ioreq.Config) *ioreq.Dispatcher {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger, _ = testLogger(t)
	}
	buf, err := ioreq.NewBuffer()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { buf.Close() })
	return ioreq.NewDispatcher(buf, ioreq.NewRouter(), cfg)
}

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
	addr, size := ioreq.Target(req)
	a := access{Type: req.Type, Dir: ioreq.Dir(req), Addr: addr, Size: size, Val: ioreq.Value(req)}
	if req.Type == iorequest.ReqPCICfg {
		p := req.PCI()
		a.Bus, a.Dev, a.Fn, a.Reg = p.Bus, p.Dev, p.Func, p.Reg
	}
	r.mu.Lock()
	r.seen = append(r.seen, a)
	r.mu.Unlock()
	if a.Dir == iorequest.DirRead {
		ioreq.SetValue(req, 0xa5a5a5a5_00000000|addr)
	}
}

// regFile is an in-process register file keyed by address. The stress test
// gives each vCPU its own ports, so a read returns what that vCPU last wrote.
type regFile struct {
	mu   sync.Mutex
	regs map[uint64]uint64
}

func (p *regFile) HandleIORequest(req *iorequest.IORequest) {
	addr, _ := ioreq.Target(req)
	p.mu.Lock()
	defer p.mu.Unlock()
	if ioreq.Dir(req) == iorequest.DirWrite {
		p.regs[addr] = ioreq.Value(req)
		return
	}
	ioreq.SetValue(req, p.regs[addr])
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// quietLogger discards what benchmarks would log.
var quietLogger = slog.New(slog.NewTextHandler(io.Discard, nil))
