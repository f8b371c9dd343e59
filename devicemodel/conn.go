package devicemodel

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"ember/acrn/iorequest"
	"ember/internal/sysmon"
	"ember/ioreq"

	"golang.org/x/sys/unix"

	"ember/acrn"
)

// Conn is the device-model end of the protocol: what an out-of-process device
// model links to talk to ember. Dial creates the I/O request client and maps
// the request buffer; Claim registers ranges; Serve handles requests until the
// connection ends.
//
//	c, err := devicemodel.Dial("/run/ember/vm1.ioreq", "uart")
//	c.Claim(ioreq.Range{Type: iorequest.ReqPortIO, Start: 0x3f8, End: 0x3ff})
//	c.Attach()
//	c.Serve(ioreq.HandlerFunc(func(req *iorequest.IORequest) { ... }))
type Conn struct {
	conn  *net.UnixConn
	info  CreateReply
	buf   *ioreq.Buffer
	kick  *os.File
	done  int
	reqMu sync.Mutex // one request/reply at a time

	// page is the client page (CLIENT_PAGE) and polling the word in it
	// that tells ember this side is looking at the buffer; nil when ember
	// does not offer it (then every request is kicked).
	page    []byte
	polling *atomic.Uint32
	// handoff and kickWord are the page's futex hand-off words, nil
	// where ember does not offer it (FeatureFutexHandoff).
	handoff, kickWord *atomic.Uint32
	closed            atomic.Bool

	mu         sync.Mutex
	nextID     uint32
	ranges     []ioreq.Range
	pollWindow time.Duration // SetPollWindow; 0: ioreq.DefaultPollWindow
	noFutex    bool          // SetFutexHandoff(false)

	serving   bool // Serve owns buf, done and page, and releases them
	closeOnce sync.Once
}

