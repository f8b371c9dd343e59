package backend

import (
	"net"
	"os"
	"testing"

	"golang.org/x/sys/unix"

	"ember/devicemodel"
	"ember/memory"
	"ember/virtio"
	"ember/virtio/blk"
)

// rawCall sends one request on conn and returns the reply's errno.
func rawCall(t *testing.T, conn *net.UnixConn, op devicemodel.Op, payload []byte, fds []int) unix.Errno {
	t.Helper()
	m := devicemodel.Message{Op: op, ID: 1, Payload: payload}
	var oob []byte
	if len(fds) > 0 {
		oob = unix.UnixRights(fds...)
	}
	if _, _, err := conn.WriteMsgUnix(m.Encode(nil), oob, nil); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, devicemodel.MaxMessageSize)
	n, _, _, _, err := conn.ReadMsgUnix(buf, nil)
	if err != nil {
		t.Fatal(err)
	}
	rm, err := devicemodel.DecodeMessage(buf[:n])
	if err != nil || rm.Op != op|devicemodel.OpReply {
		t.Fatalf("reply %v %v", rm.Op, err)
	}
	rep, err := devicemodel.DecodeReply(rm.Payload)
	if err != nil {
		t.Fatal(err)
	}
	return rep.Errno
}

// eventfds returns n fresh eventfds, closed when the test ends.
func eventfds(t *testing.T, n int) []int {
	t.Helper()
	var fds []int
	for range n {
		fd, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { unix.Close(fd) })
		fds = append(fds, fd)
	}
	return fds
}

// TestServeRefusesBadRequests: a back-end answers each request ember could
// get wrong with an errno and goes on serving: queues it does not have,
// sizes above their maximum, rings outside guest RAM, features it did not
// offer, descriptors missing or of the wrong kind, requests out of order.
func TestServeRefusesBadRequests(t *testing.T) {
	mem, err := memory.NewShared([]memory.Range{{GPA: 0, Size: 1 << 20}})
	if err != nil {
		t.Fatal(err)
	}
	defer mem.Close()
	ember, peer := socketPair(t)
	defer ember.Close()
	startInProcess(t, newImage(t), fileConn(t, peer))
	const ok = virtio.FeatureVersion1 | virtio.FeatureEventIdx
	q0 := QueueLayout{Index: 0, Size: 16, Desc: 0x10000, Driver: 0x11000, Device: 0x12000}
	start := func(f uint64, qs ...QueueLayout) []byte { return Start{Features: f, Queues: qs}.Encode() }
	with := func(f func(*QueueLayout)) QueueLayout { q := q0; f(&q); return q }
	devNull, err := os.Open(os.DevNull)
	if err != nil {
		t.Fatal(err)
	}
	defer devNull.Close()
	segs, memfds, err := segments(mem)
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name    string
		op      devicemodel.Op
		payload []byte
		fds     []int
		want    unix.Errno
	}{
		{"start before memory", devicemodel.OpVirtioStart, start(ok, q0), eventfds(t, 2), unix.EPERM},
		{"memory without its memfd", devicemodel.OpVirtioMemory, devicemodel.EncodeSegments(segs), nil, unix.EBADF},
		{"memory past its memfd's end", devicemodel.OpVirtioMemory, devicemodel.EncodeSegments([]devicemodel.Segment{{GPA: 0, Len: 2 << 20}}), memfds, unix.EINVAL},
		{"memory", devicemodel.OpVirtioMemory, devicemodel.EncodeSegments(segs), memfds, 0},
		{"memory again", devicemodel.OpVirtioMemory, devicemodel.EncodeSegments(segs), memfds, unix.EEXIST},
		{"device with a payload", devicemodel.OpVirtioDevice, []byte{1}, nil, unix.EPROTO},
		{"unknown op", devicemodel.OpMemory, nil, nil, unix.ENOSYS},
		{"start with one descriptor", devicemodel.OpVirtioStart, start(ok, q0), eventfds(t, 1), unix.EBADF},
		{"start with a file, not an eventfd", devicemodel.OpVirtioStart, start(ok, q0), []int{int(devNull.Fd()), eventfds(t, 1)[0]}, unix.EBADF},
		{"start without VERSION_1", devicemodel.OpVirtioStart, start(virtio.FeatureEventIdx, q0), eventfds(t, 2), unix.EINVAL},
		{"start with a feature not offered", devicemodel.OpVirtioStart, start(ok|1<<20, q0), eventfds(t, 2), unix.EINVAL},
		{"start queue 1 of 1", devicemodel.OpVirtioStart, start(ok, with(func(q *QueueLayout) { q.Index = 1 })), eventfds(t, 2), unix.EINVAL},
		{"start queue above its maximum size", devicemodel.OpVirtioStart, start(ok, with(func(q *QueueLayout) { q.Size = 512 })), eventfds(t, 2), unix.EINVAL},
		{"start used ring outside RAM", devicemodel.OpVirtioStart, start(ok, with(func(q *QueueLayout) { q.Device = 1<<20 - 8 })), eventfds(t, 2), unix.EINVAL},
		{"start descriptors past the end of the address space", devicemodel.OpVirtioStart, start(ok, with(func(q *QueueLayout) { q.Desc = 1<<64 - 16 })), eventfds(t, 2), unix.EINVAL},
		{"start twice the same queue", devicemodel.OpVirtioStart, start(ok, q0, q0), eventfds(t, 4), unix.EPROTO},
		{"start", devicemodel.OpVirtioStart, start(ok, q0), eventfds(t, 2), 0},
		{"start again", devicemodel.OpVirtioStart, start(ok, q0), eventfds(t, 2), unix.EBUSY},
		{"reset", devicemodel.OpVirtioReset, nil, nil, 0},
		{"start after reset", devicemodel.OpVirtioStart, start(ok, q0), eventfds(t, 2), 0},
	} {
		if got := rawCall(t, ember, tt.op, tt.payload, tt.fds); got != tt.want {
			t.Errorf("%s: errno %v, want %v", tt.name, got, tt.want)
		}
	}
}

// TestServeEndsCleanlyWhenEmberHangsUp: ember closing its end of the
// connection — how every VM's run ends — is a hang-up, not an error, so the
// back-end's log does not call a normal power-off a failure.
func TestServeEndsCleanlyWhenEmberHangsUp(t *testing.T) {
	d, err := blk.Open(blk.Config{Path: newImage(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	for _, tt := range []struct {
		name   string
		before func(*testing.T, *net.UnixConn)
	}{
		{"at once", func(*testing.T, *net.UnixConn) {}},
		{"after a request", func(t *testing.T, c *net.UnixConn) {
			if got := rawCall(t, c, devicemodel.OpVirtioDevice, nil, nil); got != 0 {
				t.Fatalf("VIRTIO_DEVICE: errno %v", got)
			}
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ember, peer := socketPair(t)
			conn := fileConn(t, peer)
			defer conn.Close()
			served := make(chan error, 1)
			go func() { served <- Serve(conn, d, nil) }()
			tt.before(t, ember)
			ember.Close()
			if err := <-served; err != nil {
				t.Errorf("Serve after ember hung up = %v, want nil", err)
			}
		})
	}
}
