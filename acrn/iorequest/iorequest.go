package iorequest

import (
	"fmt"

	"ember/acrn/internal/cabi"
)

// State is the processed field of an I/O request (ACRN_IOREQ_STATE_*). A
// request moves FREE -> PENDING -> PROCESSING -> COMPLETE -> FREE; in FREE
// and COMPLETE the hypervisor owns it, in PENDING and PROCESSING the Service
// VM (HSM, device model or client) does, and the other side touches nothing
// but this field. Accesses to it must be atomic: see StateOffset.
type State uint32

// The I/O request states, ACRN_IOREQ_STATE_* in acrn_common.h and
// <linux/acrn.h>.
const (
	StatePending    State = 0 // ACRN_IOREQ_STATE_PENDING: filled in, waiting for the Service VM
	StateComplete   State = 1 // ACRN_IOREQ_STATE_COMPLETE: handled, result in the request
	StateProcessing State = 2 // ACRN_IOREQ_STATE_PROCESSING: claimed by a client
	StateFree       State = 3 // ACRN_IOREQ_STATE_FREE: slot unused
)

// String returns the state's name as in ACRN_IOREQ_STATE_<name>.
func (s State) String() string {
	switch s {
	case StatePending:
		return "PENDING"
	case StateComplete:
		return "COMPLETE"
	case StateProcessing:
		return "PROCESSING"
	case StateFree:
		return "FREE"
	}
	return fmt.Sprintf("State(%d)", uint32(s))
}

// Valid reports whether s is one of the four defined states.
func (s State) Valid() bool { return s <= StateFree }

// ReqType is the type field of an I/O request (ACRN_IOREQ_TYPE_*); it says
// which member of the reqs union is live.
type ReqType uint32

// The I/O request types. ACRN_IOREQ_TYPE_WP is in acrn_common.h only (the
// hypervisor raises it for a write to a write-protected page, and the
// request uses the MMIO member); <linux/acrn.h> stops at PCICFG.
const (
	ReqPortIO ReqType = 0 // ACRN_IOREQ_TYPE_PORTIO: PIORequest
	ReqMMIO   ReqType = 1 // ACRN_IOREQ_TYPE_MMIO: MMIORequest
	ReqPCICfg ReqType = 2 // ACRN_IOREQ_TYPE_PCICFG: PCIRequest
	ReqWP     ReqType = 3 // ACRN_IOREQ_TYPE_WP: MMIORequest, always a write
)

// String returns the type's name as in ACRN_IOREQ_TYPE_<name>.
func (t ReqType) String() string {
	switch t {
	case ReqPortIO:
		return "PORTIO"
	case ReqMMIO:
		return "MMIO"
	case ReqPCICfg:
		return "PCICFG"
	case ReqWP:
		return "WP"
	}
	return fmt.Sprintf("ReqType(%d)", uint32(t))
}

// Direction is the direction field of every reqs member (ACRN_IOREQ_DIR_*).
type Direction uint32

// The access directions.
const (
	DirRead  Direction = 0 // ACRN_IOREQ_DIR_READ: the guest reads; the handler fills in value
	DirWrite Direction = 1 // ACRN_IOREQ_DIR_WRITE: the guest writes value
)

// String returns "READ" or "WRITE".
func (d Direction) String() string {
	switch d {
	case DirRead:
		return "READ"
	case DirWrite:
		return "WRITE"
	}
	return fmt.Sprintf("Direction(%d)", uint32(d))
}

// Sizes and offsets of the I/O request and its buffer.
const (
	// IORequestSize is sizeof(struct acrn_io_request): 256, the struct is
	// __aligned(256).
	IORequestSize = 256
	// IORequestMax is ACRN_IO_REQUEST_MAX, the number of slots in the
	// buffer: one per vCPU, so a VM has at most 16 vCPUs that can trap I/O.
	IORequestMax = 16
	// RequestBufferSize is sizeof(struct acrn_io_request_buffer): one 4 KiB
	// page holding IORequestMax slots.
	RequestBufferSize = IORequestSize * IORequestMax
	// CompletionPollingOffset is the byte offset of completion_polling.
	CompletionPollingOffset = 4
	// ReqsOffset is the byte offset of the reqs union ("Byte offset: 64").
	ReqsOffset = 64
	// ReqsSize is the size of the reqs union (its data[8] member).
	ReqsSize = 64
	// KernelHandledOffset is the byte offset of kernel_handled.
	KernelHandledOffset = 132
	// StateOffset is the byte offset of processed, the state field (136).
	// It is 4-byte aligned, so a uint32 atomic at this offset of a slot in
	// a page-aligned mapping is a natural x86 atomic.
	StateOffset = 136

	// PIORequestSize is sizeof(struct acrn_pio_request).
	PIORequestSize = 32
	// MMIORequestSize is sizeof(struct acrn_mmio_request).
	MMIORequestSize = 32
	// PCIRequestSize is sizeof(struct acrn_pci_request).
	PCIRequestSize = 48
)

