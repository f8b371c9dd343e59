package vtd

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// ErrNotRAM is returned for a DMA whose translated address is not guest RAM.
var ErrNotRAM = errors.New("vtd: DMA target is not guest RAM")

// Entry fields of the root, context and second-level paging entries.
const (
	entryP       = 1 << 0 // root/context entry: present
	ctxFPD       = 1 << 1 // context entry: fault processing disable
	pteR         = 1 << 0
	pteW         = 1 << 1
	ptePS        = 1 << 7 // a super page (levels 2 and 3)
	addrMask     = 0x000ffffffffff000
	rootReserved = 0xffe | 0xfff0000000000000 // lo quad: bits 11:1, 63:52
	ctxLoRsvd    = 0xff0 | 0xfff0000000000000 // lo quad: bits 11:4, 63:52
	ctxHiRsvd    = 0xffffff0000000080         // hi quad: bit 7, 63:24
	pteReserved  = 0x7ff0000000000000         // bits 62:52 (bit 63, SNP/TM, ignored)
	ttMultiLevel = 0
	ttPassThru   = 2
	pageShift    = 12
	maxAGAW      = 48
)

// Translate translates one DMA of the function sid (bus << 8 | devfn) at
// the I/O virtual address iova: a write if write. It returns the
// guest-physical address and how many bytes from there the same mapping
// covers (to the end of its page or super page). With translation off the
// address is its own translation. A request the tables refuse is recorded
// as a fault (unless the context disables fault processing) and returned as
// a *Fault.
func (u *Unit) Translate(sid uint16, iova uint64, write bool) (gpa, n uint64, err error) {
	u.mu.Lock()
	defer u.unlock()
	return u.translate(sid, iova, write)
}

func (u *Unit) translate(sid uint16, iova uint64, write bool) (uint64, uint64, error) {
	if u.gsts&gcmdTE == 0 {
		return iova, 1<<pageShift - iova&(1<<pageShift-1), nil
	}
	fault := func(r Reason, record bool) error {
		return u.record(&Fault{Reason: r, Source: sid, Addr: iova, Write: write}, record)
	}
	root, err := u.read16(u.rootTable&addrMask + uint64(sid>>8)*16)
	switch {
	case err != nil:
		return 0, 0, fault(ReasonRootAccess, true)
	case root[0]&entryP == 0:
		return 0, 0, fault(ReasonRootNotPresent, true)
	case root[0]&rootReserved != 0 || root[1] != 0:
		return 0, 0, fault(ReasonRootReserved, true)
	}
	ctx, err := u.read16(root[0]&addrMask + uint64(sid&0xff)*16)
	switch {
	case err != nil:
		return 0, 0, fault(ReasonContextAccess, true)
	case ctx[0]&entryP == 0:
		return 0, 0, fault(ReasonContextNotPresent, true)
	}
	record := ctx[0]&ctxFPD == 0
	if ctx[0]&ctxLoRsvd != 0 || ctx[1]&ctxHiRsvd != 0 {
		return 0, 0, fault(ReasonContextReserved, record)
	}
	switch tt := ctx[0] >> 2 & 3; tt {
	case ttPassThru:
		return iova, 1<<pageShift - iova&(1<<pageShift-1), nil
	case ttMultiLevel:
	default:
		return 0, 0, fault(ReasonTranslationType, record)
	}
	var levels int
	switch ctx[1] & 7 {
	case 1:
		levels = 3
	case 2:
		levels = 4
	default:
		return 0, 0, fault(ReasonContextInvalid, record)
	}
	if iova>>(pageShift+9*levels) != 0 {
		return 0, 0, fault(ReasonBeyondAGAW, record)
	}
	gpa, size, r := u.walk(ctx[0]&addrMask, levels, iova, write)
	if r != 0 {
		return 0, 0, fault(r, record)
	}
	return gpa, size - iova&(size-1), nil
}

// walk walks the second-level tables at table with levels levels for iova.
// It returns the address iova maps to and the size of its page, or the
// fault reason.
func (u *Unit) walk(table uint64, levels int, iova uint64, write bool) (uint64, uint64, Reason) {
	perm := uint64(pteR | pteW)
	for level := levels; level >= 1; level-- {
		shift := uint(pageShift + 9*(level-1))
		var b [8]byte
		if _, err := u.cfg.Mem.ReadAt(b[:], int64(table+(iova>>shift&0x1ff)*8)); err != nil {
			return 0, 0, ReasonPagingAccess
		}
		pte := binary.LittleEndian.Uint64(b[:])
		perm &= pte
		if pte&(pteR|pteW) == 0 || write && perm&pteW == 0 || !write && perm&pteR == 0 {
			if write {
				return 0, 0, ReasonWrite
			}
			return 0, 0, ReasonRead
		}
		if pte&pteReserved != 0 {
			return 0, 0, ReasonPagingReserved
		}
		size := uint64(1) << shift
		if level == 1 || pte&ptePS != 0 {
			if level > 3 || pte&addrMask&(size-1) != 0 {
				return 0, 0, ReasonPagingReserved // PS at level 4, or a misaligned super page
			}
			return pte&addrMask | iova&(size-1), size, 0
		}
		table = pte & addrMask
	}
	return 0, 0, ReasonPagingReserved // not reached: level 1 always ends the walk
}

// read16 reads a 16-byte table entry at gpa from guest RAM.
func (u *Unit) read16(gpa uint64) ([2]uint64, error) {
	var b [16]byte
	if _, err := u.cfg.Mem.ReadAt(b[:], int64(gpa)); err != nil {
		return [2]uint64{}, err
	}
	return [2]uint64{binary.LittleEndian.Uint64(b[:]), binary.LittleEndian.Uint64(b[8:])}, nil
}

// DMARead reads len(p) bytes of a DMA of the function sid at iova,
// translating page by page. Nothing outside guest RAM is touched: a refused
// translation returns its *Fault, a target that is not RAM ErrNotRAM; the
// bytes before the failing page have been read.
func (u *Unit) DMARead(sid uint16, iova uint64, p []byte) error {
	return u.dma(sid, iova, p, false)
}

// DMAWrite writes p by a DMA of the function sid at iova, as DMARead reads.
func (u *Unit) DMAWrite(sid uint16, iova uint64, p []byte) error {
	return u.dma(sid, iova, p, true)
}

func (u *Unit) dma(sid uint16, iova uint64, p []byte, write bool) error {
	for len(p) > 0 {
		gpa, n, err := u.Translate(sid, iova, write)
		if err != nil {
			return err
		}
		n = min(n, uint64(len(p)))
		if write {
			_, err = u.cfg.Mem.WriteAt(p[:n], int64(gpa))
		} else {
			_, err = u.cfg.Mem.ReadAt(p[:n], int64(gpa))
		}
		if err != nil {
			return fmt.Errorf("%w: %#x (IOVA %#x): %v", ErrNotRAM, gpa, iova, err)
		}
		p, iova = p[n:], iova+n
	}
	return nil
}
