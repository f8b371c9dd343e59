package ioreq

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"

	"ember/acrn/iorequest"
	"ember/devices"
)

// Client serves I/O requests: in-process Go devices, out-of-process device
// models and Service VM guests are all Clients.
//
// Submit is called on the requesting vCPU's goroutine with the request
// published in t's slot (PENDING) and req the vCPU's own, validated copy of
// it. The client (or the code acting as the HSM for it) moves the slot to
// PROCESSING with t.Claim, handles the request, writes a read's value into
// the slot, moves it to COMPLETE and wakes the vCPU with t.Notify. A
// synchronous client does all of that before Submit returns; an asynchronous
// one returns at once and finishes later from another goroutine or process.
// An error from Submit fails the request (the vCPU sees all ones).
type Client interface {
	Name() string
	Submit(t Ticket, req *iorequest.IORequest) error
}

// Canceler is implemented by clients that want to hear when the dispatcher
// gives up on a request they were handed (timeout): the slot has been
// reclaimed and the client must not touch it for that request again.
type Canceler interface {
	Cancel(t Ticket, err error)
}

// Poller is implemented by clients whose side of a request is not
// ember's slot and who are not told when it completes: a Service VM that
// sees completion_polling set in its page stores COMPLETE there and makes no
// HC_NOTIFY_REQUEST_FINISH. A vCPU in completion-polling mode calls Poll
// while it waits; Poll completes t if the client's side is done.
type Poller interface {
	Poll(t Ticket)
}

// Remote is implemented by clients that serve requests in another process
// (an out-of-process device model): a vCPU that waits for one has no
// goroutine of this process to give its processor up for, so it does not
// yield while it looks at its slot.
type Remote interface {
	Remote()
}

// FutexWaker is implemented by remote clients that may wake a sleeping
// vCPU with a FUTEX_WAKE on its slot's state word (docs/ioreq-protocol.md,
// "Futex hand-off"). A vCPU waiting for one sleeps in FUTEX_WAIT on that
// word, which the client's COMPLETE ends with no other thread running; the
// client's other signals (the done eventfd, NOTIFY_FINISH) reach it through
// Ticket.Notify, which wakes it there too.
//
// Woken reports whether Submit had to wake the client for t (it was asleep,
// not polling the buffer): its thread then needs a CPU, perhaps the vCPU's
// own, so the vCPU sleeps at once instead of polling its slot first.
type FutexWaker interface {
	Woken(t Ticket) bool
}

// ErrOverlap is returned when a range registration overlaps one already made.
var ErrOverlap = errors.New("ioreq: range overlaps an existing registration")

// Range is an inclusive address range of one request type, as the HSM's
// acrn_ioreq_range has it: [Start, End]. Addresses are ports for ReqPortIO,
// guest-physical addresses for ReqMMIO and ReqWP, and PCIAddress values for
// ReqPCICfg.
type Range struct {
	Type       iorequest.ReqType
	Start, End uint64
}

// Contains reports whether the access [addr, addr+size) lies wholly inside r.
func (r Range) Contains(addr, size uint64) bool {
	if size == 0 {
		size = 1
	}
	return addr >= r.Start && addr <= r.End && size-1 <= r.End-addr
}

func (r Range) String() string { return fmt.Sprintf("%v [%#x, %#x]", r.Type, r.Start, r.End) }

// PCIAddress is the address a PCI configuration access is routed by:
// bus<<20 | device<<15 | function<<12 | register, the ECAM offset. A device
// model claims function f of device d on bus b with the ReqPCICfg range
// [PCIAddress(b,d,f,0), PCIAddress(b,d,f,0xfff)].
func PCIAddress(bus, dev, fn, reg uint32) uint64 {
	return uint64(bus&0xff)<<20 | uint64(dev&0x1f)<<15 | uint64(fn&7)<<12 | uint64(reg&0xfff)
}