// SlotOffset returns the byte offset of slot i in the request buffer. It
// panics if i is outside [0, IORequestMax): slot numbers are vCPU IDs the
// caller has already checked.
func SlotOffset(i int) int {
	if i < 0 || i >= IORequestMax {
		panic(fmt.Sprintf("acrn: I/O request slot %d out of range [0,%d)", i, IORequestMax))
	}
	return i * IORequestSize
}

// SlotStateOffset returns the byte offset, in the request buffer, of slot
// i's state field: the address the I/O path loads and stores atomically.
func SlotStateOffset(i int) int { return SlotOffset(i) + StateOffset }

// PIORequest is struct acrn_pio_request, the reqs member of a port I/O
// request. Size and Value are little-endian; Value holds the low Size bytes.
type PIORequest struct {
	Direction Direction
	Reserved  uint32
	Address   uint64 // port number
	Size      uint64 // access width in bytes: 1, 2 or 4
	Value     uint32
	_         [4]byte // tail padding to 8-byte alignment
}

// MMIORequest is struct acrn_mmio_request, the reqs member of an MMIO or WP
// request.
type MMIORequest struct {
	Direction Direction
	Reserved  uint32
	Address   uint64 // guest-physical address
	Size      uint64 // access width in bytes: 1, 2, 4 or 8
	Value     uint64
}

// PCIRequest is struct acrn_pci_request, the reqs member of a PCI
// configuration access. Its first 28 bytes match PIORequest's layout except
// that the address word is reserved, so a PIO request to 0xcf8/0xcfc can be
// turned into a PCICFG one in place. acrn_common.h declares size, value, bus,
// dev, func and reg signed, <linux/acrn.h> unsigned; the bytes are the same.
type PCIRequest struct {
	Direction Direction
	Reserved  [3]uint32
	Size      uint64 // access width in bytes: 1, 2 or 4
	Value     uint32
	Bus       uint32
	Dev       uint32
	Func      uint32
	Reg       uint32 // configuration-space offset
	_         [4]byte
}

// IORequest is struct acrn_io_request, the 256-byte slot a vCPU's trapped
// port, MMIO or PCI-config access is described in. Reqs holds the raw union;
// PIO, MMIO and PCI decode it per Type.
type IORequest struct {
	Type              ReqType
	CompletionPolling uint32 // non-zero: the hypervisor polls for COMPLETE instead of waiting for a notify
	Reserved0         [14]uint32
	Reqs              [ReqsSize]byte // union reqs, at ReqsOffset
	Reserved1         uint32
	KernelHandled     uint32 // int32_t in acrn_common.h: set when the HSM handled it in kernel
	Processed         State  // at StateOffset
	_                 [IORequestSize - StateOffset - 4]byte
}

// SizeOf returns IORequestSize.
func (r *IORequest) SizeOf() int { return IORequestSize }

// Encode writes all 256 bytes of r to b, the state field included. Use
// EncodeBody for a slot another party may be watching.
func (r *IORequest) Encode(b []byte) error {
	if err := r.EncodeBody(b); err != nil {
		return err
	}
	cabi.LE.PutUint32(b[StateOffset:], uint32(r.Processed))
	return nil
}

// EncodeBody writes every byte of r to b except the 4-byte state field. A
// party filling a slot in shared memory writes the body while it owns the
// slot and then publishes it with an atomic store of the new state at
// StateOffset, the last write, as the header's ordering rules require.
func (r *IORequest) EncodeBody(b []byte) error {
	if len(b) < IORequestSize {
		return cabi.ShortError("encode", "acrn_io_request", IORequestSize, len(b))
	}
	b = b[:IORequestSize]
	cabi.LE.PutUint32(b[0:], uint32(r.Type))
	cabi.LE.PutUint32(b[4:], r.CompletionPolling)
	for i, v := range r.Reserved0 {
		cabi.LE.PutUint32(b[8+4*i:], v)
	}
	copy(b[ReqsOffset:ReqsOffset+ReqsSize], r.Reqs[:])
	cabi.LE.PutUint32(b[128:], r.Reserved1)
	cabi.LE.PutUint32(b[KernelHandledOffset:], r.KernelHandled)
	clear(b[StateOffset+4:])
	return nil
}

