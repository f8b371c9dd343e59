package devicemodel

import (
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"sync"
	"sync/atomic"

	"golang.org/x/sys/unix"

	"ember/acrn"
	"ember/acrn/iorequest"
	"ember/internal/unixsock"
	"ember/ioreq"
)

// EventFDs is what a VM offers device models for acrn_ioeventfd and
// acrn_irqfd; hv implements it on KVM_IOEVENTFD, KVM_IRQFD and MSI routing,
// so that a virtio notification and an interrupt never leave the kernel.
// fd is an eventfd valid only for the duration of the call (the server closes
// it afterwards; KVM keeps its own reference). e.FD and q.FD hold the number
// the device model used in its own process and mean nothing here.
//
// IOEventFD: a guest write of e.Len bytes (0: any width) to port or MMIO
// address e.Addr (IOEventFDFlagPIO selects ports), equal to e.Data if
// IOEventFDFlagDataMatch, signals fd instead of becoming a request;
// IOEventFDFlagDeassign removes the registration with the same fd, address
// and match. IRQFD: a signal on fd injects the MSI q.MSI (through a GSI
// routed to it); IRQFDFlagDeassign removes it.
type EventFDs interface {
	IOEventFD(e acrn.IOEventFD, fd int) error
	IRQFD(q acrn.IRQFD, fd int) error
}

// ErrNotShareable is the MEMORY error (ENOTSUP on the wire) of a VM whose RAM
// is not memfd-backed, so no other process can map it.
var ErrNotShareable = errors.New("devicemodel: guest memory is not shareable")

// ServerConfig configures a Server.
type ServerConfig struct {
	VMID uint16
	// EventFDs serves IOEVENTFD and IRQFD; nil answers ENOTSUP.
	EventFDs EventFDs
	// Memory returns the guest RAM segments with their memfds (owned by the
	// provider; the server only sends them). Nil, or ErrNotShareable,
	// answers MEMORY with ENOTSUP.
	Memory func() ([]Segment, error)
	// Logger; nil means the dispatcher's (ioreq.Dispatcher.Logger).
	Logger *slog.Logger
}

// Server accepts out-of-process device models on a unix SOCK_SEQPACKET
// socket and makes each a Client of its dispatcher (docs/ioreq-protocol.md).
type Server struct {
	d   *ioreq.Dispatcher
	cfg ServerConfig
	log *slog.Logger
	ln  *unixsock.Listener

	mu     sync.Mutex
	conns  map[*remote]struct{}
	nextID uint32
	closed bool
	wg     sync.WaitGroup
}

// Listen creates the socket at path and returns a server for d, whose
// buffer must be memfd-backed (NewBuffer). Call Serve to accept clients.
func Listen(path string, d *ioreq.Dispatcher, cfg ServerConfig) (*Server, error) {
	if d.Buffer().FD() < 0 {
		return nil, errors.New("devicemodel: server needs a memfd-backed request buffer")
	}
	ln, err := unixsock.Listen("unixpacket", path, nil)
	if err != nil {
		return nil, fmt.Errorf("devicemodel: %w", err)
	}
	s := &Server{d: d, cfg: cfg, log: cfg.Logger, ln: ln, conns: map[*remote]struct{}{}}
	if s.log == nil {
		s.log = d.Logger()
	}
	return s, nil
}

// Addr returns the socket path.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// Serve accepts device models until Close; it returns nil after Close.
func (s *Server) Serve() error {
	for {
		c, err := s.ln.AcceptUnix()
		if err != nil {
			s.mu.Lock()
			closed := s.closed
			s.mu.Unlock()
			if closed {
				return nil
			}
			return fmt.Errorf("devicemodel: accept: %w", err)
		}
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			c.Close()
			return nil
		}
		s.nextID++
		r := &remote{s: s, id: s.nextID, conn: c, kick: -1, name: fmt.Sprintf("dm%d", s.nextID)}
		s.conns[r] = struct{}{}
		s.wg.Add(1)
		s.mu.Unlock()
		go r.serve()
	}
}

