package backend

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"ember/devicemodel"
	"ember/memory"
	"ember/virtio"
	"ember/virtio/internal/queuefd"
)

// ErrGone is wrapped by every error of a Remote whose back-end went away:
// its socket closed, it broke the protocol, or it did not answer in time.
var ErrGone = errors.New("virtio-backend: back-end gone")

// DefaultTimeout is how long a Remote waits for a back-end's reply before
// it gives the back-end up.
const DefaultTimeout = 5 * time.Second

// DefaultConnectTimeout is how long Dial keeps trying a back-end's socket
// that is not there yet, or not listening yet: long enough for a back-end
// started beside ember (`ember backend blk ... &` then `ember run`) to come up.
const DefaultConnectTimeout = 5 * time.Second

// Config configures a Remote.
type Config struct {
	// Mem is the guest's RAM; it must be memfd-backed (memory.NewShared),
	// so the back-end can map it.
	Mem *memory.Guest
	// Type, if not 0, is the device type the back-end must serve
	// (virtio.IDBlock).
	Type uint16
	// Timeout bounds each reply; 0 means DefaultTimeout.
	Timeout time.Duration
	// ConnectTimeout bounds Dial's tries; 0 means DefaultConnectTimeout.
	ConnectTimeout time.Duration
	// Logger gets the back-end's failures; nil means slog.Default().
	Logger *slog.Logger
}

// Remote is a virtio.Device served by a back-end process: what a transport
// sees of it (type, features, queues, configuration) is what the back-end
// described when it connected; Activate hands the queues over, Notify
// signals a queue's kick eventfd, and a goroutine per queue turns the
// back-end's call eventfd into the transport's interrupt. It is a
// virtio.QueueEventFDs: a transport may have KVM signal the kick eventfds
// and deliver the calls itself, and then neither passes through ember.
type Remote struct {
	conn    *net.UnixConn
	info    DeviceInfo
	mem     *memory.Guest
	timeout time.Duration
	log     *slog.Logger

	writeMu sync.Mutex // one packet at a time on conn

	mu       sync.Mutex
	nextID   uint32
	pending  map[uint32]chan devicemodel.Message // replies awaited, by id
	events   virtio.Events
	err      error         // why the back-end is gone, once it is
	gone     chan struct{} // closed when err is set
	closing  bool          // Close hung up: no error to report
	session  *queuefd.Set  // while active
	readDone chan struct{} // closed when the reader returns
}

// Dial connects to a back-end listening on the SOCK_SEQPACKET socket at
// path and returns the device it serves (New). A socket that does not exist
// yet, or exists but does not listen yet, is tried again until
// cfg.ConnectTimeout (connect).
func Dial(path string, cfg Config) (*Remote, error) {
	conn, err := connect(path, cfg.ConnectTimeout)
	if err != nil {
		return nil, fmt.Errorf("virtio-backend: %w", err)
	}
	r, err := New(conn, cfg)
	if err != nil {
		return nil, fmt.Errorf("virtio-backend %s: %w", path, err)
	}
	return r, nil
}

