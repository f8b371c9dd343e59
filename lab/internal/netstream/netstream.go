// Package netstream is the lab's TCP end of the network benchmark (`go run
// ./lab net`): a stream server, listening on the benchmark TAP's lab end,
// that the guest program (internal/linuxguest/netbench) connects to, and
// that times on the lab's clock the stream the guest sends and the one it
// sends the guest. Timing on the lab's side, not the guest's, keeps a
// guest clock that a VMM runs slow or fast out of the measures.
package netstream

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"
)

// The network benchmark's measures, as the lab's side timed them: the keys
// of Results' map.
const (
	// MeasureGuestSend is the stream the guest sent the lab ("send"), MB/s.
	MeasureGuestSend = "guest→lab MB/s"
	// MeasureGuestRecv is the stream the lab sent the guest ("recv"), MB/s.
	MeasureGuestRecv = "lab→guest MB/s"
	// MeasureRoundTrips is one-byte requests the guest sent and the lab
	// answered, one at a time ("rr"), per second: netperf's TCP_RR. A
	// stream's rate is set by its round trip once its window is full, and
	// this measures that round trip alone — a packet's way through the VMM
	// and back, with nothing queued behind it.
	MeasureRoundTrips = "round trips/s"
)

// Measures are the network benchmark's measures, in the table's order; a
// boot whose guest ran every test has every one.
var Measures = []string{MeasureGuestSend, MeasureGuestRecv, MeasureRoundTrips}

// A Meter measures what a stream cost beside its rate: the Server calls it
// as a stream starts, and the function it returns as the stream ends, with
// the megabytes moved. The measures that returns join the boot's, each
// name led by the stream's (CostName). The lab's benchmark meters with
// bootcost's snapshots, so a stream says how much of the lab's CPU, and
// whose, each megabyte took.
type Meter func() (end func(mb float64) map[string]float64)

// Streams are the measures of the two streams a Meter meters.
var Streams = []string{MeasureGuestSend, MeasureGuestRecv}

// CostName is the boot's name of a Meter's measure cost of stream, one of
// Streams: "guest→lab " and the measure.
func CostName(stream, cost string) string {
	what, _, _ := strings.Cut(stream, " ")
	return what + " " + cost
}

// streamTime is how long the lab's side streams to the guest; the guest
// streams to it for as long (internal/linuxguest/netbench's SendTime).
const streamTime = 5 * time.Second

// streamChunk is the size of the lab side's reads and writes.
const streamChunk = 128 << 10

// Server is the lab's end of the network benchmark: it accepts the
// guest program's connections (internal/linuxguest/netbench) and times,
// on the lab's clock, the stream the guest sends ("send") and the one it
// sends the guest ("recv"). One Server serves every boot of a run: Reset
// before a boot, Results after it.
type Server struct {
	ln       net.Listener
	meter    Meter         // nil: the streams' rates alone
	stream   time.Duration // how long a "recv" stream lasts
	mu       sync.Mutex
	boot     int                   // Resets so far: a connection's results are its boot's alone
	conns    map[net.Conn]struct{} // the connections being served
	measure  map[string]float64
	errs     []error
	handlers sync.WaitGroup // one for each connection being served
	done     chan struct{}  // closed when the accept loop ends
}

// NewServer serves ln until Close, metering each stream with meter unless
// it is nil.
func NewServer(ln net.Listener, meter Meter) *Server { return newServer(ln, meter, streamTime) }

// newServer is NewServer with "recv" streams of the given length (a
// test's, shorter).
func newServer(ln net.Listener, meter Meter, stream time.Duration) *Server {
	s := &Server{ln: ln, meter: meter, stream: stream, conns: map[net.Conn]struct{}{}, measure: map[string]float64{}, done: make(chan struct{})}
	go s.serve()
	return s
}

// serve accepts connections until the listener closes, and serves each
// on a goroutine of its own (serveConn).
func (s *Server) serve() {
	defer close(s.done)
	for {
		c, err := s.ln.Accept()
		if err != nil {
			return
		}
		s.mu.Lock()
		boot := s.boot
		s.conns[c] = struct{}{}
		s.handlers.Add(1)
		s.mu.Unlock()
		go s.serveConn(c, boot)
	}
}

// serveConn serves one connection, accepted during boot, and keeps what it
// measured if no Reset came since. The guest program makes one connection
// at a time, but a guest that dies mid-stream (a triple fault in the lab)
// leaves its connection behind: the lab's reads from it or writes to it
// block until the deadline, the stream's length and a minute on. Served in
// turn, the next boot's connection would wait that long in the accept
// queue, its stream stalled against a window nobody opened (the guest's
// tcp_info said "rwnd-limited 7.9 s" of 8), and counted as that boot's
// rate; Reset closes such a connection, and its error is not the next
// boot's.
func (s *Server) serveConn(c net.Conn, boot int) {
	defer s.handlers.Done()
	what, mbs, cost, err := s.handle(c)
	c.Close()
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.conns, c)
	if boot != s.boot {
		return
	}
	if err != nil {
		s.errs = append(s.errs, fmt.Errorf("%s: %w", what, err))
		return
	}
	s.measure[what] = mbs
	for k, v := range cost {
		s.measure[CostName(what, k)] = v
	}
}