// Close stops accepting, disconnects every device model (their in-flight
// requests fail with ErrClientGone) and waits for their goroutines.
func (s *Server) Close() error {
	s.mu.Lock()
	s.closed = true
	err := s.ln.Close()
	for r := range s.conns {
		r.close()
	}
	s.mu.Unlock()
	s.wg.Wait()
	return err
}

// Clients returns the number of connected device models.
func (s *Server) Clients() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.conns)
}

// remote is one connected device model: a Client of the dispatcher.
type remote struct {
	s    *Server
	id   uint32
	conn *net.UnixConn
	wmu  sync.Mutex // one packet at a time

	// Set by CREATE_CLIENT on the connection's goroutine, before any range
	// is claimed (so before Submit can be called).
	name   string
	kick   int      // eventfd: ember -> client
	done   *os.File // eventfd: client -> ember, read through the poller
	doneFD int

	mu       sync.Mutex
	attached bool
	tickets  [iorequest.IORequestMax]*ioreq.Ticket
	// The client page (CLIENT_PAGE), if the device model asked for it:
	// its memfd, ember's mapping, and the polling word in it (nil: the
	// model never says it polls, and every request is kicked).
	pageFD  int
	page    []byte
	polling *atomic.Uint32
	// handoff and kickWord are the page's futex hand-off words
	// (ClientPageHandoff, ClientPageKick); woken records, per vCPU,
	// whether Submit woke the model for the request in flight (Woken).
	handoff, kickWord *atomic.Uint32
	woken             [iorequest.IORequestMax]bool

	gone      atomic.Bool
	closeOnce sync.Once
}

func (r *remote) Name() string { return r.name }

// Remote marks the device model as a client in another process
// (ioreq.Remote): a vCPU waiting for it keeps its processor.
func (r *remote) Remote() {}

// Submit assigns the request to the device model: PROCESSING (rules (b),
// (c)), remembered by slot, and a kick on its eventfd once it has attached,
// unless the model says in its client page that it is polling the buffer.
//
// The PROCESSING store (Claim's compare-and-swap) comes before the load of
// the polling word, and the model stores 0 there before it looks at the
// buffer one last time and sleeps: with both sides storing then loading,
// sequentially consistent, either ember loads 0 and kicks, or the model's
// last look finds the request (docs/ioreq-protocol.md, "Polling for
// requests"). The same discipline as completion_polling's, the other way.
func (r *remote) Submit(t ioreq.Ticket, _ *iorequest.IORequest) error {
	if err := t.Claim(); err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.gone.Load() { // cleanup has run: nobody would ever fail this ticket
		return ioreq.ErrClientGone
	}
	i := t.VCPU()
	r.tickets[i] = &t
	r.woken[i] = r.attached && (r.polling == nil || r.polling.Load() == 0)
	if !r.woken[i] {
		return nil
	}
	if r.handoff != nil && r.handoff.Load() == 1 {
		// The model read the kick word before its last look at the buffer
		// and waits only while it is unchanged: this store then wake
		// cannot fall between its look and its FUTEX_WAIT.
		r.kickWord.Add(1)
		ioreq.FutexWake(r.kickWord)
		return nil
	}
	return r.signal()
}

// Woken reports whether Submit woke the device model for t (ioreq.FutexWaker).
func (r *remote) Woken(t ioreq.Ticket) bool { return r.woken[t.VCPU()] }

// signal kicks the device model. Called with r.mu held, which keeps cleanup
// from closing the eventfd (and the number being reused) under it.
func (r *remote) signal() error {
	var one [8]byte
	binary.LittleEndian.PutUint64(one[:], 1)
	if _, err := unix.Write(r.kick, one[:]); err != nil && err != unix.EAGAIN {
		return fmt.Errorf("kick eventfd: %w", err)
	}
	return nil
}