// Decode reads all 256 bytes of an I/O request from b. It checks only the
// length; call Validate before acting on a request read from shared memory.
func (r *IORequest) Decode(b []byte) error {
	if len(b) < IORequestSize {
		return cabi.ShortError("decode", "acrn_io_request", IORequestSize, len(b))
	}
	b = b[:IORequestSize]
	r.Type = ReqType(cabi.LE.Uint32(b[0:]))
	r.CompletionPolling = cabi.LE.Uint32(b[4:])
	for i := range r.Reserved0 {
		r.Reserved0[i] = cabi.LE.Uint32(b[8+4*i:])
	}
	copy(r.Reqs[:], b[ReqsOffset:ReqsOffset+ReqsSize])
	r.Reserved1 = cabi.LE.Uint32(b[128:])
	r.KernelHandled = cabi.LE.Uint32(b[KernelHandledOffset:])
	r.Processed = State(cabi.LE.Uint32(b[StateOffset:]))
	return nil
}

// PIO decodes Reqs as a port I/O request.
func (r *IORequest) PIO() PIORequest {
	var p PIORequest
	p.decode(r.Reqs[:])
	return p
}

// SetPIO stores p in Reqs, zeroing the rest of the union, and sets Type to
// ReqPortIO.
func (r *IORequest) SetPIO(p PIORequest) {
	r.Reqs = [ReqsSize]byte{}
	p.encode(r.Reqs[:])
	r.Type = ReqPortIO
}

// MMIO decodes Reqs as an MMIO (or WP) request.
func (r *IORequest) MMIO() MMIORequest {
	var m MMIORequest
	m.decode(r.Reqs[:])
	return m
}

// SetMMIO stores m in Reqs, zeroing the rest of the union, and sets Type to
// ReqMMIO. Set Type to ReqWP afterwards for a write-protect fault.
func (r *IORequest) SetMMIO(m MMIORequest) {
	r.Reqs = [ReqsSize]byte{}
	m.encode(r.Reqs[:])
	r.Type = ReqMMIO
}

// PCI decodes Reqs as a PCI configuration-space request.
func (r *IORequest) PCI() PCIRequest {
	var p PCIRequest
	p.decode(r.Reqs[:])
	return p
}

// SetPCI stores p in Reqs, zeroing the rest of the union, and sets Type to
// ReqPCICfg.
func (r *IORequest) SetPCI(p PCIRequest) {
	r.Reqs = [ReqsSize]byte{}
	p.encode(r.Reqs[:])
	r.Type = ReqPCICfg
}

// Validate checks the fields a handler acts on, for a request read from
// memory another party can write: a known type and state, a direction of
// READ or WRITE, an access size the instruction set can produce (PIO and PCI
// 1, 2 or 4 bytes; MMIO 1, 2, 4 or 8), a port below 0x10000, a write for WP,
// and a PCI bus/device/function/register inside configuration space. The
// error wraps cabi.ErrInvalid.
func (r *IORequest) Validate() error {
	if !r.Processed.Valid() {
		return fmt.Errorf("%w: I/O request state %v", cabi.ErrInvalid, r.Processed)
	}
	var dir Direction
	var size uint64
	switch r.Type {
	case ReqPortIO:
		p := r.PIO()
		dir, size = p.Direction, p.Size
		if size != 1 && size != 2 && size != 4 {
			return fmt.Errorf("%w: PIO access size %d", cabi.ErrInvalid, size)
		}
		if p.Address > 0xffff || p.Address+size > 0x10000 {
			return fmt.Errorf("%w: PIO port %#x size %d", cabi.ErrInvalid, p.Address, size)
		}
	case ReqMMIO, ReqWP:
		m := r.MMIO()
		dir, size = m.Direction, m.Size
		if size != 1 && size != 2 && size != 4 && size != 8 {
			return fmt.Errorf("%w: MMIO access size %d", cabi.ErrInvalid, size)
		}
		if r.Type == ReqWP && dir != DirWrite {
			return fmt.Errorf("%w: WP request with direction %v", cabi.ErrInvalid, dir)
		}
	case ReqPCICfg:
		p := r.PCI()
		dir, size = p.Direction, p.Size
		if size != 1 && size != 2 && size != 4 {
			return fmt.Errorf("%w: PCI config access size %d", cabi.ErrInvalid, size)
		}
		if p.Bus > 0xff || p.Dev > 0x1f || p.Func > 7 || p.Reg > 0xfff || uint64(p.Reg)+size > 0x1000 {
			return fmt.Errorf("%w: PCI config %02x:%02x.%x reg %#x size %d", cabi.ErrInvalid, p.Bus, p.Dev, p.Func, p.Reg, size)
		}
	default:
		return fmt.Errorf("%w: I/O request type %v", cabi.ErrInvalid, r.Type)
	}
	if dir != DirRead && dir != DirWrite {
		return fmt.Errorf("%w: %v request direction %v", cabi.ErrInvalid, r.Type, dir)
	}
	return nil
}

