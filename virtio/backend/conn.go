package backend

import (
	"fmt"
	"io"
	"time"

	"golang.org/x/sys/unix"

	"ember/devicemodel"
)

// read takes every packet the back-end sends, until the connection ends:
// replies go to the call awaiting them, events to the transport. Anything
// else — a malformed packet, a reply nobody awaits, descriptors, an unknown
// op — is the back-end breaking the protocol, and ends it as a closed
// socket does (gone).
func (r *Remote) read() {
	defer close(r.readDone)
	buf := make([]byte, devicemodel.MaxMessageSize+1)
	oob := make([]byte, unix.CmsgSpace(4*4))
	for {
		n, oobn, flags, _, err := r.conn.ReadMsgUnix(buf, oob)
		if fds := devicemodel.ParseRights(oob[:oobn]); len(fds) > 0 {
			devicemodel.CloseFDs(fds)
			if err == nil {
				err = fmt.Errorf("%w: the back-end sent %d descriptors", devicemodel.ErrProtocol, len(fds))
			}
		}
		switch {
		case err == nil && n == 0:
			err = io.EOF
		case err == nil && flags&(unix.MSG_TRUNC|unix.MSG_CTRUNC) != 0:
			err = fmt.Errorf("%w: packet longer than %d bytes", devicemodel.ErrProtocol, devicemodel.MaxMessageSize)
		case err == nil:
			err = r.handle(buf[:n])
		}
		if err != nil {
			r.fail(err)
			return
		}
	}
}

// handle takes one packet from the back-end.
func (r *Remote) handle(pkt []byte) error {
	m, err := devicemodel.DecodeMessage(pkt)
	if err != nil {
		return err
	}
	if m.Op == devicemodel.OpVirtioEvent {
		e, err := DecodeEvent(m.Payload)
		if err != nil {
			return err
		}
		r.mu.Lock()
		ev := r.events
		r.mu.Unlock()
		if ev != nil {
			ev.NeedsReset(fmt.Errorf("virtio-backend: the back-end's device needs a reset: %s", e.Reason))
		}
		return nil
	}
	r.mu.Lock()
	ch, ok := r.pending[m.ID]
	delete(r.pending, m.ID)
	r.mu.Unlock()
	if !ok || m.Op&devicemodel.OpReply == 0 {
		return fmt.Errorf("%w: unexpected %v id %d", devicemodel.ErrProtocol, m.Op, m.ID)
	}
	m.Payload = append([]byte(nil), m.Payload...)
	ch <- m // buffered: the caller may have given up already
	return nil
}

// fail records that the back-end is gone (err says how), hangs up, and
// tells the transport its device needs a reset, unless Close hung up.
func (r *Remote) fail(err error) {
	r.mu.Lock()
	if r.err != nil {
		r.mu.Unlock()
		return
	}
	r.err = fmt.Errorf("%w: %w", ErrGone, err)
	close(r.gone)
	closing, ev := r.closing, r.events
	r.mu.Unlock()
	r.conn.Close()
	if closing {
		return
	}
	r.log.Error("virtio-backend: back-end gone; the device needs a reset", "type", r.info.Type, "err", err)
	if ev != nil {
		ev.NeedsReset(r.Err())
	}
}

// call sends one request with fds attached and waits for its reply's
// result. A reply that does not come within the timeout gives the back-end
// up.
func (r *Remote) call(op devicemodel.Op, payload []byte, fds []int) ([]byte, error) {
	ch := make(chan devicemodel.Message, 1)
	r.mu.Lock()
	if r.err != nil {
		err := r.err
		r.mu.Unlock()
		return nil, fmt.Errorf("virtio-backend: %v: %w", op, err)
	}
	r.nextID++
	id := r.nextID
	r.pending[id] = ch
	r.mu.Unlock()
	m := devicemodel.Message{Op: op, ID: id, Payload: payload}
	var oob []byte
	if len(fds) > 0 {
		oob = unix.UnixRights(fds...)
	}
	r.writeMu.Lock()
	_, _, err := r.conn.WriteMsgUnix(m.Encode(nil), oob, nil)
	r.writeMu.Unlock()
	if err != nil {
		r.fail(err)
		return nil, fmt.Errorf("virtio-backend: %v: %w", op, r.Err())
	}
	timer := time.NewTimer(r.timeout)
	defer timer.Stop()
	select {
	case rm := <-ch:
		return r.result(op, rm)
	case <-r.gone:
	case <-timer.C:
		r.fail(fmt.Errorf("no answer to %v within %v", op, r.timeout))
	}
	return nil, fmt.Errorf("virtio-backend: %v: %w", op, r.Err())
}

// result checks a reply to op and returns its result; an errno is the
// back-end refusing the request, a reply to another op is the back-end
// breaking the protocol.
func (r *Remote) result(op devicemodel.Op, m devicemodel.Message) ([]byte, error) {
	if m.Op != op|devicemodel.OpReply {
		err := fmt.Errorf("%w: %v answered with %v", devicemodel.ErrProtocol, op, m.Op)
		r.fail(err)
		return nil, fmt.Errorf("virtio-backend: %v: %w", op, r.Err())
	}
	rep, err := devicemodel.DecodeReply(m.Payload)
	if err != nil {
		r.fail(err)
		return nil, fmt.Errorf("virtio-backend: %v: %w", op, r.Err())
	}
	if err := rep.Err(); err != nil {
		return nil, fmt.Errorf("virtio-backend: the back-end refused %v: %w", op, err)
	}
	return rep.Result, nil
}