// Cancel: a device model that let a request time out has stopped answering;
// it is disconnected, which releases its ranges and fails its other requests.
func (r *remote) Cancel(t ioreq.Ticket, err error) {
	r.mu.Lock()
	if p := r.tickets[t.VCPU()]; p != nil && *p == t {
		r.tickets[t.VCPU()] = nil
	}
	r.mu.Unlock()
	if r.gone.Load() || errors.Is(err, ioreq.ErrClientGone) {
		return // already disconnected; cleanup has logged it
	}
	r.s.log.Error("devicemodel: device model stopped answering; disconnecting", "client", r.name, "vcpu", t.VCPU(), "err", err)
	r.close()
}

func (r *remote) close() {
	r.closeOnce.Do(func() { r.conn.Close() })
}

// completions reads the done eventfd and wakes the vCPUs whose slots the
// device model has set COMPLETE.
func (r *remote) completions() {
	var b [8]byte
	for {
		if _, err := r.done.Read(b[:]); err != nil {
			return
		}
		r.wakeCompleted()
	}
}

func (r *remote) wakeCompleted() {
	buf := r.s.d.Buffer()
	r.mu.Lock()
	defer r.mu.Unlock()
	for i, t := range r.tickets {
		if t != nil && buf.State(i) == iorequest.StateComplete {
			r.tickets[i] = nil
			t.Notify()
		}
	}
}

func (r *remote) serve() {
	defer r.s.wg.Done()
	defer r.cleanup()
	pkt := make([]byte, MaxMessageSize+1)
	oob := make([]byte, unix.CmsgSpace(4*4))
	for {
		n, oobn, flags, _, err := r.conn.ReadMsgUnix(pkt, oob)
		if err != nil || n == 0 {
			return
		}
		fds := ParseRights(oob[:oobn])
		var m Message
		if flags&(unix.MSG_TRUNC|unix.MSG_CTRUNC) != 0 {
			err = fmt.Errorf("%w: packet or its fds truncated", ErrProtocol)
		} else {
			m, err = DecodeMessage(pkt[:n])
		}
		if err == nil && m.Op&OpReply != 0 {
			err = fmt.Errorf("%w: a reply sent to the server", ErrProtocol)
		}
		if err != nil {
			CloseFDs(fds)
			r.s.log.Warn("devicemodel: malformed message; disconnecting", "client", r.name, "err", err)
			r.reply(Message{Op: m.Op | OpReply, ID: m.ID}, unix.EPROTO, nil, nil)
			return
		}
		result, outFDs, err := r.handle(m, fds)
		CloseFDs(fds)
		if err := r.reply(m, Errno(err), result, outFDs); err != nil {
			return
		}
		if m.Op == OpDestroyClient && err == nil {
			return
		}
	}
}

func (r *remote) reply(req Message, errno unix.Errno, result []byte, fds []int) error {
	m := Message{Op: req.Op | OpReply, ID: req.ID, Payload: EncodeReply(errno, result)}
	var oob []byte
	if len(fds) > 0 {
		oob = unix.UnixRights(fds...)
	}
	r.wmu.Lock()
	defer r.wmu.Unlock()
	_, _, err := r.conn.WriteMsgUnix(m.Encode(nil), oob, nil)
	return err
}

