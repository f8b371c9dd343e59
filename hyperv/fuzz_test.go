package hyperv

import (
	"bytes"
	"testing"
)

// FuzzHypercall: any hypercall input and parameter, against a page of any
// contents, with a message and an event connection that post into a SynIC
// whose pages are one RAM page each. The answer is a known status; the
// handlers see only checked input; nothing outside the message slot and the
// event flags changes.
func FuzzHypercall(f *testing.F) {
	f.Add(uint64(CallPostMessage), uint64(ramBase), []byte{0x10, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 8, 0, 0, 0})
	f.Add(uint64(CallSignalEvent|callFast), uint64(0x20), []byte{})
	f.Add(uint64(CallSignalEvent), uint64(ramBase+8), []byte{0, 0, 0, 0, 0, 0, 0, 0, 0x20})
	f.Add(uint64(CallPostMessage), uint64(ramBase+pageSize-8), bytes.Repeat([]byte{0xff}, 64))
	f.Fuzz(func(t *testing.T, input, param uint64, page []byte) {
		mem := newRAM(ramBase, 3) // the input page, the message page, the event page
		copy(mem.b[:pageSize], page)
		var s SynIC
		s.Update(pageEnable, (ramBase+2*pageSize)|pageEnable, (ramBase+pageSize)|pageEnable)
		var c Connections
		var o Outbox
		c.HandleMessages(0x10, func(in PostMessageInput) Status {
			if in.PayloadSize > MessagePayloadSize {
				t.Fatalf("a handler got payload size %d", in.PayloadSize)
			}
			m := Message{Type: in.MessageType, PayloadSize: uint8(in.PayloadSize)}
			copy(m.Payload[:], in.Payload[:in.PayloadSize])
			return o.Post(m, func(m *Message) (Delivery, error) { return Deliver(mem, &s, 8, m) })
		})
		c.HandleEvents(0x20, func() Status {
			if _, err := SetEventFlag(mem, &s, 9, 0x20); err != nil {
				t.Fatalf("SetEventFlag: %v", err)
			}
			return StatusSuccess
		})
		input0 := append([]byte(nil), mem.b[:pageSize]...)
		st := c.Hypercall(mem, input, param)
		switch st {
		case StatusSuccess, StatusInvalidHypercallCode, StatusInvalidHypercallInput, StatusInvalidAlignment,
			StatusInsufficientMemory, StatusInvalidPortID, StatusInvalidConnectionID, StatusInsufficientBuffers:
		default:
			t.Fatalf("status %v", st)
		}
		if !bytes.Equal(mem.b[:pageSize], input0) {
			t.Fatal("the hypercall changed its input page")
		}
		for i, b := range mem.b[pageSize:] {
			inSlot := i >= 8*MessageSize && i < 9*MessageSize || i >= pageSize+9*256 && i < pageSize+10*256
			if b != 0 && !inSlot {
				t.Fatalf("byte %#x of the SynIC pages written", i)
			}
		}
	})
}
