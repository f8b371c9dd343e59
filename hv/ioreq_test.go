package hv

import (
	"context"
	"sync"
	"testing"
	"time"

	"ember/acrn/iorequest"
	"ember/guest"
	"ember/internal/kvmtest"
	"ember/ioreq"
)

// access is one request as a client saw it.
type access struct {
	typ  iorequest.ReqType
	dir  iorequest.Direction
	addr uint64
	size uint64
	val  uint64
}

// recorder is an in-process client that records every request and answers
// reads with a value derived from the address.
type recorder struct {
	mu   sync.Mutex
	seen []access
}

func served(addr uint64) uint64 { return 0x5e000000 | addr&0xffff }

func (r *recorder) HandleIORequest(req *iorequest.IORequest) {
	addr, size := ioreq.Target(req)
	a := access{typ: req.Type, dir: ioreq.Dir(req), addr: addr, size: size, val: ioreq.Value(req)}
	if a.dir == iorequest.DirRead {
		ioreq.SetValue(req, served(addr))
		a.val = 0
	}
	r.mu.Lock()
	r.seen = append(r.seen, a)
	r.mu.Unlock()
}

// TestGuestAccessesReachTheirClient runs a guest that makes port, MMIO and
// PCI-configuration accesses, each claimed by a recording client, and checks
// every request's type, direction, size, address and value, and that the
// guest read what the clients served.
func TestGuestAccessesReachTheirClient(t *testing.T) {
	h := openHV(t)
	vm, err := h.NewVM(Config{MemorySize: 2 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer vm.Close()
	rec := &recorder{}
	cl := ioreq.InProcess("recorder", rec)
	pciFn := ioreq.PCIAddress(0, 3, 1, 0)
	for _, r := range []ioreq.Range{
		{Type: iorequest.ReqPortIO, Start: 0x500, End: 0x50f},
		{Type: iorequest.ReqMMIO, Start: 0xd0000000, End: 0xd0000fff},
		{Type: iorequest.ReqPCICfg, Start: pciFn, End: pciFn + 0xfff},
	} {
		if err := vm.IORequests().Router().Claim(r, cl); err != nil {
			t.Fatal(err)
		}
	}
	rep := kvmtest.NewReporter()
	if err := vm.PIO.Register(guest.PortReport, 4, "report", rep); err != nil {
		t.Fatal(err)
	}
	vm.LoadImage(guest.IOAccess.Code, guest.LoadAddr)
	vm.SetEntry(0, guest.IOAccess.Entry())
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	res, err := vm.Run(ctx)
	if err != nil || res.Reason != StopExit || res.Status != 0 {
		t.Fatalf("Run = %v, %v", res, err)
	}
	pio, mmio, pci := iorequest.ReqPortIO, iorequest.ReqMMIO, iorequest.ReqPCICfg
	rd, wr := iorequest.DirRead, iorequest.DirWrite
	want := []access{
		{pio, wr, 0x500, 1, 0x5a},
		{pio, wr, 0x502, 2, 0x1234},
		{pio, wr, 0x504, 4, 0xdeadbeef},
		{pio, rd, 0x508, 4, 0},
		{mmio, wr, 0xd0000000, 4, 0xcafef00d},
		{mmio, wr, 0xd0000010, 2, 0xbeef},
		{mmio, wr, 0xd0000020, 1, 0x7f},
		{mmio, rd, 0xd0000008, 4, 0},
		{pci, rd, pciFn + 0x10, 4, 0},
		{pci, wr, pciFn + 0x10, 4, 0x12345678},
	}
	rec.mu.Lock()
	seen := rec.seen
	rec.mu.Unlock()
	if len(seen) != len(want) {
		t.Fatalf("clients saw %d requests, want %d:\n%+v", len(seen), len(want), seen)
	}
	for i := range want {
		if seen[i] != want[i] {
			t.Errorf("request %d: %+v, want %+v", i, seen[i], want[i])
		}
	}
	got := rep.Values()
	wantRead := []uint64{served(0x508), served(0xd0000008), served(pciFn + 0x10)}
	if len(got) != 3 || got[0] != wantRead[0] || got[1] != wantRead[1] || got[2] != wantRead[2] {
		t.Errorf("guest read %#x, want %#x", got, wantRead)
	}
	if r, w := vm.Unclaimed(); r != 0 || w != 0 {
		t.Errorf("%d reads and %d writes went unclaimed", r, w)
	}
}
