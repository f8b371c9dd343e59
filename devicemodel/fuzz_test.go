package devicemodel

import (
	"bytes"
	"testing"

	"ember/acrn"
	"ember/acrn/iorequest"
	"ember/ioreq"
)

// FuzzDecodeMessage feeds the server's message decoder arbitrary packets:
// it must never panic, anything it accepts must re-encode to the same bytes,
// and a payload the op's decoder accepts must satisfy the limits the server
// relies on.
func FuzzDecodeMessage(f *testing.F) {
	add := func(m Message) { f.Add(m.Encode(nil)) }
	add(Message{Op: OpCreateClient, ID: 1, Payload: CreateRequest{Name: "devicemodel"}.Encode()})
	add(Message{Op: OpAttachClient, ID: 2})
	add(Message{Op: OpDestroyClient, ID: 3})
	add(Message{Op: OpClaimRange, ID: 4, Payload: EncodeRange(ioreq.Range{Type: iorequest.ReqPortIO, Start: 0x500, End: 0x50f})})
	add(Message{Op: OpUnclaimRange, ID: 5, Payload: EncodeRange(ioreq.Range{Type: iorequest.ReqPCICfg, Start: ioreq.PCIAddress(0, 3, 0, 0), End: ioreq.PCIAddress(0, 3, 0, 0xfff)})})
	var n [acrn.IOReqNotifySize]byte
	(&acrn.IOReqNotify{VCPU: 3}).Encode(n[:])
	add(Message{Op: OpNotifyFinish, ID: 6, Payload: n[:]})
	var e [acrn.IOEventFDSize]byte
	(&acrn.IOEventFD{Flags: acrn.IOEventFDFlagPIO | acrn.IOEventFDFlagDataMatch, Addr: 0xc050, Len: 2, Data: 1}).Encode(e[:])
	add(Message{Op: OpIOEventFD, ID: 7, Payload: e[:]})
	var q [acrn.IRQFDSize]byte
	(&acrn.IRQFD{MSI: acrn.MSIEntry{MSIAddr: 0xfee00000, MSIData: 0x31}}).Encode(q[:])
	add(Message{Op: OpIRQFD, ID: 8, Payload: q[:]})
	add(Message{Op: OpMemory, ID: 9})
	add(Message{Op: OpCreateClient | OpReply, ID: 1, Payload: EncodeReply(0, CreateReply{ClientID: 1, Slots: 16, BufferSize: 4096}.Encode())})
	add(Message{Op: OpMemory | OpReply, ID: 9, Payload: EncodeReply(0, EncodeSegments([]Segment{{GPA: 0, Len: 1 << 20}}))})
	f.Add([]byte{})
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 1, 0, 0, 0, 0, 0, 0, 0})

	f.Fuzz(func(t *testing.T, pkt []byte) {
		m, err := DecodeMessage(pkt)
		if err != nil {
			return
		}
		if re := m.Encode(nil); !bytes.Equal(re, pkt) {
			t.Fatalf("re-encoded %x, decoded from %x", re, pkt)
		}
		if CheckPayload(m) != nil {
			return
		}
		switch m.Op {
		case OpClaimRange, OpUnclaimRange:
			r, _ := DecodeRange(m.Payload)
			if r.End < r.Start || r.Type > iorequest.ReqWP || (r.Type == iorequest.ReqPortIO && r.End > 0xffff) {
				t.Fatalf("accepted range %v", r)
			}
			if !bytes.Equal(EncodeRange(r), m.Payload) {
				t.Fatalf("range does not round-trip")
			}
		case OpNotifyFinish:
			if n, _ := DecodeNotify(m.Payload); n.VCPU >= iorequest.IORequestMax {
				t.Fatalf("accepted vCPU %d", n.VCPU)
			}
		case OpIOEventFD:
			e, _ := DecodeIOEventFD(m.Payload)
			if e.Flags&acrn.IOEventFDFlagPIO != 0 && e.Addr+uint64(e.Len) > 0x10000 {
				t.Fatalf("accepted %+v", e)
			}
		case OpCreateClient:
			c, _ := DecodeCreateRequest(m.Payload)
			if len(c.Name) >= ClientNameSize {
				t.Fatalf("name of %d bytes", len(c.Name))
			}
		case OpMemory | OpReply:
			rep, _ := DecodeReply(m.Payload)
			if segs, err := DecodeSegments(rep.Result); err == nil && len(segs) > MaxSegments {
				t.Fatalf("%d segments", len(segs))
			}
		case OpCreateClient | OpReply:
			rep, _ := DecodeReply(m.Payload)
			DecodeCreateReply(rep.Result)
		}
	})
}
