package blk

import (
	"errors"
	"sync"
	"sync/atomic"

	"golang.org/x/sys/unix"

	"ember/memory"
	"ember/virtio"
)

// How a queue is served.
//
// The disk has a thread of its own (devthread.Thread, as virtio-net's
// queues do): one epoll waits on every queue's kick eventfd, which KVM's
// ioeventfd signals on the guest's notification (virtio.QueueEventFDs), and
// the thread serves the requests it takes where it takes them when they
// cannot wait for the host's disk: a short read the page cache or a memory
// file system holds (now.go), a short write to memory, GET_ID, a request
// refused. One thread is woken a notification, and no goroutine: in the lab
// a 4 KiB random read's cost is mostly its wake-ups, which land on CPUs the
// vCPUs want, and a goroutine in Go's poller took about twice QEMU's
// (docs/performance-log.md, "What a random read costs, beside QEMU" and
// "A thread of the disk's own, serving what cannot wait").
//
// A request that may wait — a write (on a file system that is not memory,
// or longer than maxNowLen), a flush, a hole punched, a long read, a read
// the page cache does not hold all of — is handed to a goroutine of the
// queue's, so the requests behind it are not held up: an idle one, or a
// new one, up to maxServers a queue, as QEMU's thread pool takes its
// event loop's I/O. The goroutine returns the request to the driver and
// waits for the next. With maxServers at work the thread waits for one of
// them to finish: that many of a queue's requests are in the host's hands
// at once.

// maxServers bounds the goroutines started on one queue: as many of its
// requests that wait for the host's disk are in the host's hands at once.
const maxServers = 16

// queue is one request queue, served by the disk's thread (a
// devthread.Server) and by goroutines it hands requests to. The queue's
// rings are touched under mu; the I/O is not.
type queue struct {
	d         *Disk
	mem       *memory.Guest
	i         int
	interrupt func(int)
	kick      int // the kick eventfd, which KVM's ioeventfd signals

	// The thread's own.
	th      worker       // serves what cannot wait, on the thread
	noted   bool         // the kick eventfd had an event since the last drain
	count   [8]byte      // the kick eventfd's counter, read (kept here: a local one goes to the heap under the race detector)
	started atomic.Int32 // goroutines started, at most maxServers (read by tests)

	free chan *worker  // goroutines waiting for a request to serve
	done chan struct{} // closed by stop
	wg   sync.WaitGroup

	mu     sync.Mutex
	q      *virtio.Queue
	broken bool // the driver broke the ring: nothing more is served
}

// worker is the state of the thread or of one goroutine serving a queue.
type worker struct {
	d      *Disk
	s      *queue // nil for a request served outside a queue
	i      int
	wait   bool          // it may wait for the host's disk: a goroutine, not the thread
	alone  bool          // the thread's: no request waits behind the one it holds
	chain  virtio.Chain  // the request being served; its slices are reused
	data   [][]byte      // its data buffers, the status byte split off; reused
	handed chan struct{} // a goroutine's: a request was handed to it
}

// newQueue returns queue i of d, served once the disk's thread starts;
// kick is its kick eventfd.
func newQueue(d *Disk, mem *memory.Guest, q *virtio.Queue, i int, interrupt func(int), kick int) *queue {
	s := &queue{d: d, mem: mem, q: q, i: i, interrupt: interrupt, kick: kick,
		free: make(chan *worker, maxServers), done: make(chan struct{})}
	s.th = worker{d: d, s: s, i: i}
	return s
}

// Begin is devthread.Server: it serves what the driver queued before the
// thread started.
func (s *queue) Begin() { s.drain() }

// Note is devthread.Server: the kick eventfd had an event, which it
// clears; the queue is drained at ServeNoted.
func (s *queue) Note(unix.EpollEvent) {
	unix.Read(s.kick, s.count[:])
	s.noted = true
}

// ServeNoted is devthread.Server: it drains the queue if it was kicked.
func (s *queue) ServeNoted() {
	if s.noted {
		s.noted = false
		s.drain()
	}
}

// Timeout is devthread.Server: the queue waits for nothing but its kicks.
func (s *queue) Timeout() int { return -1 }

// stop ends the queue's goroutines, the thread having stopped, and waits
// for them: requests they are serving finish first, so nothing the guest
// was told is done is undone.
func (s *queue) stop() {
	close(s.done)
	s.wg.Wait()
}

// drain serves available requests on the thread until there are none,
// handing each that may wait to a goroutine, then interrupts the driver if
// it wants to hear of what was returned. A request the thread served goes
// back to the driver under the same hold of mu as the next is taken.
func (s *queue) drain() {
	w := &s.th
	s.mu.Lock()
	for {
		if s.broken {
			s.mu.Unlock()
			return
		}
		ok, err := s.q.PopInto(s.mem, &w.chain)
		if err != nil {
			if err = s.drop(err); err != nil {
				s.mu.Unlock()
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
		w.alone = !s.q.Offered(s.mem)
		s.mu.Unlock()
		n, served := w.serve(&w.chain)
		if !served {
			s.handOff()
			s.mu.Lock()
			continue
		}
		s.mu.Lock()
		if !s.pushLocked(w.chain.Head, n) {
			return
		}
	}
}

// handOff gives the request the thread holds to a goroutine — an idle one,
// a new one unless maxServers were started, or else the first to finish —
// and takes that goroutine's spare chain in exchange.
func (s *queue) handOff() {
	var g *worker
	select {
	case g = <-s.free:
	default:
		if s.started.Load() < maxServers {
			s.started.Add(1)
			g = &worker{d: s.d, s: s, i: s.i, wait: true, handed: make(chan struct{}, 1)}
			s.wg.Add(1)
			go g.run()
		} else {
			s.announce() // what the thread served before it waits
			g = <-s.free
		}
	}
	g.chain, s.th.chain = s.th.chain, g.chain
	g.handed <- struct{}{}
}

// run is a goroutine of the queue's: it serves each request handed to it,
// returns it to the driver and interrupts the driver if it wants to hear
// of it, until stop.
func (w *worker) run() {
	s := w.s
	defer s.wg.Done()
	for {
		select {
		case <-w.handed:
		case <-s.done:
			return
		}
		n, _ := w.serve(&w.chain)
		s.push(w.chain.Head, n)
		s.free <- w
	}
}

// push returns a request a goroutine served to the driver, unless the
// ring is broken (by the driver, found now or by another goroutine
// before), and interrupts the driver if it wants to hear of it.
func (s *queue) push(head uint16, n uint32) {
	s.mu.Lock()
	if !s.pushLocked(head, n) {
		return
	}
	need := s.q.NeedsInterrupt(s.mem)
	s.mu.Unlock()
	if need {
		s.interrupt(s.i)
	}
}

// pushLocked returns a served request to the driver, with mu held, and
// reports whether the queue is still served. When it is not — the ring was
// broken before, or Push finds it broken now (then it calls fail) — mu is
// released and nothing is returned. The thread (drain) and the goroutines
// (push) return requests through it alike.
func (s *queue) pushLocked(head uint16, n uint32) bool {
	if s.broken {
		s.mu.Unlock()
		return false
	}
	if err := s.q.Push(s.mem, head, n); err != nil {
		s.mu.Unlock()
		s.fail(err)
		return false
	}
	return true
}

// announce interrupts the driver if it wants to hear of the requests
// returned so far.
func (s *queue) announce() {
	s.mu.Lock()
	need := s.q.NeedsInterrupt(s.mem)
	s.mu.Unlock()
	if need {
		s.interrupt(s.i)
	}
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
	s.d.needsReset(err)
}