func (p *PIORequest) encode(b []byte) {
	cabi.LE.PutUint32(b[0:], uint32(p.Direction))
	cabi.LE.PutUint32(b[4:], p.Reserved)
	cabi.LE.PutUint64(b[8:], p.Address)
	cabi.LE.PutUint64(b[16:], p.Size)
	cabi.LE.PutUint32(b[24:], p.Value)
	clear(b[28:PIORequestSize])
}

func (p *PIORequest) decode(b []byte) {
	p.Direction = Direction(cabi.LE.Uint32(b[0:]))
	p.Reserved = cabi.LE.Uint32(b[4:])
	p.Address = cabi.LE.Uint64(b[8:])
	p.Size = cabi.LE.Uint64(b[16:])
	p.Value = cabi.LE.Uint32(b[24:])
}

// SizeOf returns PIORequestSize.
func (p *PIORequest) SizeOf() int { return PIORequestSize }

// Encode writes p's 32 bytes to b.
func (p *PIORequest) Encode(b []byte) error {
	if len(b) < PIORequestSize {
		return cabi.ShortError("encode", "acrn_pio_request", PIORequestSize, len(b))
	}
	p.encode(b)
	return nil
}

// Decode reads p's 32 bytes from b.
func (p *PIORequest) Decode(b []byte) error {
	if len(b) < PIORequestSize {
		return cabi.ShortError("decode", "acrn_pio_request", PIORequestSize, len(b))
	}
	p.decode(b)
	return nil
}

func (m *MMIORequest) encode(b []byte) {
	cabi.LE.PutUint32(b[0:], uint32(m.Direction))
	cabi.LE.PutUint32(b[4:], m.Reserved)
	cabi.LE.PutUint64(b[8:], m.Address)
	cabi.LE.PutUint64(b[16:], m.Size)
	cabi.LE.PutUint64(b[24:], m.Value)
}

func (m *MMIORequest) decode(b []byte) {
	m.Direction = Direction(cabi.LE.Uint32(b[0:]))
	m.Reserved = cabi.LE.Uint32(b[4:])
	m.Address = cabi.LE.Uint64(b[8:])
	m.Size = cabi.LE.Uint64(b[16:])
	m.Value = cabi.LE.Uint64(b[24:])
}

// SizeOf returns MMIORequestSize.
func (m *MMIORequest) SizeOf() int { return MMIORequestSize }

// Encode writes m's 32 bytes to b.
func (m *MMIORequest) Encode(b []byte) error {
	if len(b) < MMIORequestSize {
		return cabi.ShortError("encode", "acrn_mmio_request", MMIORequestSize, len(b))
	}
	m.encode(b)
	return nil
}

// Decode reads m's 32 bytes from b.
func (m *MMIORequest) Decode(b []byte) error {
	if len(b) < MMIORequestSize {
		return cabi.ShortError("decode", "acrn_mmio_request", MMIORequestSize, len(b))
	}
	m.decode(b)
	return nil
}

func (p *PCIRequest) encode(b []byte) {
	cabi.LE.PutUint32(b[0:], uint32(p.Direction))
	for i, v := range p.Reserved {
		cabi.LE.PutUint32(b[4+4*i:], v)
	}
	cabi.LE.PutUint64(b[16:], p.Size)
	cabi.LE.PutUint32(b[24:], p.Value)
	cabi.LE.PutUint32(b[28:], p.Bus)
	cabi.LE.PutUint32(b[32:], p.Dev)
	cabi.LE.PutUint32(b[36:], p.Func)
	cabi.LE.PutUint32(b[40:], p.Reg)
	clear(b[44:PCIRequestSize])
}

func (p *PCIRequest) decode(b []byte) {
	p.Direction = Direction(cabi.LE.Uint32(b[0:]))
	for i := range p.Reserved {
		p.Reserved[i] = cabi.LE.Uint32(b[4+4*i:])
	}
	p.Size = cabi.LE.Uint64(b[16:])
	p.Value = cabi.LE.Uint32(b[24:])
	p.Bus = cabi.LE.Uint32(b[28:])
	p.Dev = cabi.LE.Uint32(b[32:])
	p.Func = cabi.LE.Uint32(b[36:])
	p.Reg = cabi.LE.Uint32(b[40:])
}

// SizeOf returns PCIRequestSize.
func (p *PCIRequest) SizeOf() int { return PCIRequestSize }

// Encode writes p's 48 bytes to b.
func (p *PCIRequest) Encode(b []byte) error {
	if len(b) < PCIRequestSize {
		return cabi.ShortError("encode", "acrn_pci_request", PCIRequestSize, len(b))
	}
	p.encode(b)
	return nil
}

// Decode reads p's 48 bytes from b.
func (p *PCIRequest) Decode(b []byte) error {
	if len(b) < PCIRequestSize {
		return cabi.ShortError("decode", "acrn_pci_request", PCIRequestSize, len(b))
	}
	p.decode(b)
	return nil
}

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