// Dial connects to ember's socket at path and creates an I/O request client
// named name (CREATE_CLIENT): it receives and maps the request buffer and the
// two eventfds, and the client page (CLIENT_PAGE) where ember offers it.
func Dial(path, name string) (*Conn, error) {
	uc, err := net.DialUnix("unixpacket", nil, &net.UnixAddr{Name: path, Net: "unixpacket"})
	if err != nil {
		return nil, fmt.Errorf("devicemodel: dial: %w", err)
	}
	c := &Conn{conn: uc, done: -1}
	res, fds, err := c.call(OpCreateClient, CreateRequest{Name: name}.Encode(), -1)
	if err != nil {
		uc.Close()
		return nil, err
	}
	if c.info, err = DecodeCreateReply(res); err != nil || len(fds) != 3 || c.info.BufferSize != iorequest.RequestBufferSize {
		CloseFDs(fds)
		uc.Close()
		return nil, fmt.Errorf("%w: bad CREATE_CLIENT reply (%d fds, %v)", ErrProtocol, len(fds), err)
	}
	buf, err := ioreq.MapBuffer(fds[0])
	unix.Close(fds[0])
	if err != nil {
		CloseFDs(fds[1:])
		uc.Close()
		return nil, fmt.Errorf("devicemodel: %w", err)
	}
	c.buf = buf
	c.kick = os.NewFile(uintptr(fds[1]), "ioreq-kick") // ember made it non-blocking: read through the poller
	c.done = fds[2]
	if err := c.mapClientPage(); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// mapClientPage asks for the client page (CLIENT_PAGE) and maps it. An
// ember from before the page answers EPROTO (an unknown op): then there is
// no page, and ember kicks every request, as it always did.
func (c *Conn) mapClientPage() error {
	res, fds, err := c.call(OpClientPage, nil, -1)
	if errors.Is(err, unix.EPROTO) || errors.Is(err, unix.ENOSYS) {
		return nil
	}
	if err != nil {
		return err
	}
	defer CloseFDs(fds)
	features, err := DecodeClientPageReply(res)
	if err != nil || len(fds) != 1 {
		return fmt.Errorf("%w: bad CLIENT_PAGE reply (%d fds, %v)", ErrProtocol, len(fds), err)
	}
	page, err := ioreq.MapShared(fds[0], ClientPageSize)
	if err != nil {
		return fmt.Errorf("devicemodel: client page: %w", err)
	}
	c.page, c.polling = page, clientWord(page, ClientPagePolling)
	if features&FeatureFutexHandoff != 0 {
		c.handoff, c.kickWord = clientWord(page, ClientPageHandoff), clientWord(page, ClientPageKick)
	}
	return nil
}

// setPolling stores the polling word of the client page, if ember offered
// one: 1 while Serve looks at the buffer (ember need not kick), 0 before it
// looks one last time and sleeps.
func (c *Conn) setPolling(on bool) {
	if c.polling == nil {
		return
	}
	var v uint32
	if on {
		v = 1
	}
	c.polling.Store(v)
}

// SetPollWindow sets how long Serve goes on looking at the buffer after the
// last request before it sleeps on the kick eventfd: at least min, adapted
// up to ioreq.MaxPollWindow to how soon the next request comes (zero:
// ioreq.DefaultPollWindow; negative: never look, sleep at once). Polling
// costs this side a CPU while it lasts, and saves both sides a wake-up per
// request. Call it before Serve.
func (c *Conn) SetPollWindow(min time.Duration) {
	c.mu.Lock()
	c.pollWindow = min
	c.mu.Unlock()
}

// Info returns what CREATE_CLIENT answered.
func (c *Conn) Info() CreateReply { return c.info }

// Buffer returns the mapped request buffer.
func (c *Conn) Buffer() *ioreq.Buffer { return c.buf }

// call sends one request (with fd attached if fd >= 0) and waits for its
// reply, returning the result and any fds that came with it.
func (c *Conn) call(op Op, payload []byte, fd int) ([]byte, []int, error) {
	c.reqMu.Lock()
	defer c.reqMu.Unlock()
	c.mu.Lock()
	c.nextID++
	id := c.nextID
	c.mu.Unlock()
	m := Message{Op: op, ID: id, Payload: payload}
	var oob []byte
	if fd >= 0 {
		oob = unix.UnixRights(fd)
	}
	if _, _, err := c.conn.WriteMsgUnix(m.Encode(nil), oob, nil); err != nil {
		return nil, nil, fmt.Errorf("devicemodel: %v: %w", op, err)
	}
	pkt := make([]byte, MaxMessageSize)
	roob := make([]byte, unix.CmsgSpace(4*(MaxSegments+3)))
	n, oobn, flags, _, err := c.conn.ReadMsgUnix(pkt, roob)
	if err != nil {
		return nil, nil, fmt.Errorf("devicemodel: %v reply: %w", op, err)
	}
	if n == 0 {
		return nil, nil, fmt.Errorf("devicemodel: %v: %w", op, ioreq.ErrClientGone)
	}
	fds := ParseRights(roob[:oobn])
	rm, err := DecodeMessage(pkt[:n])
	if err == nil && (rm.Op != op|OpReply || rm.ID != id || flags&(unix.MSG_TRUNC|unix.MSG_CTRUNC) != 0) {
		err = fmt.Errorf("%w: %v reply is %v id %d", ErrProtocol, op, rm.Op, rm.ID)
	}
	var rep Reply
	if err == nil {
		rep, err = DecodeReply(rm.Payload)
	}
	if err == nil {
		err = rep.Err()
	}
	if err != nil {
		CloseFDs(fds)
		return nil, nil, fmt.Errorf("devicemodel: %v: %w", op, err)
	}
	return rep.Result, fds, nil
}

// Claim registers r for this client (CLAIM_RANGE). EEXIST: it overlaps
// another registration.
func (c *Conn) Claim(r ioreq.Range) error {
	if _, _, err := c.call(OpClaimRange, EncodeRange(r), -1); err != nil {
		return err
	}
	c.mu.Lock()
	c.ranges = append(c.ranges, r)
	c.mu.Unlock()
	return nil
}

// Unclaim removes a registration made with Claim (UNCLAIM_RANGE).
func (c *Conn) Unclaim(r ioreq.Range) error {
	if _, _, err := c.call(OpUnclaimRange, EncodeRange(r), -1); err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for i, x := range c.ranges {
		if x == r {
			c.ranges = append(c.ranges[:i:i], c.ranges[i+1:]...)
			break
		}
	}
	return nil
}

// Attach tells ember the client is serving (ATTACH_CLIENT): requests for
// its ranges are signalled from now on.
func (c *Conn) Attach() error {
	_, _, err := c.call(OpAttachClient, nil, -1)
	return err
}

// NotifyFinish asks ember to complete vCPU vcpu's request (NOTIFY_FINISH),
// the HSM way; Serve instead stores COMPLETE itself and signals the done
// eventfd.
func (c *Conn) NotifyFinish(vcpu int) error {
	var p [acrn.IOReqNotifySize]byte
	n := acrn.IOReqNotify{VMID: c.info.VMID, VCPU: uint32(vcpu)}
	_ = n.Encode(p[:])
	_, _, err := c.call(OpNotifyFinish, p[:], -1)
	return err
}

// IOEventFD registers (or with IOEventFDFlagDeassign removes) an ioeventfd
// on the eventfd fd (IOEVENTFD).
func (c *Conn) IOEventFD(e acrn.IOEventFD, fd int) error {
	var p [acrn.IOEventFDSize]byte
	e.FD = uint32(fd)
	_ = e.Encode(p[:])
	_, _, err := c.call(OpIOEventFD, p[:], fd)
	return err
}

// IRQFD registers (or with IRQFDFlagDeassign removes) an irqfd on the
// eventfd fd (IRQFD).
func (c *Conn) IRQFD(q acrn.IRQFD, fd int) error {
	var p [acrn.IRQFDSize]byte
	q.FD = int32(fd)
	_ = q.Encode(p[:])
	_, _, err := c.call(OpIRQFD, p[:], fd)
	return err
}

// Memory asks for the guest RAM segments (MEMORY). Each Segment's FD is a
// memfd now owned by the caller, to mmap at Offset. A VM whose RAM cannot be
// shared answers ENOTSUP.
func (c *Conn) Memory() ([]Segment, error) {
	res, fds, err := c.call(OpMemory, nil, -1)
	if err != nil {
		return nil, err
	}
	segs, err := DecodeSegments(res)
	if err == nil && len(fds) != len(segs) {
		err = fmt.Errorf("%w: %d segments, %d fds", ErrProtocol, len(segs), len(fds))
	}
	if err != nil {
		CloseFDs(fds)
		return nil, err
	}
	for i := range segs {
		segs[i].FD = fds[i]
	}
	return segs, nil
}

// Serve handles requests with h until the connection is closed (by Close or
// by ember). On each kick it scans the buffer for PROCESSING requests that lie
// in a range this client claimed, handles each (rule (d)), writes the result
// into the slot and stores COMPLETE as the last write, then signals the done
// eventfd once. After a request it goes on looking at the buffer for a while
// (SetPollWindow), and says so in the client page, so that ember need not
// kick it; before it sleeps it clears the word and looks once more, so that
// a request ember did not kick for is not left behind.
func (c *Conn) Serve(h ioreq.Handler) error {
	c.mu.Lock()
	if c.serving {
		c.mu.Unlock()
		return errors.New("devicemodel: Serve called twice")
	}
	c.serving = true
	window, noFutex := c.pollWindow, c.noFutex
	c.mu.Unlock()
	defer c.release()
	go c.watch()
	if window == 0 {
		window = ioreq.DefaultPollWindow
	}
	poll := ioreq.NewPollWindow(window)
	if c.handoff != nil && !noFutex {
		return c.serveFutex(h, poll)
	}
	var b [8]byte
	for {
		asleep := time.Now()
		if _, err := c.kick.Read(b[:]); err != nil {
			if errors.Is(err, os.ErrClosed) {
				return nil
			}
			return err
		}
		poll.Slept(time.Since(asleep))
		for {
			c.setPolling(true)
			c.Poll(h)
			c.pollAWhile(h, poll.Get())
			// Store, then look: ember stores PROCESSING, then loads the
			// word (remote.Submit). Either it saw 0 and kicks, or this
			// look finds the request.
			c.setPolling(false)
			if c.Poll(h) == 0 {
				break
			}
		}
	}
}

// SetFutexHandoff chooses whether Serve uses the futex hand-off where
// ember offers it (the default): Serve's thread then sleeps in FUTEX_WAIT on
// the client page's kick word, which ember changes and wakes, and wakes a
// sleeping vCPU by FUTEX_WAKE on its slot's state word (docs/ioreq-protocol.md,
// "Futex hand-off"). Each hand-off is then one thread waking the other in
// the kernel, with no eventfd and no poller thread between, and where the
// two threads share a CPU they take turns on it without an inter-processor
// interrupt. Without it, the kick and done eventfds. Call it before Serve.
func (c *Conn) SetFutexHandoff(on bool) {
	c.mu.Lock()
	c.noFutex = !on
	c.mu.Unlock()
}

// futexSlice bounds one FUTEX_WAIT of serveFutex, so that a Close that
// comes between its check and its wait ends Serve within it.
const futexSlice = 100 * time.Millisecond

// serveFutex is Serve with the futex hand-off: the same looks and polling
// as with the eventfds, but the sleep is a FUTEX_WAIT on the kick word, on
// this goroutine's own thread.
func (c *Conn) serveFutex(h ioreq.Handler, poll *ioreq.PollWindow) error {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	c.handoff.Store(1)
	// The thread holds its P in FUTEX_WAIT and never blocks in Go: it goes
	// through the scheduler now and then, after its work, or sysmon would
	// keep taking the P (package sysmon), and the process has a P more
	// while it serves, so the handler's goroutines keep the Ps it had.
	sysmon.Budget.Start(sysmon.Device)
	defer sysmon.Budget.End(sysmon.Device)
	pace := sysmon.NewPacer(sysmon.TicksPerMs())
	for !c.closed.Load() {
		// Load the kick word, clear the polling word, look: ember stores
		// PROCESSING, loads the polling word, then changes the kick word.
		// Either this look finds the request, or the word has changed
		// since it was loaded and the wait returns at once.
		seq := c.kickWord.Load()
		c.setPolling(false)
		if c.Poll(h) == 0 {
			asleep := time.Now()
			ioreq.FutexWait(c.kickWord, seq, futexSlice)
			if c.kickWord.Load() == seq {
				continue // a time-out, or Close
			}
			poll.Slept(time.Since(asleep))
		}
		c.setPolling(true)
		c.Poll(h)
		c.pollAWhile(h, poll.Get())
		pace.Maybe(sysmon.Cputicks())
	}
	return nil
}

// pollAWhile keeps looking at the buffer for window after the last request
// before Serve blocks on the kick eventfd again: a guest that just made one
// access usually makes the next soon, and catching it without a wake-up
// saves a wake-up on each side. The window adapts (PollWindow) to how soon
// the next access comes; the vCPU side does the same (Config.PollWindow).
//
// It reads the clock only every 64 looks, and yields the processor only
// where the process has one (GOMAXPROCS 1) and another goroutine may need
// it: runtime.Gosched puts this goroutine on the global run queue and wakes
// an idle P's thread to look for work, a futex wake-up on each call, and
// that thread then competes for a CPU with the vCPU this side is waiting
// for. With more Ps the other goroutines have theirs.
func (c *Conn) pollAWhile(h ioreq.Handler, window time.Duration) {
	if window <= 0 {
		return
	}
	yield := runtime.GOMAXPROCS(0) == 1
	last := time.Now()
	for n := 1; ; n++ {
		if c.Poll(h) > 0 {
			last = time.Now()
		}
		if n&63 == 0 {
			if time.Since(last) >= window {
				return
			}
			if yield {
				runtime.Gosched()
			}
		}
	}
}

// Poll handles whatever requests are waiting for this client now and
// returns how many; Serve calls it on every kick. It signals the done
// eventfd once if a vCPU whose request it completed is no longer looking
// at its slot (completion_polling 0).
func (c *Conn) Poll(h ioreq.Handler) int {
	c.mu.Lock()
	ranges := c.ranges
	c.mu.Unlock()
	n, wake := 0, uint32(0) // wake: the slots whose vCPU needs a signal
	for i := range iorequest.IORequestMax {
		// The acquire: PROCESSING loaded, the body ember wrote before
		// publishing is visible (rules (a)-(c)).
		if c.buf.State(i) != iorequest.StateProcessing {
			continue
		}
		req, err := c.buf.Request(i)
		if err != nil || req.Validate() != nil || !mine(ranges, &req) {
			continue
		}
		h.HandleIORequest(&req)
		if c.buf.WriteBody(i, &req) != nil {
			continue
		}
		// COMPLETE is the last write of handling: it releases the value.
		if c.buf.Complete(i) == nil {
			n++
			// A vCPU still looking at its slot sees COMPLETE by itself;
			// one that has stopped looking needs the signal. Loaded after
			// the store of COMPLETE (ioreq.Buffer.SetPolling).
			if !c.buf.Polling(i) {
				wake |= 1 << i
			}
		}
	}
	if wake != 0 && c.handoff != nil && c.handoff.Load() == 1 {
		c.wakeVCPUs(wake)
		wake = 0
	}
	if wake != 0 {
		var one [8]byte
		binary.LittleEndian.PutUint64(one[:], 1)
		unix.Write(c.done, one[:])
	}
	return n
}

// wakeVCPUs is Poll's signal under the futex hand-off: a FUTEX_WAKE on the
// state word of each slot in the mask (completed, its vCPU no longer
// looking). A vCPU sleeps there only while the state it loaded is
// unchanged, so a wake that comes before its FUTEX_WAIT is not needed.
func (c *Conn) wakeVCPUs(mask uint32) {
	for i := range iorequest.IORequestMax {
		if mask&(1<<i) != 0 {
			ioreq.FutexWake(c.buf.StateWord(i))
		}
	}
}

func mine(ranges []ioreq.Range, req *iorequest.IORequest) bool {
	addr, size := ioreq.Target(req)
	for _, r := range ranges {
		if r.Type == req.Type && r.Contains(addr, size) {
			return true
		}
	}
	return false
}

// watch waits for ember to close the connection while Serve runs, and then
// ends Serve. It owns the socket's read side from then on, so the setup calls
// (Claim, Attach...) must come before Serve.
func (c *Conn) watch() {
	b := make([]byte, MaxMessageSize)
	for {
		n, err := c.conn.Read(b)
		if err != nil || n == 0 {
			c.Close()
			return
		}
	}
}

// Close destroys the client: the connection closes, ember releases its ranges,
// and Serve returns.
func (c *Conn) Close() error {
	var err error
	c.closeOnce.Do(func() {
		err = c.conn.Close()
		c.closed.Store(true)
		c.kick.Close() // ends Serve's read
		if c.kickWord != nil {
			ioreq.FutexWake(c.kickWord) // ends serveFutex's wait
		}
		c.mu.Lock()
		serving := c.serving
		c.mu.Unlock()
		if !serving {
			c.release()
		}
	})
	return err
}

// release unmaps the buffer and the client page and closes the done
// eventfd, once nothing can be using them: from Serve on its way out, or from
// Close if Serve never ran.
func (c *Conn) release() {
	unix.Close(c.done)
	c.buf.Close()
	if c.page != nil {
		unix.Munmap(c.page)
	}
}
