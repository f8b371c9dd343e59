package devicemodel

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"

	"ember/acrn"
	"ember/acrn/iorequest"
	"ember/ioreq"
)

// The device-model protocol (docs/ioreq-protocol.md). Every message is one
// SOCK_SEQPACKET packet:
//
//	offset 0  u32 length   bytes after this field: 8 + len(payload)
//	offset 4  u16 op       Op*; a reply has the request's op | OpReply
//	offset 6  u16 flags    0
//	offset 8  u32 id       chosen by the requester, echoed in the reply
//	offset 12 payload      op-specific, little-endian
//
// A reply's payload starts with a u32 errno (0 on success, else a Linux errno)
// followed by the op's result. File descriptors travel as SCM_RIGHTS on the
// packet that needs them.

// Op is a message type. Each mirrors an HSM operation of <linux/acrn.h>.
type Op uint16

// The operations.
const (
	OpCreateClient  Op = 1 // ACRN_IOCTL_CREATE_IOREQ_CLIENT
	OpAttachClient  Op = 2 // ACRN_IOCTL_ATTACH_IOREQ_CLIENT
	OpDestroyClient Op = 3 // ACRN_IOCTL_DESTROY_IOREQ_CLIENT
	OpClaimRange    Op = 4 // acrn_ioreq_range_add
	OpUnclaimRange  Op = 5 // acrn_ioreq_range_del
	OpNotifyFinish  Op = 6 // ACRN_IOCTL_NOTIFY_REQUEST_FINISH
	OpIOEventFD     Op = 7 // ACRN_IOCTL_IOEVENTFD
	OpIRQFD         Op = 8 // ACRN_IOCTL_IRQFD
	OpMemory        Op = 9 // the guest RAM segments (ACRN_IOCTL_SET_MEMSEG, from ember's side)
	// OpClientPage asks for the client page, where the device model says
	// it is polling the request buffer (ClientPage; ember's own, no HSM
	// counterpart).
	OpClientPage Op = 10

	// The virtio back-end messages (docs/ioreq-protocol.md, "Virtio
	// back-ends"; package virtio/backend): ember asks, an out-of-process
	// virtio device answers, except VIRTIO_EVENT, which the back-end sends
	// unasked.
	OpVirtioDevice Op = 16 // the device's type, features, queues and configuration
	OpVirtioMemory Op = 17 // the guest RAM segments, with their memfds
	OpVirtioStart  Op = 18 // DRIVER_OK: the queues' layout, kick and call eventfds
	OpVirtioReset  Op = 19 // the driver reset the device: stop, drop the queues
	OpVirtioEvent  Op = 20 // back-end -> ember: the device needs a reset

	// OpReply marks a reply.
	OpReply Op = 0x8000
)

var opNames = map[Op]string{
	OpCreateClient: "CREATE_CLIENT", OpAttachClient: "ATTACH_CLIENT", OpDestroyClient: "DESTROY_CLIENT",
	OpClaimRange: "CLAIM_RANGE", OpUnclaimRange: "UNCLAIM_RANGE", OpNotifyFinish: "NOTIFY_FINISH",
	OpIOEventFD: "IOEVENTFD", OpIRQFD: "IRQFD", OpMemory: "MEMORY", OpClientPage: "CLIENT_PAGE",
	OpVirtioDevice: "VIRTIO_DEVICE", OpVirtioMemory: "VIRTIO_MEMORY", OpVirtioStart: "VIRTIO_START",
	OpVirtioReset: "VIRTIO_RESET", OpVirtioEvent: "VIRTIO_EVENT",
}

func (o Op) String() string {
	s, ok := opNames[o&^OpReply]
	if !ok {
		s = fmt.Sprintf("Op(%d)", uint16(o&^OpReply))
	}
	if o&OpReply != 0 {
		s += " reply"
	}
	return s
}

