package ioreq

import (
	"errors"
	"testing"

	"ember/acrn/iorequest"
)

type named string

func (n named) Name() string                              { return string(n) }
func (n named) Submit(Ticket, *iorequest.IORequest) error { return nil }

func TestRouterOverlapsRefused(t *testing.T) {
	r := NewRouter()
	a, b := named("a"), named("b")
	if err := r.Claim(Range{iorequest.ReqPortIO, 0x3f8, 0x3ff}, a); err != nil {
		t.Fatal(err)
	}
	if err := r.Claim(Range{iorequest.ReqMMIO, 0x3f8, 0x3ff}, b); err != nil {
		t.Fatalf("same numbers, other type: %v", err)
	}
	for _, tc := range []struct {
		name string
		rg   Range
		ok   bool
	}{
		{"identical", Range{iorequest.ReqPortIO, 0x3f8, 0x3ff}, false},
		{"inside", Range{iorequest.ReqPortIO, 0x3fa, 0x3fa}, false},
		{"covers", Range{iorequest.ReqPortIO, 0x300, 0x4ff}, false},
		{"tail overlaps start", Range{iorequest.ReqPortIO, 0x3f0, 0x3f8}, false},
		{"head overlaps end", Range{iorequest.ReqPortIO, 0x3ff, 0x400}, false},
		{"adjacent below", Range{iorequest.ReqPortIO, 0x3f0, 0x3f7}, true},
		{"adjacent above", Range{iorequest.ReqPortIO, 0x400, 0x407}, true},
		{"end before start", Range{iorequest.ReqPortIO, 0x10, 0x0f}, false},
		{"unknown type", Range{iorequest.ReqType(9), 0, 1}, false},
	} {
		err := r.Claim(tc.rg, b)
		if tc.ok != (err == nil) {
			t.Errorf("%s %v: err %v", tc.name, tc.rg, err)
		}
		if !tc.ok && tc.rg.Start <= tc.rg.End && tc.rg.Type <= iorequest.ReqWP && !errors.Is(err, ErrOverlap) {
			t.Errorf("%s: %v does not wrap ErrOverlap", tc.name, err)
		}
	}
	if n := r.UnclaimAll(b); n != 3 {
		t.Errorf("UnclaimAll(b) = %d, want 3", n)
	}
	if err := r.Unclaim(Range{iorequest.ReqPortIO, 0x3f8, 0x3ff}, b); err == nil {
		t.Error("b unclaimed a's range")
	}
	if got := r.Ranges(a); len(got) != 1 {
		t.Errorf("a's ranges %v", got)
	}
}

