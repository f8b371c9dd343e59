package blk

import (
	"errors"
	"os"
	"sync"
	"sync/atomic"

	"ember/memory"
	"ember/virtio"
	"ember/virtio/internal/queuefd"
)

// How a queue is served.
//
// Each queue starts with one goroutine. It waits for the driver's
// notifications on the queue's kick eventfd itself — KVM's ioeventfd
// signals it (virtio.QueueEventFDs), so no goroutine of the transport's
// wakes in between — and serves the requests it takes where it takes them.
// A wake-up is most of what a short read costs on a host whose CPUs run
// the vCPUs: in the lab a 4 KiB random read cost the earlier shape (a
// transport goroutine passing each notification on to two workers) over
// two sleeps and wake-ups against QEMU's one and a bit, and each landed on
// a CPU a vCPU wanted (docs/performance-log.md, "What a random read costs,
// beside QEMU" and "One goroutine a queue").
//
// A request that may wait for the host's disk must not hold up the ones
// behind it, so before serving one the goroutine puts another to work
// (help), which takes over the queue — the next requests and the
// notifications — while the first waits: a write (on a file system that
// is not memory, or longer than maxNowLen), a flush, a long read, a read
// the page cache does not hold all of (now.go). A deep backlog
// (deepBacklog requests waiting behind the one taken) also puts a second
// to work, so two system calls of the queue overlap when the host has a
// CPU to spare for them, as the earlier two workers did. At most
// maxServers goroutines are started on a queue; one that finds the queue
// empty while another listens for notifications waits, idle, to be put to
// work again: a channel send, which wakes it without a system call when
// the goroutine asking is about to wait itself, and allocates nothing, as
// starting a goroutine can.

// maxServers bounds the goroutines started on one queue: as many of its
// requests that wait for the host's disk are in the host's hands at once.
const maxServers = 16

// deepBacklog is how many requests must wait behind the one a lone
// goroutine took for it to put a second to work: a guest that keeps the
// queue that full has requests to share; one that sends a request or two
// a notification does not pay for a wake-up.
const deepBacklog = 8

// queue is one request queue and the goroutines that serve it. The
// queue's rings are touched under mu; the I/O is not.
type queue struct {
	d         *Disk
	mem       *memory.Guest
	i         int
	interrupt func(int)
	kick      int           // the kick eventfd, which KVM's ioeventfd signals
	kicks     *os.File      // a descriptor of it in Go's poller; closed by Reset
	listening atomic.Bool   // a goroutine waits on kicks, or is about to
	active    atomic.Int32  // goroutines serving requests or listening
	started   atomic.Int32  // goroutines started, at most maxServers
	idle      chan struct{} // a goroutine with nothing to do waits here to help
	done      chan struct{} // closed by Reset
	wg        sync.WaitGroup

	mu     sync.Mutex
	q      *virtio.Queue
	broken bool // the driver broke the ring: nothing more is served
}

// worker is the state of one goroutine serving a queue.
type worker struct {
	d     *Disk
	s     *queue // nil for a request served outside a queue
	i     int
	chain virtio.Chain // the request being served; its slices are reused
	data  [][]byte     // its data buffers, the status byte split off; reused
	count [8]byte      // the kick eventfd's counter, read (kept here: a local one goes to the heap under the race detector)
}

// newQueue returns queue i of d, served once start is called; kick is its
// kick eventfd and kicks a descriptor of it in Go's poller, which Reset
// closes.
func newQueue(d *Disk, mem *memory.Guest, q *virtio.Queue, i int, interrupt func(int), kick int, kicks *os.File) *queue {
	return &queue{d: d, mem: mem, q: q, i: i, interrupt: interrupt, kick: kick, kicks: kicks,
		idle: make(chan struct{}), done: make(chan struct{})}
}

// start runs the queue's first goroutine.
func (s *queue) start() {
	s.started.Add(1)
	s.spawn()
}

// spawn starts a goroutine on the queue, active; the caller counted it in
// started.
func (s *queue) spawn() {
	s.active.Add(1)
	s.wg.Add(1)
	go (&worker{d: s.d, s: s, i: s.i}).run()
}