// Protocol sizes.
const (
	HeaderSize      = 12
	MaxMessageSize  = 4096 // the largest packet either side sends or accepts
	ClientNameSize  = 32   // CREATE_CLIENT's name field
	RangeSize       = 24   // CLAIM_RANGE / UNCLAIM_RANGE payload
	CreateReplySize = 16   // CREATE_CLIENT reply after errno
	MaxSegments     = 64   // MEMORY reply's segment limit
	ClientPageSize  = 4096 // the client page (CLIENT_PAGE)
	// ClientPagePolling is the offset in the client page of the u32 the
	// device model sets to 1 while it polls the request buffer and to 0
	// before it sleeps on the kick eventfd (docs/ioreq-protocol.md,
	// "Polling for requests").
	ClientPagePolling = 0
	// ClientPageHandoff is the offset of the u32 the device model sets to 1
	// to use the futex hand-off (docs/ioreq-protocol.md, "Futex hand-off"),
	// where ember's CLIENT_PAGE reply offers it (FeatureFutexHandoff): ember
	// then wakes the model by FUTEX_WAKE on the kick word instead of the kick
	// eventfd, and the model wakes a sleeping vCPU by FUTEX_WAKE on its
	// slot's state word instead of the done eventfd.
	ClientPageHandoff = 4
	// ClientPageKick is the offset of the u32 ember increments, then
	// FUTEX_WAKEs, to kick a device model that uses the futex hand-off.
	ClientPageKick = 8
	// ClientPageReplySize is CLIENT_PAGE's result after errno: u32 size,
	// u32 features.
	ClientPageReplySize = 8
)

// CLIENT_PAGE features: the bits of the reply's second word, what this
// ember honours in the client page. An ember from before the features sends
// 0 there.
const (
	// FeatureFutexHandoff: ember honours ClientPageHandoff.
	FeatureFutexHandoff uint32 = 1 << 0
)

// ErrProtocol is wrapped by every malformed-message error.
var ErrProtocol = errors.New("devicemodel: protocol error")

// Message is one decoded packet.
type Message struct {
	Op      Op
	Flags   uint16
	ID      uint32
	Payload []byte // aliases the decoded buffer
}

// Encode appends m's packet to b.
func (m *Message) Encode(b []byte) []byte {
	var h [HeaderSize]byte
	binary.LittleEndian.PutUint32(h[0:], uint32(8+len(m.Payload)))
	binary.LittleEndian.PutUint16(h[4:], uint16(m.Op))
	binary.LittleEndian.PutUint16(h[6:], m.Flags)
	binary.LittleEndian.PutUint32(h[8:], m.ID)
	b = append(b, h[:]...)
	return append(b, m.Payload...)
}

// DecodeMessage parses one packet. The length field must match the packet
// exactly, the flags must be zero and the packet no longer than
// MaxMessageSize.
func DecodeMessage(b []byte) (Message, error) {
	if len(b) < HeaderSize {
		return Message{}, fmt.Errorf("%w: packet of %d bytes, header is %d", ErrProtocol, len(b), HeaderSize)
	}
	if len(b) > MaxMessageSize {
		return Message{}, fmt.Errorf("%w: packet of %d bytes, limit %d", ErrProtocol, len(b), MaxMessageSize)
	}
	if n := binary.LittleEndian.Uint32(b[0:]); uint64(n)+4 != uint64(len(b)) {
		return Message{}, fmt.Errorf("%w: length field %d, packet has %d bytes after it", ErrProtocol, n, len(b)-4)
	}
	m := Message{
		Op:      Op(binary.LittleEndian.Uint16(b[4:])),
		Flags:   binary.LittleEndian.Uint16(b[6:]),
		ID:      binary.LittleEndian.Uint32(b[8:]),
		Payload: b[HeaderSize:],
	}
	if m.Flags != 0 {
		return Message{}, fmt.Errorf("%w: flags %#x", ErrProtocol, m.Flags)
	}
	return m, nil
}

// Reply is a decoded reply payload.
type Reply struct {
	Errno  unix.Errno
	Result []byte
}

// Err returns nil for errno 0, else the errno.
func (r Reply) Err() error {
	if r.Errno == 0 {
		return nil
	}
	return r.Errno
}

// DecodeReply splits a reply payload into errno and result.
func DecodeReply(p []byte) (Reply, error) {
	if len(p) < 4 {
		return Reply{}, fmt.Errorf("%w: reply payload of %d bytes", ErrProtocol, len(p))
	}
	return Reply{Errno: unix.Errno(binary.LittleEndian.Uint32(p)), Result: p[4:]}, nil
}

// EncodeReply returns a reply's payload: the u32 errno, then the op's result.
func EncodeReply(errno unix.Errno, result []byte) []byte {
	p := binary.LittleEndian.AppendUint32(make([]byte, 0, 4+len(result)), uint32(errno))
	return append(p, result...)
}

// CreateRequest is CREATE_CLIENT's payload: the client's name, for logs.
type CreateRequest struct{ Name string }