func TestRouterRoute(t *testing.T) {
	r := NewRouter()
	uart, pci, ram := named("uart"), named("pci"), named("wp")
	must(t, r.Claim(Range{iorequest.ReqPortIO, 0x3f8, 0x3ff}, uart))
	must(t, r.Claim(Range{iorequest.ReqPCICfg, PCIAddress(0, 3, 0, 0), PCIAddress(0, 3, 0, 0xfff)}, pci))
	must(t, r.Claim(Range{iorequest.ReqWP, 0x100000, 0x100fff}, ram))
	pcireq := func(dev, reg uint32) iorequest.IORequest {
		var q iorequest.IORequest
		q.SetPCI(iorequest.PCIRequest{Size: 4, Dev: dev, Reg: reg})
		return q
	}
	for _, tc := range []struct {
		name string
		req  iorequest.IORequest
		want string
	}{
		{"PIO read 1 byte at 0x3f8", PIORequest(iorequest.DirRead, 0x3f8, 1, 0), "uart"},
		{"PIO write 4 bytes at 0x3fc, last of the range", PIORequest(iorequest.DirWrite, 0x3fc, 4, 0), "uart"},
		{"PIO 4 bytes at 0x3fe straddles the end", PIORequest(iorequest.DirRead, 0x3fe, 4, 0), "unclaimed"},
		{"PIO at 0x3f7, below", PIORequest(iorequest.DirRead, 0x3f7, 1, 0), "unclaimed"},
		{"MMIO at 0x3f8 is another type", MMIORequest(iorequest.DirRead, 0x3f8, 1, 0), "unclaimed"},
		{"PCICFG 00:03.0 reg 0x10", pcireq(3, 0x10), "pci"},
		{"PCICFG 00:04.0", pcireq(4, 0), "unclaimed"},
		{"WP write in page", WPRequest(0x100ff8, 8, 1), "wp"},
	} {
		if got := r.Route(&tc.req).Name(); got != tc.want {
			t.Errorf("%s: routed to %s, want %s", tc.name, got, tc.want)
		}
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// TestRouterCountsRequestsByClient: every access is counted once for the
// client that serves it, whether the direct path serves it or it becomes a
// request after the direct path declined it; the default client counts too.
func TestRouterCountsRequestsByClient(t *testing.T) {
	d := newDispatcher(t, Config{})
	if err := d.Router().Claim(Range{Type: iorequest.ReqPortIO, Start: 0x80, End: 0x83}, DeviceClient("post", 0x80, &regs{})); err != nil {
		t.Fatal(err)
	}
	async := newAsyncClient(t, "external")
	if err := d.Router().Claim(Range{Type: iorequest.ReqPortIO, Start: 0x600, End: 0x603}, async); err != nil {
		t.Fatal(err)
	}
	data := make([]byte, 1)
	for range 3 {
		if !d.Direct(iorequest.ReqPortIO, 0x80, true, data) {
			t.Fatal("Direct did not serve the device's port")
		}
	}
	d.Direct(iorequest.ReqPortIO, 0x90, false, data)
	if d.Direct(iorequest.ReqPortIO, 0x600, true, data) {
		t.Fatal("Direct served an out-of-process client's port")
	}
	req := &iorequest.IORequest{Type: iorequest.ReqPortIO}
	req.SetPIO(iorequest.PIORequest{Address: 0x600, Size: 1, Direction: iorequest.DirWrite})
	if c := d.Router().Route(req); c != async {
		t.Fatalf("Route gave %v", c.Name())
	}
	got := d.Router().Requests()
	want := map[string]uint64{"post": 3, "unclaimed": 1, "external": 1}
	if len(got) != len(want) || got["post"] != 3 || got["unclaimed"] != 1 || got["external"] != 1 {
		t.Errorf("Requests() = %v, want %v", got, want)
	}
}

// TestRouterLookupsDuringClaims: vCPUs route accesses while devices come and
// go. A lookup sees the table before a change or after it, never a half-made
// one: an address is routed to the client that claims it or to the default,
// never to a neighbour whose entry moved under the search.
func TestRouterLookupsDuringClaims(t *testing.T) {
	r := NewRouter()
	fixed := named("fixed")
	for i := range uint64(8) {
		if err := r.Claim(Range{iorequest.ReqPortIO, 0x100 * (2*i + 1), 0x100*(2*i+1) + 0xf}, fixed); err != nil {
			t.Fatal(err)
		}
	}
	moving := named("moving")
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range 2000 {
			base := 0x200 * uint64(i%8)
			rg := Range{iorequest.ReqPortIO, base, base + 0xf}
			if err := r.Claim(rg, moving); err != nil {
				t.Error(err)
				return
			}
			if err := r.Unclaim(rg, moving); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	for {
		select {
		case <-done:
			return
		default:
		}
		for port := uint64(0); port < 0x1000; port += 0x80 {
			c, _ := r.lookup(iorequest.ReqPortIO, port+4, 1)
			var ok bool
			switch port % 0x200 {
			case 0x100: // always fixed's
				ok = c == fixed
			case 0x000: // moving's now and then
				ok = c == moving || c == r.unclaimed
			default: // nobody's
				ok = c == r.unclaimed
			}
			if !ok {
				t.Fatalf("port %#x routed to %s", port+4, c.Name())
			}
		}
	}
}