func (r *remote) handle(m Message, fds []int) (result []byte, outFDs []int, err error) {
	if err := CheckPayload(m); err != nil {
		return nil, nil, err
	}
	if m.Op != OpCreateClient && r.kick < 0 {
		return nil, nil, fmt.Errorf("%w: %v before CREATE_CLIENT", unix.EPERM, m.Op)
	}
	switch m.Op {
	case OpCreateClient:
		if r.kick >= 0 {
			return nil, nil, fmt.Errorf("%w: second CREATE_CLIENT", unix.EEXIST)
		}
		c, _ := DecodeCreateRequest(m.Payload)
		if err := r.create(c.Name); err != nil {
			return nil, nil, err
		}
		rep := CreateReply{ClientID: r.id, VMID: r.s.cfg.VMID, Slots: iorequest.IORequestMax,
			BufferSize: iorequest.RequestBufferSize, Timeout: uint32(r.s.d.Timeout().Milliseconds())}
		return rep.Encode(), []int{r.s.d.Buffer().FD(), r.kick, r.doneFD}, nil
	case OpAttachClient:
		r.mu.Lock()
		defer r.mu.Unlock()
		r.attached = true
		for _, t := range r.tickets {
			if t != nil { // requests routed here before ATTACH
				return nil, nil, r.signal()
			}
		}
		return nil, nil, nil
	case OpDestroyClient:
		return nil, nil, nil
	case OpClaimRange:
		rg, _ := DecodeRange(m.Payload)
		return nil, nil, r.s.d.Router().Claim(rg, r)
	case OpUnclaimRange:
		rg, _ := DecodeRange(m.Payload)
		if err := r.s.d.Router().Unclaim(rg, r); err != nil {
			return nil, nil, fmt.Errorf("%w: %v", unix.ENOENT, err)
		}
		return nil, nil, nil
	case OpNotifyFinish:
		n, _ := DecodeNotify(m.Payload)
		return nil, nil, r.notifyFinish(int(n.VCPU))
	case OpIOEventFD, OpIRQFD:
		if len(fds) != 1 {
			return nil, nil, fmt.Errorf("%w: %v needs one eventfd, got %d fds", unix.EBADF, m.Op, len(fds))
		}
		if r.s.cfg.EventFDs == nil {
			return nil, nil, fmt.Errorf("%w: %v not offered by this VM", unix.ENOTSUP, m.Op)
		}
		if m.Op == OpIOEventFD {
			e, _ := DecodeIOEventFD(m.Payload)
			return nil, nil, r.s.cfg.EventFDs.IOEventFD(e, fds[0])
		}
		q, _ := DecodeIRQFD(m.Payload)
		return nil, nil, r.s.cfg.EventFDs.IRQFD(q, fds[0])
	case OpClientPage:
		return r.clientPage()
	case OpMemory:
		if r.s.cfg.Memory == nil {
			return nil, nil, ErrNotShareable
		}
		segs, err := r.s.cfg.Memory()
		if err != nil {
			return nil, nil, err
		}
		if len(segs) > MaxSegments || len(segs) > 250 { // SCM_RIGHTS carries at most 253 fds
			return nil, nil, fmt.Errorf("%w: %d memory segments", unix.E2BIG, len(segs))
		}
		fds := make([]int, len(segs))
		for i, sg := range segs {
			fds[i] = sg.FD
		}
		return EncodeSegments(segs), fds, nil
	}
	return nil, nil, fmt.Errorf("%w: op %v", unix.ENOSYS, m.Op)
}

func (r *remote) create(name string) error {
	if name != "" {
		r.name = fmt.Sprintf("%s#%d", name, r.id)
	}
	kick, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		return fmt.Errorf("eventfd: %w", err)
	}
	done, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		unix.Close(kick)
		return fmt.Errorf("eventfd: %w", err)
	}
	r.kick, r.doneFD = kick, done
	r.done = os.NewFile(uintptr(done), "ioreq-done") // non-blocking: served by the runtime's poller
	go r.completions()
	r.s.log.Info("devicemodel: device model connected", "client", r.name)
	return nil
}