// help puts one more goroutine to work on the queue — an idle one, or a
// new one unless maxServers were started — and reports whether it did.
// Only a goroutine serving the queue calls it, or Notify while the queue
// is active, so the WaitGroup Reset waits on is never at zero when it
// grows. A nil queue (a request served outside one, as the fuzz target
// does) has no one to put to work.
func (s *queue) help() bool {
	if s == nil {
		return false
	}
	select {
	case s.idle <- struct{}{}:
		return true
	default:
	}
	if s.started.Add(1) > maxServers {
		s.started.Add(-1)
		return false
	}
	s.spawn()
	return true
}

// notify is a notification that did not come through the kick eventfd
// (Notify): a goroutine put to work on it, as a goroutine of ember's
// passing work on to another does, and the goroutine listening for the
// eventfd left asleep; or, if maxServers are all at work already, the
// eventfd signalled.
func (s *queue) notify() {
	if !s.help() {
		queuefd.Signal(s.kick) // EAGAIN (the counter full) still leaves a kick pending
	}
}

// run serves the queue until Reset: it drains the queue, then listens for
// notifications if no other goroutine does, or waits to be asked to help.
func (w *worker) run() {
	s := w.s
	defer s.wg.Done()
	for {
		if !w.serveAndListen() {
			return
		}
		s.active.Add(-1)
		select {
		case <-s.idle:
			s.active.Add(1)
		case <-s.done:
			return
		}
	}
}

// serveAndListen drains the queue and, while no other goroutine listens
// for notifications, listens and drains again; it returns true when
// another listens, false when Reset closed the kick eventfd.
func (w *worker) serveAndListen() bool {
	s := w.s
	for {
		w.drain()
		if !s.listening.CompareAndSwap(false, true) {
			return true
		}
		_, err := s.kicks.Read(w.count[:])
		s.listening.Store(false)
		if err != nil {
			return false
		}
	}
}

// stop ends the queue's goroutines and waits for them: requests they are
// serving finish first, so nothing the guest was told is done is undone.
func (s *queue) stop() {
	s.kicks.Close()
	close(s.done)
	s.wg.Wait()
}

// drain serves available requests until there are none, then interrupts
// the driver if it wants to hear of what was returned. Every goroutine ends
// a drain that way after its last Push, so no completion goes unannounced.
func (w *worker) drain() {
	s := w.s
	for {
		s.mu.Lock()
		if s.broken {
			s.mu.Unlock()
			return
		}
		ok, err := s.q.PopInto(s.mem, &w.chain)
		if err != nil {
			err = s.drop(err)
			s.mu.Unlock()
			if err != nil {
				s.fail(err)
				return
			}
			continue
		}
		if !ok {
			need := s.q.NeedsInterrupt(s.mem)
			s.mu.Unlock()
			if need {
				s.interrupt(s.i)
			}
			return
		}
		deep := s.q.Backlog(s.mem) >= deepBacklog
		s.mu.Unlock()
		if deep && s.alone() {
			s.help()
		}
		if !s.push(w.chain.Head, w.serve(&w.chain)) {
			return
		}
	}
}

// alone reports whether one goroutine serves requests of the queue: no
// other but one listening for notifications. (A hint: it may change as it
// is read.)
func (s *queue) alone() bool {
	n := s.active.Load()
	if s.listening.Load() {
		n--
	}
	return n <= 1
}

// push returns a served request to the driver, and false if the ring is
// broken (by the driver, found now or by another goroutine before).
func (s *queue) push(head uint16, n uint32) bool {
	s.mu.Lock()
	if s.broken {
		s.mu.Unlock()
		return false
	}
	err := s.q.Push(s.mem, head, n)
	s.mu.Unlock()
	if err != nil {
		s.fail(err)
		return false
	}
	return true
}

// drop answers a malformed chain with nothing written and returns nil, or
// returns any other error Pop returned, for fail. Called with mu held.
func (s *queue) drop(err error) error {
	var ce *virtio.ChainError
	if !errors.As(err, &ce) {
		return err
	}
	s.d.log.Warn("virtio-blk: malformed request dropped", "queue", s.i, "err", err)
	return s.q.Push(s.mem, ce.Head, 0)
}

// fail stops serving a queue the driver broke and asks the driver, through
// the transport, to reset the device.
func (s *queue) fail(err error) {
	s.mu.Lock()
	first := !s.broken
	s.broken = true
	s.mu.Unlock()
	if !first {
		return
	}
	s.d.log.Error("virtio-blk: queue stopped; the driver must reset the device", "queue", s.i, "err", err)
	s.d.mu.Lock()
	e := s.d.events
	s.d.mu.Unlock()
	if e != nil {
		e.NeedsReset(err)
	}
}
