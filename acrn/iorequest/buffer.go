package iorequest

import "ember/acrn/internal/cabi"

// IORequestBuffer is struct acrn_io_request_buffer: the 4 KiB page of
// IORequestMax slots, slot i belonging to vCPU i. Code sharing the page with
// another party should work on single slots (SlotOffset, EncodeBody and an
// atomic state at SlotStateOffset) rather than copy the whole buffer.
type IORequestBuffer struct {
	Slots [IORequestMax]IORequest
}

// SizeOf returns RequestBufferSize.
func (q *IORequestBuffer) SizeOf() int { return RequestBufferSize }

// Encode writes all 16 slots to b.
func (q *IORequestBuffer) Encode(b []byte) error {
	if len(b) < RequestBufferSize {
		return cabi.ShortError("encode", "acrn_io_request_buffer", RequestBufferSize, len(b))
	}
	for i := range q.Slots {
		if err := q.Slots[i].Encode(b[SlotOffset(i):]); err != nil {
			return err
		}
	}
	return nil
}

// Decode reads all 16 slots from b.
func (q *IORequestBuffer) Decode(b []byte) error {
	if len(b) < RequestBufferSize {
		return cabi.ShortError("decode", "acrn_io_request_buffer", RequestBufferSize, len(b))
	}
	for i := range q.Slots {
		if err := q.Slots[i].Decode(b[SlotOffset(i):]); err != nil {
			return err
		}
	}
	return nil
}

// IOReqBufferSize is sizeof(struct acrn_ioreq_buffer).
const IOReqBufferSize = 8

// IOReqBuffer is the parameter of HC_SET_IOREQ_BUFFER, Linux's struct
// acrn_ioreq_buffer: param2 is its GPA, and it holds the GPA of the request
// buffer page. Seed 000 says only "this gpa points to buffer address"; the
// name and layout are the Linux HSM's, whose single u64 is what ACRN v2.6
// copies from param2.
type IOReqBuffer struct {
	IOReqBuf uint64 // GPA of the 4 KiB request buffer
}

// SizeOf returns IOReqBufferSize.
func (v *IOReqBuffer) SizeOf() int { return IOReqBufferSize }

// Encode writes v to b in the layout of struct acrn_ioreq_buffer.
func (v *IOReqBuffer) Encode(b []byte) error {
	return cabi.EncodeStruct(b, v, IOReqBufferSize, "acrn_ioreq_buffer")
}

// Decode reads v from b in the layout of struct acrn_ioreq_buffer.
func (v *IOReqBuffer) Decode(b []byte) error {
	return cabi.DecodeStruct(b, v, IOReqBufferSize, "acrn_ioreq_buffer")
}