// Target returns the routing address and access size of a request: the port,
// the guest-physical address, or PCIAddress for a PCI configuration access.
func Target(req *iorequest.IORequest) (addr, size uint64) {
	switch req.Type {
	case iorequest.ReqPortIO:
		p := req.PIO()
		return p.Address, p.Size
	case iorequest.ReqMMIO, iorequest.ReqWP:
		m := req.MMIO()
		return m.Address, m.Size
	case iorequest.ReqPCICfg:
		p := req.PCI()
		return PCIAddress(p.Bus, p.Dev, p.Func, p.Reg), p.Size
	}
	return 0, 0
}

func accessSize(req *iorequest.IORequest) uint64 { _, n := Target(req); return n }

// Router maps ranges of each request type to clients. A lookup (one per
// emulated access, on every vCPU at once) reads an immutable table through
// one atomic load and writes nothing shared; a registration copies the
// table, changes the copy and publishes it, under a mutex that only
// registrations take.
type Router struct {
	table atomic.Pointer[routeTable]

	mu        sync.Mutex // serialises changes of table and counts
	unclaimed *Unclaimed
	// counts holds each client's count of routed requests, by client; an
	// entry's n points into it, so counting costs one atomic add.
	counts map[Client]*atomic.Uint64
}

// routeTable is one published state of a Router. It is never changed
// after it is published: a change makes a new one.
type routeTable struct {
	entries [4][]routeEntry // per iorequest.ReqType, sorted by start, disjoint
	def     Client
	defN    *atomic.Uint64 // requests routed to def
}

// change runs f on a copy of the table, under mu, and publishes the copy
// if f reports no error. f must not modify the slices it finds in the copy
// (readers may hold them): it replaces them.
func (rt *Router) change(f func(t *routeTable) error) error {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	t := *rt.table.Load()
	if err := f(&t); err != nil {
		return err
	}
	rt.table.Store(&t)
	return nil
}

type routeEntry struct {
	start, end uint64
	c          Client
	n          *atomic.Uint64 // c's count of routed requests
}

// NewRouter returns a router with no registrations whose default client is an
// Unclaimed: reads all ones, writes dropped, both counted.
func NewRouter() *Router {
	u := &Unclaimed{}
	rt := &Router{unclaimed: u, counts: map[Client]*atomic.Uint64{}}
	rt.table.Store(&routeTable{def: u, defN: rt.counter(u)})
	return rt
}

// counter returns c's request count, made on first use. The caller holds
// mu (or owns the router still).
func (rt *Router) counter(c Client) *atomic.Uint64 {
	n := rt.counts[c]
	if n == nil {
		n = new(atomic.Uint64)
		rt.counts[c] = n
	}
	return n
}

// Requests returns how many requests the router has routed to each client,
// by client name (clients that share a name are summed), for metrics. A
// client's count stays after it unclaims its ranges.
func (rt *Router) Requests() map[string]uint64 {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	m := make(map[string]uint64, len(rt.counts))
	for c, n := range rt.counts {
		if v := n.Load(); v > 0 {
			m[c.Name()] += v
		}
	}
	return m
}

// Claim registers c for r. A range that overlaps any range already registered
// for the same type, whoever holds it, is refused with ErrOverlap: two clients
// never answer for one address.
func (rt *Router) Claim(r Range, c Client) error {
	if int(r.Type) >= len(routeTable{}.entries) || r.End < r.Start || c == nil {
		return fmt.Errorf("ioreq: bad range %v", r)
	}
	return rt.change(func(t *routeTable) error {
		es := t.entries[r.Type]
		i := firstAfter(es, r.Start)
		if i > 0 && es[i-1].end >= r.Start {
			p := es[i-1]
			return fmt.Errorf("%w: %s %v and %s [%#x, %#x]", ErrOverlap, c.Name(), r, p.c.Name(), p.start, p.end)
		}
		if i < len(es) && es[i].start <= r.End {
			n := es[i]
			return fmt.Errorf("%w: %s %v and %s [%#x, %#x]", ErrOverlap, c.Name(), r, n.c.Name(), n.start, n.end)
		}
		t.entries[r.Type] = slices.Insert(slices.Clone(es), i, routeEntry{r.Start, r.End, c, rt.counter(c)})
		return nil
	})
}

