package backend

import (
	"bytes"
	"testing"

	"ember/devicemodel"
	"ember/virtio"
)

// FuzzBackendMessages feeds arbitrary packets to what parses a back-end's
// messages on ember's side (Remote.handle: events, replies) and to the
// payload parsers of both sides. None may panic; whatever a parser accepts
// must encode back to the same bytes and be within the protocol's limits.
func FuzzBackendMessages(f *testing.F) {
	add := func(m devicemodel.Message) { f.Add(m.Encode(nil)) }
	add(devicemodel.Message{Op: devicemodel.OpVirtioDevice | devicemodel.OpReply, ID: 1, Payload: devicemodel.EncodeReply(0, blkInfo.Encode())})
	add(devicemodel.Message{Op: devicemodel.OpVirtioEvent, Payload: Event{Kind: EventNeedsReset, Reason: "queue 0: bad ring"}.Encode()})
	add(devicemodel.Message{Op: devicemodel.OpVirtioStart, ID: 1, Payload: Start{Features: virtio.FeatureVersion1, Queues: []QueueLayout{{Index: 0, Size: 16, Desc: 0x1000, Driver: 0x2000, Device: 0x3000}}}.Encode()})
	add(devicemodel.Message{Op: devicemodel.OpVirtioReset | devicemodel.OpReply, ID: 1, Payload: devicemodel.EncodeReply(22, nil)})
	f.Fuzz(func(t *testing.T, pkt []byte) {
		r := &Remote{pending: map[uint32]chan devicemodel.Message{1: make(chan devicemodel.Message, 1)}}
		r.SetEvents(events{reset: make(chan error, 1)})
		_ = r.handle(pkt)
		m, err := devicemodel.DecodeMessage(pkt)
		if err != nil {
			return
		}
		if rep, err := devicemodel.DecodeReply(m.Payload); err == nil {
			if d, err := DecodeDeviceInfo(rep.Result); err == nil {
				if len(d.QueueSizes) < 1 || len(d.QueueSizes) > MaxQueues || len(d.Config) > MaxConfigSize || d.Features&^DeviceFeatureMask != 0 {
					t.Fatalf("accepted %+v", d)
				}
				if !bytes.Equal(d.Encode(), rep.Result) {
					t.Fatal("device info does not encode back")
				}
			}
		}
		if s, err := DecodeStart(m.Payload); err == nil && !bytes.Equal(s.Encode(), m.Payload) {
			t.Fatal("start does not encode back")
		}
		if e, err := DecodeEvent(m.Payload); err == nil && !bytes.Equal(e.Encode(), m.Payload) {
			t.Fatal("event does not encode back")
		}
	})
}