// handle serves one connection and returns its measure and value, and
// what the stream cost where the Server meters it.
func (s *Server) handle(c net.Conn) (string, float64, map[string]float64, error) {
	c.SetDeadline(time.Now().Add(s.stream + time.Minute))
	r := bufio.NewReaderSize(c, streamChunk)
	line, err := r.ReadString('\n')
	if err != nil {
		return "request", 0, nil, err
	}
	switch strings.TrimSpace(line) {
	case "send":
		mbs, cost, err := s.metered(func() (float64, float64, map[string]float64, error) {
			mbs, mb, err := s.receive(r)
			return mbs, mb, nil, err
		})
		return MeasureGuestSend, mbs, cost, err
	case "recv":
		mbs, cost, err := s.metered(func() (float64, float64, map[string]float64, error) {
			tc := c.(*net.TCPConn)
			mbs, mb, err := s.send(tc, r)
			return mbs, mb, senderInfo(tc, mb), err
		})
		return MeasureGuestRecv, mbs, cost, err
	case "rr":
		rate, err := answer(c, r)
		return MeasureRoundTrips, rate, nil, err
	}
	return "request", 0, nil, fmt.Errorf("unknown request %q", line)
}

// metered runs stream, which returns its MB/s, megabytes and measures of
// its own (the lab sender's, SenderMeasures), under the Server's Meter,
// and returns its rate and what it cost: its own measures and the
// Meter's.
func (s *Server) metered(stream func() (mbs, mb float64, own map[string]float64, err error)) (float64, map[string]float64, error) {
	var end func(mb float64) map[string]float64
	if s.meter != nil {
		end = s.meter()
	}
	mbs, mb, own, err := stream()
	if err != nil {
		return 0, nil, err
	}
	cost := maps.Clone(own)
	if end != nil {
		if cost == nil {
			cost = map[string]float64{}
		}
		maps.Copy(cost, end(mb))
	}
	return mbs, cost, nil
}

// receive reads the guest's stream to its end and returns MB/s, from the
// request to the last byte, and the megabytes read.
func (s *Server) receive(r io.Reader) (float64, float64, error) {
	start := time.Now()
	n, err := io.CopyBuffer(io.Discard, r, make([]byte, streamChunk))
	if err != nil {
		return 0, 0, err
	}
	if n == 0 {
		return 0, 0, errors.New("the guest sent nothing")
	}
	return float64(n) / time.Since(start).Seconds() / 1e6, float64(n) / 1e6, nil
}

// send streams to the guest for s.stream, closes its side, and returns MB/s
// from the request to the guest's count of what it read, which must be
// everything sent, and the megabytes sent.
func (s *Server) send(c *net.TCPConn, r *bufio.Reader) (float64, float64, error) {
	buf := make([]byte, streamChunk)
	for i := range buf {
		buf[i] = byte(i)
	}
	start := time.Now()
	var n int64
	for stop := start.Add(s.stream); time.Now().Before(stop); {
		k, err := c.Write(buf)
		n += int64(k)
		if err != nil {
			return 0, 0, err
		}
	}
	if err := c.CloseWrite(); err != nil {
		return 0, 0, err
	}
	line, err := r.ReadString('\n')
	if err != nil {
		return 0, 0, fmt.Errorf("the guest's count: %w", err)
	}
	elapsed := time.Since(start)
	got, err := strconv.ParseInt(strings.TrimSpace(line), 10, 64)
	if err != nil || got != n {
		return 0, 0, fmt.Errorf("the guest read %q bytes of %d", strings.TrimSpace(line), n)
	}
	return float64(n) / elapsed.Seconds() / 1e6, float64(n) / 1e6, nil
}

// answer echoes each byte the guest sends, one at a time, until it closes
// its side, and returns the round trips per second from the request to
// the last answer.
func answer(w io.Writer, r *bufio.Reader) (float64, error) {
	start := time.Now()
	var n int
	var b [1]byte
	for {
		c, err := r.ReadByte()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return 0, err
		}
		b[0] = c
		if _, err := w.Write(b[:]); err != nil {
			return 0, err
		}
		n++
	}
	if n == 0 {
		return 0, errors.New("the guest made no round trip")
	}
	return float64(n) / time.Since(start).Seconds(), nil
}

// Reset forgets the measures of the last boot and closes what is left of
// its connections, so the next boot's Results are its own.
func (s *Server) Reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.boot++
	s.closeConns()
	s.measure, s.errs = map[string]float64{}, nil
}

// closeConns closes the connections still being served, whose handlers
// then end with an error; the caller holds s.mu.
func (s *Server) closeConns() {
	for c := range s.conns {
		c.Close()
	}
}

// Results are the measures (keyed by Measures' names, in MB/s) and the
// errors of the streams since the last Reset; copies, safe to keep.
func (s *Server) Results() (map[string]float64, []error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := make(map[string]float64, len(s.measure))
	for k, v := range s.measure {
		m[k] = v
	}
	return m, append([]error(nil), s.errs...)
}

// Close stops accepting, closes the connections still open and waits for
// their handlers. A guest that died in the run's last boot leaves its
// connection open; waiting for its deadline (the stream's length and a
// minute) held up the run's end.
func (s *Server) Close() {
	s.ln.Close()
	<-s.done
	s.mu.Lock()
	s.closeConns()
	s.mu.Unlock()
	s.handlers.Wait()
}