// Encode returns the ClientNameSize-byte payload (the name NUL-padded,
// truncated if longer).
func (c CreateRequest) Encode() []byte {
	p := make([]byte, ClientNameSize)
	copy(p[:ClientNameSize-1], c.Name)
	return p
}

// DecodeCreateRequest parses CREATE_CLIENT's payload. The name is a C string:
// printable ASCII up to a NUL that must come within the field.
func DecodeCreateRequest(p []byte) (CreateRequest, error) {
	if len(p) != ClientNameSize {
		return CreateRequest{}, fmt.Errorf("%w: CREATE_CLIENT payload of %d bytes, want %d", ErrProtocol, len(p), ClientNameSize)
	}
	n := 0
	for n < len(p) && p[n] != 0 {
		if p[n] < 0x20 || p[n] > 0x7e {
			return CreateRequest{}, fmt.Errorf("%w: CREATE_CLIENT name byte %#x", ErrProtocol, p[n])
		}
		n++
	}
	if n == len(p) {
		return CreateRequest{}, fmt.Errorf("%w: CREATE_CLIENT name not NUL-terminated", ErrProtocol)
	}
	return CreateRequest{Name: string(p[:n])}, nil
}

// CreateReply is CREATE_CLIENT's result; the packet also carries three fds:
// the request buffer memfd, the kick eventfd (ember -> client: requests are
// PROCESSING for you) and the done eventfd (client -> ember: I set COMPLETE).
type CreateReply struct {
	ClientID   uint32
	VMID       uint16
	Slots      uint16 // iorequest.IORequestMax
	BufferSize uint32 // iorequest.RequestBufferSize
	Timeout    uint32 // the dispatcher's request timeout in milliseconds
}

// Encode returns the CreateReplySize-byte result.
func (c CreateReply) Encode() []byte {
	p := make([]byte, CreateReplySize)
	binary.LittleEndian.PutUint32(p[0:], c.ClientID)
	binary.LittleEndian.PutUint16(p[4:], c.VMID)
	binary.LittleEndian.PutUint16(p[6:], c.Slots)
	binary.LittleEndian.PutUint32(p[8:], c.BufferSize)
	binary.LittleEndian.PutUint32(p[12:], c.Timeout)
	return p
}

// DecodeCreateReply parses CREATE_CLIENT's result.
func DecodeCreateReply(p []byte) (CreateReply, error) {
	if len(p) != CreateReplySize {
		return CreateReply{}, fmt.Errorf("%w: CREATE_CLIENT result of %d bytes, want %d", ErrProtocol, len(p), CreateReplySize)
	}
	return CreateReply{
		ClientID:   binary.LittleEndian.Uint32(p[0:]),
		VMID:       binary.LittleEndian.Uint16(p[4:]),
		Slots:      binary.LittleEndian.Uint16(p[6:]),
		BufferSize: binary.LittleEndian.Uint32(p[8:]),
		Timeout:    binary.LittleEndian.Uint32(p[12:]),
	}, nil
}

// EncodeClientPageReply returns CLIENT_PAGE's result: the page's size
// (ClientPageSize) and the features this ember honours in it; the packet
// also carries the page's memfd.
func EncodeClientPageReply(features uint32) []byte {
	p := make([]byte, ClientPageReplySize)
	binary.LittleEndian.PutUint32(p, ClientPageSize)
	binary.LittleEndian.PutUint32(p[4:], features)
	return p
}

// DecodeClientPageReply parses CLIENT_PAGE's result and returns the
// features ember offers; the page's size must be ClientPageSize.
func DecodeClientPageReply(p []byte) (features uint32, err error) {
	if len(p) != ClientPageReplySize {
		return 0, fmt.Errorf("%w: CLIENT_PAGE result of %d bytes, want %d", ErrProtocol, len(p), ClientPageReplySize)
	}
	if n := binary.LittleEndian.Uint32(p); n != ClientPageSize {
		return 0, fmt.Errorf("%w: client page of %d bytes, want %d", ErrProtocol, n, ClientPageSize)
	}
	return binary.LittleEndian.Uint32(p[4:]), nil
}

// clientWord returns the u32 at off in a mapped client page. The page is
// page-aligned, so the word is naturally aligned for atomic access.
func clientWord(page []byte, off int) *atomic.Uint32 {
	return (*atomic.Uint32)(unsafe.Pointer(&page[off]))
}

