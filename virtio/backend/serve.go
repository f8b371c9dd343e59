package backend

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"sync"

	"golang.org/x/sys/unix"

	"ember/devicemodel"
	"ember/virtio"
	"ember/virtio/internal/queuefd"
)

// maxFDs is the most descriptors a request may carry: VIRTIO_START's two
// per queue.
const maxFDs = 2 * MaxQueues

// session states a back-end goes through with one ember.
type server struct {
	conn *net.UnixConn
	dev  virtio.Device
	log  *slog.Logger

	writeMu sync.Mutex // replies and events share conn

	mem     *guestRAM      // after VIRTIO_MEMORY
	started *backendQueues // between VIRTIO_START and VIRTIO_RESET
}

// backendQueues are the eventfds of an active device's queues, and the
// goroutines that pass kicks to it (none for a virtio.KickWaiter, which
// waits on the kick eventfds itself).
type backendQueues struct {
	kicks, calls []*os.File // by queue index
	callFDs      []int
	wg           sync.WaitGroup
}

// Serve serves dev to the ember at the other end of conn until it hangs up
// (nil) or the connection fails; then the device is reset, the guest's RAM
// unmapped and every descriptor ember sent closed. The device's
// configuration and queues must not change while it is served; its
// requests run as they do in ember, on its own goroutines, against guest
// RAM mapped from the memfds ember sends.
func Serve(conn *net.UnixConn, dev virtio.Device, log *slog.Logger) error {
	if log == nil {
		log = slog.Default()
	}
	s := &server{conn: conn, dev: dev, log: log}
	if es, ok := dev.(virtio.EventSource); ok {
		es.SetEvents(serverEvents{s})
		defer es.SetEvents(nil)
	}
	defer s.stop()
	buf := make([]byte, devicemodel.MaxMessageSize+1)
	oob := make([]byte, unix.CmsgSpace(4*maxFDs))
	for {
		n, oobn, flags, _, err := conn.ReadMsgUnix(buf, oob)
		fds := devicemodel.ParseRights(oob[:oobn])
		if err != nil || n == 0 {
			devicemodel.CloseFDs(fds)
			if (n == 0 && err == nil) || errors.Is(err, io.EOF) {
				return nil // ember hung up (a unixpacket read reports it as EOF)
			}
			return fmt.Errorf("virtio-backend: %w", err)
		}
		if flags&(unix.MSG_TRUNC|unix.MSG_CTRUNC) != 0 {
			devicemodel.CloseFDs(fds)
			return fmt.Errorf("%w: packet truncated", devicemodel.ErrProtocol)
		}
		m, err := devicemodel.DecodeMessage(buf[:n])
		if err != nil {
			devicemodel.CloseFDs(fds)
			s.send(devicemodel.Message{Op: devicemodel.OpReply, Payload: devicemodel.EncodeReply(unix.EPROTO, nil)}, nil)
			return err
		}
		result, err := s.handle(m, fds)
		if err != nil {
			s.log.Warn("virtio-backend: request refused", "op", m.Op, "err", err)
		}
		if err := s.send(devicemodel.Message{Op: m.Op | devicemodel.OpReply, ID: m.ID, Payload: devicemodel.EncodeReply(devicemodel.Errno(err), result)}, nil); err != nil {
			return fmt.Errorf("virtio-backend: reply: %w", err)
		}
	}
}

// send writes one packet.
func (s *server) send(m devicemodel.Message, fds []int) error {
	var oob []byte
	if len(fds) > 0 {
		oob = unix.UnixRights(fds...)
	}
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	_, _, err := s.conn.WriteMsgUnix(m.Encode(nil), oob, nil)
	return err
}

