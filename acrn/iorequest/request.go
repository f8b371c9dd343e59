package iorequest

import "ember/acrn/internal/cabi"

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