// EncodeRange returns CLAIM_RANGE / UNCLAIM_RANGE's payload: u32 type, u32
// reserved (0), u64 start, u64 end (inclusive).
func EncodeRange(r ioreq.Range) []byte {
	p := make([]byte, RangeSize)
	binary.LittleEndian.PutUint32(p[0:], uint32(r.Type))
	binary.LittleEndian.PutUint64(p[8:], r.Start)
	binary.LittleEndian.PutUint64(p[16:], r.End)
	return p
}

// DecodeRange parses a range payload: a known type, reserved 0, start <= end,
// a port range below 0x10000 for PIO and a PCIAddress below 1<<28 for PCICFG.
func DecodeRange(p []byte) (ioreq.Range, error) {
	if len(p) != RangeSize {
		return ioreq.Range{}, fmt.Errorf("%w: range payload of %d bytes, want %d", ErrProtocol, len(p), RangeSize)
	}
	r := ioreq.Range{
		Type:  iorequest.ReqType(binary.LittleEndian.Uint32(p[0:])),
		Start: binary.LittleEndian.Uint64(p[8:]),
		End:   binary.LittleEndian.Uint64(p[16:]),
	}
	if binary.LittleEndian.Uint32(p[4:]) != 0 {
		return ioreq.Range{}, fmt.Errorf("%w: range reserved field not 0", ErrProtocol)
	}
	if r.Type > iorequest.ReqWP {
		return ioreq.Range{}, fmt.Errorf("%w: range type %v", ErrProtocol, r.Type)
	}
	if r.End < r.Start {
		return ioreq.Range{}, fmt.Errorf("%w: range end %#x below start %#x", ErrProtocol, r.End, r.Start)
	}
	if r.Type == iorequest.ReqPortIO && r.End > 0xffff {
		return ioreq.Range{}, fmt.Errorf("%w: port range end %#x", ErrProtocol, r.End)
	}
	if r.Type == iorequest.ReqPCICfg && r.End >= 1<<28 {
		return ioreq.Range{}, fmt.Errorf("%w: PCI range end %#x", ErrProtocol, r.End)
	}
	return r, nil
}

// DecodeNotify parses NOTIFY_FINISH's payload, a struct acrn_ioreq_notify.
func DecodeNotify(p []byte) (acrn.IOReqNotify, error) {
	var n acrn.IOReqNotify
	if len(p) != acrn.IOReqNotifySize {
		return n, fmt.Errorf("%w: NOTIFY_FINISH payload of %d bytes, want %d", ErrProtocol, len(p), acrn.IOReqNotifySize)
	}
	err := n.Decode(p)
	if err == nil && n.VCPU >= iorequest.IORequestMax {
		err = fmt.Errorf("%w: NOTIFY_FINISH vCPU %d", ErrProtocol, n.VCPU)
	}
	return n, err
}

// DecodeIOEventFD parses IOEVENTFD's payload, a struct acrn_ioeventfd:
// known flags, reserved 0, a length of 0 (any width, no data match), 1, 2, 4
// or 8, and a port range below 0x10000 for PIO.
func DecodeIOEventFD(p []byte) (acrn.IOEventFD, error) {
	var e acrn.IOEventFD
	if len(p) != acrn.IOEventFDSize {
		return e, fmt.Errorf("%w: IOEVENTFD payload of %d bytes, want %d", ErrProtocol, len(p), acrn.IOEventFDSize)
	}
	if err := e.Decode(p); err != nil {
		return e, err
	}
	const known = acrn.IOEventFDFlagPIO | acrn.IOEventFDFlagDataMatch | acrn.IOEventFDFlagDeassign
	switch {
	case e.Flags&^known != 0:
		return e, fmt.Errorf("%w: IOEVENTFD flags %#x", ErrProtocol, e.Flags)
	case e.Reserved != 0:
		return e, fmt.Errorf("%w: IOEVENTFD reserved field not 0", ErrProtocol)
	case e.Len != 0 && e.Len != 1 && e.Len != 2 && e.Len != 4 && e.Len != 8:
		return e, fmt.Errorf("%w: IOEVENTFD length %d", ErrProtocol, e.Len)
	case e.Len == 0 && e.Flags&acrn.IOEventFDFlagDataMatch != 0:
		return e, fmt.Errorf("%w: IOEVENTFD data match needs a length", ErrProtocol)
	case e.Flags&acrn.IOEventFDFlagPIO != 0 && (e.Addr > 0xffff || e.Addr+uint64(e.Len) > 0x10000):
		return e, fmt.Errorf("%w: IOEVENTFD port %#x length %d", ErrProtocol, e.Addr, e.Len)
	}
	return e, nil
}