// handle serves one request; it owns fds (closes what it does not keep).
func (s *server) handle(m devicemodel.Message, fds []int) ([]byte, error) {
	if m.Op != devicemodel.OpVirtioMemory && m.Op != devicemodel.OpVirtioStart && len(fds) > 0 {
		devicemodel.CloseFDs(fds)
		return nil, fmt.Errorf("%w: %v carries %d descriptors", unix.EBADF, m.Op, len(fds))
	}
	switch m.Op {
	case devicemodel.OpVirtioDevice:
		if len(m.Payload) != 0 {
			return nil, fmt.Errorf("%w: VIRTIO_DEVICE payload of %d bytes", devicemodel.ErrProtocol, len(m.Payload))
		}
		return InfoOf(s.dev).Encode(), nil
	case devicemodel.OpVirtioMemory:
		return nil, s.setMemory(m.Payload, fds)
	case devicemodel.OpVirtioStart:
		return nil, s.start(m.Payload, fds)
	case devicemodel.OpVirtioReset:
		if len(m.Payload) != 0 {
			return nil, fmt.Errorf("%w: VIRTIO_RESET payload of %d bytes", devicemodel.ErrProtocol, len(m.Payload))
		}
		s.reset()
		return nil, nil
	}
	return nil, fmt.Errorf("%w: op %v", unix.ENOSYS, m.Op)
}

// setMemory maps the guest RAM segments of VIRTIO_MEMORY.
func (s *server) setMemory(p []byte, fds []int) error {
	defer devicemodel.CloseFDs(fds) // mapped or not, the descriptors are not kept
	if s.mem != nil {
		return fmt.Errorf("%w: guest memory already given", unix.EEXIST)
	}
	segs, err := devicemodel.DecodeSegments(p)
	if err != nil {
		return err
	}
	if len(segs) != len(fds) {
		return fmt.Errorf("%w: %d segments, %d descriptors", unix.EBADF, len(segs), len(fds))
	}
	for i := range segs {
		segs[i].FD = fds[i]
	}
	mem, err := mapGuestRAM(segs)
	if err != nil {
		return err
	}
	s.mem = mem
	return nil
}

// start activates the device with VIRTIO_START's queues, after checking
// each against the device and guest RAM.
func (s *server) start(p []byte, fds []int) error {
	st, err := DecodeStart(p)
	if err != nil {
		devicemodel.CloseFDs(fds)
		return err
	}
	if err := s.checkStart(st, fds); err != nil {
		devicemodel.CloseFDs(fds)
		return err
	}
	sizes := s.dev.QueueSizes()
	bq := &backendQueues{kicks: make([]*os.File, len(sizes)), calls: make([]*os.File, len(sizes)), callFDs: make([]int, len(sizes))}
	queues := make([]*virtio.Queue, len(sizes))
	for i, ql := range st.Queues {
		queues[ql.Index] = &virtio.Queue{Size: ql.Size, Desc: ql.Desc, Driver: ql.Driver, Device: ql.Device, Ready: true,
			EventIdx: st.Features&virtio.FeatureEventIdx != 0, IndirectDesc: st.Features&virtio.FeatureIndirectDesc != 0}
		bq.kicks[ql.Index] = os.NewFile(uintptr(fds[2*i]), fmt.Sprintf("virtio-kick-%d", ql.Index))
		bq.calls[ql.Index] = os.NewFile(uintptr(fds[2*i+1]), fmt.Sprintf("virtio-call-%d", ql.Index))
		bq.callFDs[ql.Index] = fds[2*i+1]
	}
	// A device that waits on kick eventfds itself is given them; the
	// others hear of kicks through Notify, from a goroutine a queue.
	_, waits := s.dev.(virtio.KickWaiter)
	if waits {
		for i, q := range queues {
			if q != nil {
				q.Kick = bq.kicks[i]
			}
		}
	}
	if err := s.dev.Activate(s.mem.guest, st.Features, queues, bq.call); err != nil {
		bq.close()
		return fmt.Errorf("%w: %w", unix.EIO, err)
	}
	for q, k := range bq.kicks {
		if k != nil && !waits {
			bq.wg.Add(1)
			go bq.serveKicks(q, k, s.dev)
		}
	}
	s.started = bq
	return nil
}

