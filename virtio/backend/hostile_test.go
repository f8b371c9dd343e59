package backend

import (
	"errors"
	"net"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"ember/devicemodel"
	"ember/memory"
	"ember/virtio"
)

// fakeBackend answers each request ember sends on conn with what answer
// returns for it: a packet (nil: no answer) and descriptors to attach.
func fakeBackend(t *testing.T, conn *net.UnixConn, answer func(m devicemodel.Message) ([]byte, []int)) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, devicemodel.MaxMessageSize)
		oob := make([]byte, unix.CmsgSpace(4*devicemodel.MaxSegments))
		for {
			n, oobn, _, _, err := conn.ReadMsgUnix(buf, oob)
			devicemodel.CloseFDs(devicemodel.ParseRights(oob[:oobn]))
			if err != nil || n == 0 {
				return
			}
			m, err := devicemodel.DecodeMessage(buf[:n])
			if err != nil {
				return
			}
			if pkt, fds := answer(m); pkt != nil {
				var oob []byte
				if len(fds) > 0 {
					oob = unix.UnixRights(fds...)
				}
				conn.WriteMsgUnix(pkt, oob, nil)
			}
		}
	}()
	t.Cleanup(func() { conn.Close(); <-done })
}

// reply is the packet answering m with errno and result.
func reply(m devicemodel.Message, errno unix.Errno, result []byte) []byte {
	r := devicemodel.Message{Op: m.Op | devicemodel.OpReply, ID: m.ID, Payload: devicemodel.EncodeReply(errno, result)}
	return r.Encode(nil)
}

// blkInfo is a plausible virtio-blk description.
var blkInfo = DeviceInfo{Type: virtio.IDBlock, Features: 1 << 9, QueueSizes: []uint16{256}, Config: []byte{128}}

// answerDevice answers VIRTIO_DEVICE with info and the rest with success.
func answerDevice(info DeviceInfo) func(devicemodel.Message) ([]byte, []int) {
	return func(m devicemodel.Message) ([]byte, []int) {
		if m.Op == devicemodel.OpVirtioDevice {
			return reply(m, 0, info.Encode()), nil
		}
		return reply(m, 0, nil), nil
	}
}

// TestRemoteRefusesHostileBackend: a back-end that describes an impossible
// device, answers out of turn, sends descriptors or stays silent is refused
// when ember connects, with an error, and nothing of it is kept.
func TestRemoteRefusesHostileBackend(t *testing.T) {
	withInfo := func(f func(*DeviceInfo)) func(devicemodel.Message) ([]byte, []int) {
		info := blkInfo
		f(&info)
		return answerDevice(info)
	}
	for _, tt := range []struct {
		name   string
		answer func(devicemodel.Message) ([]byte, []int)
		want   error
	}{
		{"no queues", withInfo(func(d *DeviceInfo) { d.QueueSizes = nil }), devicemodel.ErrProtocol},
		{"65 queues", withInfo(func(d *DeviceInfo) { d.QueueSizes = make([]uint16, 65) }), devicemodel.ErrProtocol},
		{"queue size not a power of two", withInfo(func(d *DeviceInfo) { d.QueueSizes = []uint16{100} }), devicemodel.ErrProtocol},
		{"a transport feature bit", withInfo(func(d *DeviceInfo) { d.Features |= virtio.FeatureAccessPlat }), devicemodel.ErrProtocol},
		{"configuration too large", withInfo(func(d *DeviceInfo) { d.Config = make([]byte, MaxConfigSize+1) }), devicemodel.ErrProtocol},
		{"another device type", withInfo(func(d *DeviceInfo) { d.Type = virtio.IDNet }), nil},
		{"memory refused", func(m devicemodel.Message) ([]byte, []int) {
			if m.Op == devicemodel.OpVirtioMemory {
				return reply(m, unix.EINVAL, nil), nil
			}
			return answerDevice(blkInfo)(m)
		}, unix.EINVAL},
		{"reply to another op", func(m devicemodel.Message) ([]byte, []int) {
			m.Op = devicemodel.OpVirtioReset
			return reply(m, 0, nil), nil
		}, ErrGone},
		{"reply with another id", func(m devicemodel.Message) ([]byte, []int) {
			m.ID += 7
			return reply(m, 0, blkInfo.Encode()), nil
		}, ErrGone},
		{"reply with a descriptor", func(m devicemodel.Message) ([]byte, []int) {
			return reply(m, 0, blkInfo.Encode()), []int{0}
		}, ErrGone},
		{"malformed packet", func(devicemodel.Message) ([]byte, []int) { return []byte{1, 2, 3}, nil }, ErrGone},
		{"an unknown event", func(devicemodel.Message) ([]byte, []int) {
			e := devicemodel.Message{Op: devicemodel.OpVirtioEvent, Payload: []byte{9, 0, 0, 0}}
			return e.Encode(nil), nil
		}, ErrGone},
		{"silence", func(devicemodel.Message) ([]byte, []int) { return nil, nil }, ErrGone},
	} {
		t.Run(tt.name, func(t *testing.T) {
			mem, err := memory.NewShared([]memory.Range{{GPA: 0, Size: 1 << 20}})
			if err != nil {
				t.Fatal(err)
			}
			defer mem.Close()
			ember, peer := socketPair(t)
			fakeBackend(t, fileConn(t, peer), tt.answer)
			r, err := New(ember, Config{Mem: mem, Type: virtio.IDBlock, Timeout: 100 * time.Millisecond})
			if err == nil {
				r.Close()
				t.Fatal("New accepted the back-end")
			}
			if tt.want != nil && !errors.Is(err, tt.want) {
				t.Errorf("error %v, want %v", err, tt.want)
			}
		})
	}
}

// events records what a Remote tells its transport.
type events struct{ reset chan error }

func (e events) NeedsReset(err error) { e.reset <- err }
func (e events) ConfigChanged()       {}

// TestBackendEventNeedsReset: a back-end's VIRTIO_EVENT reaches the
// transport as NeedsReset, and so does a back-end that later breaks the
// protocol, which is then given up.
func TestBackendEventNeedsReset(t *testing.T) {
	mem, err := memory.NewShared([]memory.Range{{GPA: 0, Size: 1 << 20}})
	if err != nil {
		t.Fatal(err)
	}
	defer mem.Close()
	ember, peer := socketPair(t)
	backendConn := fileConn(t, peer)
	fakeBackend(t, backendConn, answerDevice(blkInfo))
	r, err := New(ember, Config{Mem: mem, Type: virtio.IDBlock})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	ev := events{reset: make(chan error, 4)}
	r.SetEvents(ev)
	for _, tt := range []struct {
		name string
		pkt  []byte
		gone bool
	}{
		{"event", (&devicemodel.Message{Op: devicemodel.OpVirtioEvent, Payload: Event{Kind: EventNeedsReset, Reason: "queue 0 broken"}.Encode()}).Encode(nil), false},
		{"unasked reply", reply(devicemodel.Message{Op: devicemodel.OpVirtioStart, ID: 99}, 0, nil), true},
	} {
		if _, _, err := backendConn.WriteMsgUnix(tt.pkt, nil, nil); err != nil {
			t.Fatal(err)
		}
		select {
		case err := <-ev.reset:
			if got := errors.Is(err, ErrGone); got != tt.gone {
				t.Errorf("%s: NeedsReset(%v): gone %v, want %v", tt.name, err, got, tt.gone)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("%s: no NeedsReset", tt.name)
		}
	}
}