// connect dials the SOCK_SEQPACKET socket at path, trying again every
// 20 ms while the socket is missing (ENOENT: the back-end has not bound it
// yet) or refuses (ECONNREFUSED: between the back-end's bind and its
// listen, when the file is already there, or a back-end that died), until
// timeout (0: DefaultConnectTimeout). Any other error ends it at once.
func connect(path string, timeout time.Duration) (*net.UnixConn, error) {
	if timeout <= 0 {
		timeout = DefaultConnectTimeout
	}
	deadline := time.Now().Add(timeout)
	for {
		conn, err := net.DialUnix("unixpacket", nil, &net.UnixAddr{Name: path, Net: "unixpacket"})
		if err == nil {
			return conn, nil
		}
		if !errors.Is(err, unix.ENOENT) && !errors.Is(err, unix.ECONNREFUSED) {
			return nil, err
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("%w (tried for %v)", err, timeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// New takes over conn, a connection to a back-end, asks what device it
// serves (VIRTIO_DEVICE) and gives it the guest's RAM (VIRTIO_MEMORY). The
// Remote owns conn from now on, whether New succeeds or not.
func New(conn *net.UnixConn, cfg Config) (*Remote, error) {
	r := &Remote{conn: conn, mem: cfg.Mem, timeout: cfg.Timeout, log: cfg.Logger,
		pending: map[uint32]chan devicemodel.Message{}, gone: make(chan struct{}), readDone: make(chan struct{})}
	if r.timeout <= 0 {
		r.timeout = DefaultTimeout
	}
	if r.log == nil {
		r.log = slog.Default()
	}
	go r.read()
	if err := r.hello(cfg); err != nil {
		r.Close()
		return nil, err
	}
	return r, nil
}

// hello is New's two requests.
func (r *Remote) hello(cfg Config) error {
	segs, fds, err := segments(cfg.Mem)
	if err != nil {
		return err
	}
	res, err := r.call(devicemodel.OpVirtioDevice, nil, nil)
	if err != nil {
		return err
	}
	if r.info, err = DecodeDeviceInfo(res); err != nil {
		return err
	}
	if cfg.Type != 0 && r.info.Type != cfg.Type {
		return fmt.Errorf("virtio-backend: back-end serves device type %d, not %d", r.info.Type, cfg.Type)
	}
	_, err = r.call(devicemodel.OpVirtioMemory, devicemodel.EncodeSegments(segs), fds)
	return err
}

// segments returns the guest's RAM as VIRTIO_MEMORY describes it, and the
// memfds (the Guest's own) to send with it.
func segments(mem *memory.Guest) ([]devicemodel.Segment, []int, error) {
	if mem == nil {
		return nil, nil, errors.New("virtio-backend: no guest memory")
	}
	var segs []devicemodel.Segment
	var fds []int
	for _, reg := range mem.Regions() {
		if reg.FD < 0 {
			return nil, nil, fmt.Errorf("virtio-backend: %w: RAM at %#x is not memfd-backed", devicemodel.ErrNotShareable, reg.GPA)
		}
		segs = append(segs, devicemodel.Segment{GPA: reg.GPA, Len: reg.Size, FD: len(fds)})
		fds = append(fds, reg.FD)
	}
	if len(segs) == 0 || len(segs) > devicemodel.MaxSegments {
		return nil, nil, fmt.Errorf("virtio-backend: %d RAM regions (1 to %d)", len(segs), devicemodel.MaxSegments)
	}
	return segs, fds, nil
}

// Info returns what the back-end said it serves.
func (r *Remote) Info() DeviceInfo { return r.info }

// Err returns why the back-end is gone, or nil while it serves.
func (r *Remote) Err() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.err
}

// SetEvents is virtio.EventSource: a back-end that goes away, or that
// says its device needs a reset, marks the device DEVICE_NEEDS_RESET.
func (r *Remote) SetEvents(e virtio.Events) {
	r.mu.Lock()
	r.events = e
	r.mu.Unlock()
}

// Type returns the back-end's device type.
func (r *Remote) Type() uint16 { return r.info.Type }

// Features returns the back-end's device-specific feature bits.
func (r *Remote) Features() uint64 { return r.info.Features }

// QueueSizes returns the back-end's queues' maximum sizes.
func (r *Remote) QueueSizes() []uint16 { return append([]uint16(nil), r.info.QueueSizes...) }

// ReadConfig reads the configuration the back-end described.
func (r *Remote) ReadConfig(off uint64, data []byte) {
	clear(data)
	if off < uint64(len(r.info.Config)) {
		copy(data, r.info.Config[off:])
	}
}

// WriteConfig ignores writes: a back-end's configuration is read-only.
func (r *Remote) WriteConfig(uint64, []byte) {}

// Activate gives the back-end the enabled queues (VIRTIO_START) with a kick
// and a call eventfd each, and starts relaying the calls to interrupt.
func (r *Remote) Activate(mem *memory.Guest, features uint64, queues []*virtio.Queue, interrupt func(int)) error {
	if mem != r.mem {
		return errors.New("virtio-backend: activated with other guest memory than the back-end was given")
	}
	s, err := queuefd.New(queues, interrupt, r.log)
	if err != nil {
		return err
	}
	var st Start
	var fds []int
	for i, q := range queues {
		if q == nil {
			continue
		}
		kick, _ := s.Kick(i)
		call, _ := s.Call(i)
		st.Queues = append(st.Queues, QueueLayout{Index: uint16(i), Size: q.Size, Desc: q.Desc, Driver: q.Driver, Device: q.Device})
		fds = append(fds, kick, call)
	}
	st.Features = features
	if len(st.Queues) == 0 {
		return errors.New("virtio-backend: no queue enabled")
	}
	if _, err := r.call(devicemodel.OpVirtioStart, st.Encode(), fds); err != nil {
		s.Close()
		return err
	}
	s.StartRelays()
	r.mu.Lock()
	r.session = s
	r.mu.Unlock()
	return nil
}

// active returns the queues' eventfds while the device is active, and nil
// otherwise (queuefd.Set's methods take a nil Set for an inactive device).
func (r *Remote) active() *queuefd.Set {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.session
}

// KickFD is virtio.QueueEventFDs: queue q's kick eventfd, the one Notify
// writes, while the device is active.
func (r *Remote) KickFD(q int) (int, bool) { return r.active().Kick(q) }

// CallFD is virtio.QueueEventFDs: queue q's call eventfd while the device
// is active.
func (r *Remote) CallFD(q int) (int, bool) { return r.active().Call(q) }

// RelayCalls is virtio.QueueEventFDs: it stops (on false) or restarts
// queue q's relay goroutine (queuefd.Set.RelayCalls), under r.mu.
func (r *Remote) RelayCalls(q int, on bool) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.session.RelayCalls(q, on)
}

// Notify signals queue q's kick eventfd.
func (r *Remote) Notify(q int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.session.Notify(q)
}

// Reset tells the back-end to stop (VIRTIO_RESET) and waits for it: when
// Reset returns, a back-end that follows the protocol no longer touches
// the queues. Then the eventfds are closed. A back-end that is gone is not
// asked.
func (r *Remote) Reset() {
	r.mu.Lock()
	s := r.session
	r.session = nil
	gone := r.err != nil
	r.mu.Unlock()
	if s == nil {
		return
	}
	if !gone {
		if _, err := r.call(devicemodel.OpVirtioReset, nil, nil); err != nil {
			r.log.Error("virtio-backend: reset", "err", err)
		}
	}
	s.Close()
}

// Close resets the device and hangs up on the back-end, which resets its
// device too; every goroutine and descriptor of the Remote is gone when it
// returns.
func (r *Remote) Close() error {
	r.Reset()
	r.mu.Lock()
	r.closing = true
	r.mu.Unlock()
	err := r.conn.Close()
	<-r.readDone
	return err
}