// checkStart checks VIRTIO_START against what the back-end knows: memory
// given, not started yet, only offered features with VERSION_1, each queue
// one of the device's, of a valid size up to its maximum and wholly in
// guest RAM, and two eventfds per queue.
func (s *server) checkStart(st Start, fds []int) error {
	switch {
	case s.mem == nil:
		return fmt.Errorf("%w: VIRTIO_START before VIRTIO_MEMORY", unix.EPERM)
	case s.started != nil:
		return fmt.Errorf("%w: already started", unix.EBUSY)
	case len(fds) != 2*len(st.Queues):
		return fmt.Errorf("%w: %d queues, %d descriptors (want two a queue)", unix.EBADF, len(st.Queues), len(fds))
	case st.Features&^virtio.Offered(s.dev) != 0 || st.Features&virtio.FeatureVersion1 == 0:
		return fmt.Errorf("%w: features %#x (offered %#x, VERSION_1 required)", unix.EINVAL, st.Features, virtio.Offered(s.dev))
	}
	for _, fd := range fds {
		if !isEventFD(fd) {
			return fmt.Errorf("%w: descriptor is not an eventfd", unix.EBADF)
		}
	}
	sizes := s.dev.QueueSizes()
	for _, ql := range st.Queues {
		if int(ql.Index) >= len(sizes) {
			return fmt.Errorf("%w: queue %d of a device with %d", unix.EINVAL, ql.Index, len(sizes))
		}
		if ql.Size > sizes[ql.Index] {
			return fmt.Errorf("%w: queue %d size %d above its maximum %d", unix.EINVAL, ql.Index, ql.Size, sizes[ql.Index])
		}
		q := virtio.Queue{Size: ql.Size, Desc: ql.Desc, Driver: ql.Driver, Device: ql.Device, Ready: true}
		if err := q.Validate(s.mem.guest); err != nil {
			return fmt.Errorf("%w: queue %d: %w", unix.EINVAL, ql.Index, err)
		}
	}
	return nil
}

// isEventFD says whether fd is an eventfd.
func isEventFD(fd int) bool {
	target, err := os.Readlink(fmt.Sprintf("/proc/self/fd/%d", fd))
	return err == nil && target == "anon_inode:[eventfd]"
}

// call is the device's interrupt: signal queue q's call eventfd.
func (bq *backendQueues) call(q int) {
	if q < 0 || q >= len(bq.callFDs) || bq.calls[q] == nil {
		return
	}
	queuefd.Signal(bq.callFDs[q])
}

// serveKicks passes queue q's kicks to dev until the eventfd is closed.
func (bq *backendQueues) serveKicks(q int, kick *os.File, dev virtio.Device) {
	defer bq.wg.Done()
	queuefd.Forward(kick, func() { dev.Notify(q) })
}

// close closes the eventfds and waits for the kick goroutines.
func (bq *backendQueues) close() {
	for _, f := range append(bq.kicks, bq.calls...) {
		if f != nil {
			f.Close()
		}
	}
	bq.wg.Wait()
}

// reset stops the device, whose requests in progress finish first, then
// drops the queues' eventfds.
func (s *server) reset() {
	if s.started == nil {
		return
	}
	s.dev.Reset()
	s.started.close()
	s.started = nil
}

// stop ends the session: the device reset, guest RAM unmapped.
func (s *server) stop() {
	s.reset()
	if s.mem != nil {
		s.mem.close()
		s.mem = nil
	}
}

// serverEvents sends the device's events to ember.
type serverEvents struct{ s *server }

// NeedsReset sends VIRTIO_EVENT: ember marks the device DEVICE_NEEDS_RESET.
func (e serverEvents) NeedsReset(err error) {
	e.s.log.Error("virtio-backend: device needs a reset", "err", err)
	m := devicemodel.Message{Op: devicemodel.OpVirtioEvent, Payload: Event{Kind: EventNeedsReset, Reason: err.Error()}.Encode()}
	if err := e.s.send(m, nil); err != nil {
		e.s.log.Error("virtio-backend: sending an event", "err", err)
	}
}

// ConfigChanged is not carried: a back-end's configuration does not change.
func (e serverEvents) ConfigChanged() {
	e.s.log.Warn("virtio-backend: configuration change not passed to ember")
}
