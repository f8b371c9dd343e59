package vsock

import "encoding/binary"

// HeaderSize is the size of struct virtio_vsock_hdr (virtio 1.2, §5.10.6),
// which starts every packet on the rx and tx queues: packed, little-endian.
const HeaderSize = 44

// Offsets of the fields of struct virtio_vsock_hdr.
const (
	hdrSrcCID   = 0
	hdrDstCID   = 8
	hdrSrcPort  = 16
	hdrDstPort  = 20
	hdrLen      = 24
	hdrType     = 28
	hdrOp       = 30
	hdrFlags    = 32
	hdrBufAlloc = 36
	hdrFwdCnt   = 40
)

// typeStream is VIRTIO_VSOCK_TYPE_STREAM, the one socket type the device
// serves (SEQPACKET, type 2, is not offered).
const typeStream = 1

// Operations (enum virtio_vsock_op).
const (
	opInvalid       = 0
	opRequest       = 1 // connect
	opResponse      = 2 // connection accepted
	opRST           = 3 // connection refused or aborted
	opShutdown      = 4 // flags say which directions end
	opRW            = 5 // payload
	opCreditUpdate  = 6 // here is my buf_alloc and fwd_cnt
	opCreditRequest = 7 // tell me yours
)

// SHUTDOWN flags (enum virtio_vsock_shutdown).
const (
	shutRcv  = 1 // the sender will receive no more data
	shutSend = 2 // the sender will send no more data
	shutBoth = shutRcv | shutSend
)

// header is struct virtio_vsock_hdr decoded.
type header struct {
	srcCID, dstCID   uint64
	srcPort, dstPort uint32
	len              uint32 // payload bytes after the header
	typ              uint16
	op               uint16
	flags            uint32
	bufAlloc         uint32 // the sender's receive buffer for this connection
	fwdCnt           uint32 // bytes the sender has consumed of what it received
}

// decodeHeader decodes b, which holds at least HeaderSize bytes.
func decodeHeader(b []byte) header {
	le := binary.LittleEndian
	return header{
		srcCID:   le.Uint64(b[hdrSrcCID:]),
		dstCID:   le.Uint64(b[hdrDstCID:]),
		srcPort:  le.Uint32(b[hdrSrcPort:]),
		dstPort:  le.Uint32(b[hdrDstPort:]),
		len:      le.Uint32(b[hdrLen:]),
		typ:      le.Uint16(b[hdrType:]),
		op:       le.Uint16(b[hdrOp:]),
		flags:    le.Uint32(b[hdrFlags:]),
		bufAlloc: le.Uint32(b[hdrBufAlloc:]),
		fwdCnt:   le.Uint32(b[hdrFwdCnt:]),
	}
}

// encode returns the header's wire form.
func (h header) encode() [HeaderSize]byte {
	var b [HeaderSize]byte
	le := binary.LittleEndian
	le.PutUint64(b[hdrSrcCID:], h.srcCID)
	le.PutUint64(b[hdrDstCID:], h.dstCID)
	le.PutUint32(b[hdrSrcPort:], h.srcPort)
	le.PutUint32(b[hdrDstPort:], h.dstPort)
	le.PutUint32(b[hdrLen:], h.len)
	le.PutUint16(b[hdrType:], h.typ)
	le.PutUint16(b[hdrOp:], h.op)
	le.PutUint32(b[hdrFlags:], h.flags)
	le.PutUint32(b[hdrBufAlloc:], h.bufAlloc)
	le.PutUint32(b[hdrFwdCnt:], h.fwdCnt)
	return b
}

// opName names an operation for the log.
func opName(op uint16) string {
	switch op {
	case opRequest:
		return "REQUEST"
	case opResponse:
		return "RESPONSE"
	case opRST:
		return "RST"
	case opShutdown:
		return "SHUTDOWN"
	case opRW:
		return "RW"
	case opCreditUpdate:
		return "CREDIT_UPDATE"
	case opCreditRequest:
		return "CREDIT_REQUEST"
	}
	return "unknown"
}