// Unclaim removes c's registration of exactly r.
func (rt *Router) Unclaim(r Range, c Client) error {
	if int(r.Type) >= len(routeTable{}.entries) {
		return fmt.Errorf("ioreq: bad range %v", r)
	}
	return rt.change(func(t *routeTable) error {
		es := t.entries[r.Type]
		for i, e := range es {
			if e.start == r.Start && e.end == r.End && e.c == c {
				t.entries[r.Type] = append(es[:i:i], es[i+1:]...)
				return nil
			}
		}
		return fmt.Errorf("ioreq: %s holds no range %v", c.Name(), r)
	})
}

// UnclaimAll removes every registration of c and returns how many there were.
func (rt *Router) UnclaimAll(c Client) int {
	n := 0
	rt.change(func(t *routeTable) error {
		for i, es := range t.entries {
			kept := es[:0:0]
			for _, e := range es {
				if e.c == c {
					n++
					continue
				}
				kept = append(kept, e)
			}
			t.entries[i] = kept
		}
		return nil
	})
	return n
}

// Ranges returns c's registrations.
func (rt *Router) Ranges(c Client) []Range {
	var rs []Range
	for t, es := range rt.table.Load().entries {
		for _, e := range es {
			if e.c == c {
				rs = append(rs, Range{iorequest.ReqType(t), e.start, e.end})
			}
		}
	}
	return rs
}

// SetDefault makes c the client of every access no range claims (nil restores
// the Unclaimed client). A VM whose device model is a Service VM sends it
// everything ember does not emulate itself, as ACRN does.
func (rt *Router) SetDefault(c Client) {
	if c == nil {
		c = rt.unclaimed
	}
	rt.change(func(t *routeTable) error {
		t.def, t.defN = c, rt.counter(c)
		return nil
	})
}

// Route returns the client for req: the one whose range holds the whole
// access, else the default.
func (rt *Router) Route(req *iorequest.IORequest) Client {
	addr, size := Target(req)
	c, n := rt.lookup(req.Type, addr, size)
	n.Add(1)
	return c
}

// lookup finds the client for an access of size bytes at addr of request
// type typ, and the client's request count, which the caller adds to once
// the request is the client's (Route, or Direct when it serves it).
func (rt *Router) lookup(typ iorequest.ReqType, addr, size uint64) (Client, *atomic.Uint64) {
	t := rt.table.Load()
	if int(typ) < len(t.entries) {
		es := t.entries[typ]
		// The last entry that starts at or below addr.
		if i := firstAfter(es, addr) - 1; i >= 0 && (Range{Start: es[i].start, End: es[i].end}).Contains(addr, size) {
			return es[i].c, es[i].n
		}
	}
	return t.def, t.defN
}

// firstAfter returns the index of the first of the sorted entries es that
// starts above addr (len(es) if none): a binary search, written out rather
// than sort.Search's, since every routed access makes one and a closure
// call per step would cost it more than the search.
func firstAfter(es []routeEntry, addr uint64) int {
	lo, hi := 0, len(es)
	for lo < hi {
		if m := int(uint(lo+hi) >> 1); es[m].start > addr {
			hi = m
		} else {
			lo = m + 1
		}
	}
	return lo
}

// Unclaimed returns how many reads and writes the built-in default client has
// answered.
func (rt *Router) Unclaimed() (reads, writes uint64) {
	return rt.unclaimed.reads.Load(), rt.unclaimed.writes.Load()
}

// Unclaimed is the default client: a read returns all ones of its size, as
// on a PC bus nothing drives, a write is dropped; both are counted.
type Unclaimed struct{ reads, writes atomic.Uint64 }

// Name returns "unclaimed".
func (u *Unclaimed) Name() string { return "unclaimed" }

// Submit completes the request synchronously.
func (u *Unclaimed) Submit(t Ticket, req *iorequest.IORequest) error {
	return t.serve(req, func(r *iorequest.IORequest) {
		write := Dir(r) == iorequest.DirWrite
		u.count(write)
		if !write {
			SetValue(r, ^uint64(0))
		}
	})
}