// DecodeIRQFD parses IRQFD's payload, a struct acrn_irqfd with known flags.
func DecodeIRQFD(p []byte) (acrn.IRQFD, error) {
	var q acrn.IRQFD
	if len(p) != acrn.IRQFDSize {
		return q, fmt.Errorf("%w: IRQFD payload of %d bytes, want %d", ErrProtocol, len(p), acrn.IRQFDSize)
	}
	if err := q.Decode(p); err != nil {
		return q, err
	}
	if q.Flags&^acrn.IRQFDFlagDeassign != 0 {
		return q, fmt.Errorf("%w: IRQFD flags %#x", ErrProtocol, q.Flags)
	}
	return q, nil
}

// Segment is one piece of guest RAM a device model can map: Len bytes at
// guest-physical GPA are at Offset in the memfd that travels with it.
type Segment struct {
	GPA, Len, Offset uint64
	FD               int // the memfd; in a MEMORY reply, the i-th SCM_RIGHTS fd
}

// EncodeSegments returns MEMORY's result: u32 count, u32 reserved, then one
// struct acrn_vm_memmap per segment (type ACRN_MEMMAP_RAM, attr RWX,
// user_vm_pa = GPA, vma_base = offset in the memfd, len).
func EncodeSegments(segs []Segment) []byte {
	p := make([]byte, 8, 8+len(segs)*acrn.VMMemmapSize)
	binary.LittleEndian.PutUint32(p[0:], uint32(len(segs)))
	for _, s := range segs {
		m := acrn.VMMemmap{Type: acrn.MemmapRAM, Attr: memAttrRWX, UserVMPA: s.GPA, ServiceVMPA: s.Offset, Len: s.Len}
		var b [acrn.VMMemmapSize]byte
		_ = m.Encode(b[:])
		p = append(p, b[:]...)
	}
	return p
}

// memAttrRWX is ACRN_MEM_ACCESS_READ|WRITE|EXEC.
const memAttrRWX = 0x7

// DecodeSegments parses MEMORY's result. FD is the index of the segment's fd
// in the packet's SCM_RIGHTS array.
func DecodeSegments(p []byte) ([]Segment, error) {
	if len(p) < 8 {
		return nil, fmt.Errorf("%w: MEMORY result of %d bytes", ErrProtocol, len(p))
	}
	n := binary.LittleEndian.Uint32(p)
	if n > MaxSegments || uint64(len(p)) != 8+uint64(n)*acrn.VMMemmapSize {
		return nil, fmt.Errorf("%w: MEMORY result of %d bytes for %d segments", ErrProtocol, len(p), n)
	}
	segs := make([]Segment, n)
	for i := range segs {
		var m acrn.VMMemmap
		if err := m.Decode(p[8+i*acrn.VMMemmapSize:]); err != nil {
			return nil, err
		}
		if m.Type != acrn.MemmapRAM || m.Len == 0 || m.UserVMPA+m.Len < m.UserVMPA || m.ServiceVMPA+m.Len < m.ServiceVMPA {
			return nil, fmt.Errorf("%w: MEMORY segment %d: type %d gpa %#x len %#x", ErrProtocol, i, m.Type, m.UserVMPA, m.Len)
		}
		segs[i] = Segment{GPA: m.UserVMPA, Len: m.Len, Offset: m.ServiceVMPA, FD: i}
	}
	return segs, nil
}

// CheckPayload validates a request's payload for its op the way the server
// does before acting on it.
func CheckPayload(m Message) error {
	var err error
	switch m.Op {
	case OpCreateClient:
		_, err = DecodeCreateRequest(m.Payload)
	case OpAttachClient, OpDestroyClient, OpMemory, OpClientPage:
		if len(m.Payload) != 0 {
			err = fmt.Errorf("%w: %v payload of %d bytes, want 0", ErrProtocol, m.Op, len(m.Payload))
		}
	case OpClaimRange, OpUnclaimRange:
		_, err = DecodeRange(m.Payload)
	case OpNotifyFinish:
		_, err = DecodeNotify(m.Payload)
	case OpIOEventFD:
		_, err = DecodeIOEventFD(m.Payload)
	case OpIRQFD:
		_, err = DecodeIRQFD(m.Payload)
	default:
		if m.Op&OpReply != 0 {
			_, err = DecodeReply(m.Payload)
		} else {
			err = fmt.Errorf("%w: unknown op %d", ErrProtocol, uint16(m.Op))
		}
	}
	return err
}