// clientPage is CLIENT_PAGE: it makes the device model's client page, once,
// and sends its memfd (again, if asked again).
func (r *remote) clientPage() ([]byte, []int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.polling == nil {
		mem, fd, err := ioreq.NewSharedMemory("ember-dm-client", ClientPageSize)
		if err != nil {
			return nil, nil, fmt.Errorf("client page: %w", err)
		}
		r.pageFD, r.page, r.polling = fd, mem, clientWord(mem, ClientPagePolling)
		r.handoff, r.kickWord = clientWord(mem, ClientPageHandoff), clientWord(mem, ClientPageKick)
	}
	return EncodeClientPageReply(FeatureFutexHandoff), []int{r.pageFD}, nil
}

// notifyFinish is NOTIFY_FINISH: the HSM path, where the device model asks
// ember to set COMPLETE for it.
func (r *remote) notifyFinish(vcpu int) error {
	r.mu.Lock()
	t := r.tickets[vcpu]
	r.mu.Unlock()
	if t == nil {
		return fmt.Errorf("%w: vCPU %d has no request with this client", unix.EINVAL, vcpu)
	}
	if st := r.s.d.Buffer().State(vcpu); st == iorequest.StateProcessing {
		if err := t.Complete(); err != nil {
			return err
		}
	} else if st != iorequest.StateComplete {
		return &ioreq.TransitionError{Slot: vcpu, From: iorequest.StateProcessing, To: iorequest.StateComplete, Actual: st}
	}
	r.wakeCompleted()
	return nil
}

// cleanup runs when the connection ends, however: ranges released, requests
// in flight failed with ErrClientGone (or woken, if the device model managed
// to complete them), descriptors closed.
func (r *remote) cleanup() {
	r.close()
	n := r.s.d.Router().UnclaimAll(r)
	r.mu.Lock()
	r.gone.Store(true)
	failed := 0
	for i, t := range r.tickets {
		if t == nil {
			continue
		}
		r.tickets[i] = nil
		switch r.s.d.Buffer().State(i) {
		case iorequest.StateComplete: // it managed to finish: let the vCPU have it
			t.Notify()
		case iorequest.StatePending, iorequest.StateProcessing: // still on its side
			if t.Current() {
				t.Fail(ioreq.ErrClientGone)
				failed++
			}
		} // FREE: the vCPU already took the result (it polled)
	}
	if r.done != nil {
		r.done.Close()
		unix.Close(r.kick)
	}
	if r.polling != nil { // gone is set: Submit no longer looks at it
		unix.Munmap(r.page)
		unix.Close(r.pageFD)
		r.polling, r.handoff, r.kickWord = nil, nil, nil
	}
	r.mu.Unlock()
	r.s.log.Warn("devicemodel: device model gone", "client", r.name, "ranges", n, "failed_requests", failed)
	r.s.mu.Lock()
	delete(r.s.conns, r)
	r.s.mu.Unlock()
}

// ParseRights returns the file descriptors of a packet's SCM_RIGHTS
// messages (its out-of-band bytes).
func ParseRights(oob []byte) []int {
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return nil
	}
	var fds []int
	for _, m := range msgs {
		if f, err := unix.ParseUnixRights(&m); err == nil {
			fds = append(fds, f...)
		}
	}
	return fds
}

// CloseFDs closes every descriptor of fds.
func CloseFDs(fds []int) {
	for _, fd := range fds {
		unix.Close(fd)
	}
}

// Errno maps an error to the errno a reply carries: an errno itself,
// EPROTO for ErrProtocol, EEXIST, ENOTSUP and EBUSY for the errors of
// overlapping ranges, unshareable memory and a request in the wrong state,
// EINVAL for anything else.
func Errno(err error) unix.Errno {
	var e unix.Errno
	switch {
	case err == nil:
		return 0
	case errors.As(err, &e):
		return e
	case errors.Is(err, ioreq.ErrOverlap):
		return unix.EEXIST
	case errors.Is(err, ErrProtocol):
		return unix.EPROTO
	case errors.Is(err, ErrNotShareable):
		return unix.ENOTSUP
	case errors.Is(err, ioreq.ErrBadTransition):
		return unix.EBUSY
	}
	return unix.EINVAL
}