// count counts one unclaimed write or read.
func (u *Unclaimed) count(write bool) {
	if write {
		u.writes.Add(1)
	} else {
		u.reads.Add(1)
	}
}

// Handler is an in-process device: HandleIORequest reads the request and, for
// a read, stores the result with SetValue. It runs on the vCPU's goroutine,
// so one handler may be called from several vCPUs at once.
type Handler interface {
	HandleIORequest(req *iorequest.IORequest)
}

// HandlerFunc adapts a function to Handler.
type HandlerFunc func(req *iorequest.IORequest)

// HandleIORequest calls f(req).
func (f HandlerFunc) HandleIORequest(req *iorequest.IORequest) { f(req) }

// InProcess returns a client that serves requests with h synchronously on the
// requesting vCPU's goroutine: PENDING -> PROCESSING -> COMPLETE in the slot
// without a wake-up. All of ember's own devices are InProcess clients.
func InProcess(name string, h Handler) Client { return &inProcess{name, h} }

type inProcess struct {
	name string
	h    Handler
}

func (c *inProcess) Name() string { return c.name }

func (c *inProcess) Submit(t Ticket, req *iorequest.IORequest) error {
	return t.serve(req, c.h.HandleIORequest)
}

// DeviceHandler adapts a Device registered at base (a port, an address, or a
// PCIAddress) to a Handler: the value travels little-endian in data.
func DeviceHandler(base uint64, d devices.Device) Handler {
	return HandlerFunc(func(req *iorequest.IORequest) {
		addr, size := Target(req)
		var buf [8]byte
		data := buf[:min(size, 8)]
		if Dir(req) == iorequest.DirWrite {
			devices.PutUint(data, Value(req))
			d.Write(addr-base, data)
			return
		}
		d.Read(addr-base, data)
		SetValue(req, devices.Uint(data))
	})
}

// Dir returns the request's direction.
func Dir(req *iorequest.IORequest) iorequest.Direction {
	return iorequest.Direction(binary.LittleEndian.Uint32(req.Reqs[0:]))
}

// Value returns the request's value: the data of a write, the result of a
// read once handled. PIO and PCI values are 32 bits, MMIO and WP 64.
func Value(req *iorequest.IORequest) uint64 {
	if req.Type == iorequest.ReqMMIO || req.Type == iorequest.ReqWP {
		return binary.LittleEndian.Uint64(req.Reqs[24:])
	}
	return uint64(binary.LittleEndian.Uint32(req.Reqs[24:]))
}

// SetValue stores v, truncated to the access size, as the request's value.
func SetValue(req *iorequest.IORequest, v uint64) {
	v &= sizeMask(accessSize(req))
	if req.Type == iorequest.ReqMMIO || req.Type == iorequest.ReqWP {
		binary.LittleEndian.PutUint64(req.Reqs[24:], v)
		return
	}
	binary.LittleEndian.PutUint32(req.Reqs[24:], uint32(v))
}

// PIORequest builds a port I/O request.
func PIORequest(dir iorequest.Direction, port uint16, size int, value uint32) iorequest.IORequest {
	var r iorequest.IORequest
	r.SetPIO(iorequest.PIORequest{Direction: dir, Address: uint64(port), Size: uint64(size), Value: value})
	return r
}

// MMIORequest builds an MMIO request.
func MMIORequest(dir iorequest.Direction, gpa uint64, size int, value uint64) iorequest.IORequest {
	var r iorequest.IORequest
	r.SetMMIO(iorequest.MMIORequest{Direction: dir, Address: gpa, Size: uint64(size), Value: value})
	return r
}

// WPRequest builds the request for a guest write to a write-protected page.
func WPRequest(gpa uint64, size int, value uint64) iorequest.IORequest {
	r := MMIORequest(iorequest.DirWrite, gpa, size, value)
	r.Type = iorequest.ReqWP
	return r
}
