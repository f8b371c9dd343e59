package iorequest

import "ember/acrn/internal/cabi"

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
