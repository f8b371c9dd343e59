package boot

import (
	"encoding/binary"
	"fmt"

	lzo "github.com/anchore/go-lzo"
)

// lzop header flags (from the lzop file format).
const (
	lzopAdler32D   = 0x0001
	lzopAdler32C   = 0x0002
	lzopExtraField = 0x0040
	lzopCRC32D     = 0x0100
	lzopCRC32C     = 0x0200
	lzopFilter     = 0x0800
	// lzoBlockMax is the largest block the kernel's unlzo accepts.
	lzoBlockMax = 256 << 10
)

// unlzop decodes an lzop file, as the kernel's LZO payload is: the lzop
// header, then blocks of (uncompressed size, compressed size, checksums,
// LZO1X data), ended by an uncompressed size of zero. A block whose two
// sizes are equal is stored as it is.
func unlzop(stream []byte, limit uint64) ([]byte, error) {
	p := &lzopParser{b: stream}
	flags, err := p.header()
	if err != nil {
		return nil, err
	}
	var out []byte
	for {
		dlen, ok := p.u32()
		if !ok {
			return nil, fmt.Errorf("lzo block size: %w", ErrTruncated)
		}
		if dlen == 0 {
			return out, nil
		}
		slen, ok := p.u32()
		if !ok {
			return nil, fmt.Errorf("lzo block size: %w", ErrTruncated)
		}
		if dlen > lzoBlockMax || slen == 0 || slen > dlen {
			return nil, fmt.Errorf("lzo block %d -> %d bytes: %w", slen, dlen, ErrCorruptPayload)
		}
		if uint64(len(out))+uint64(dlen) > limit {
			return nil, fmt.Errorf("more than %d bytes: %w", limit, ErrCorruptPayload)
		}
		skip := 0
		if flags&lzopAdler32D != 0 {
			skip += 4
		}
		if flags&lzopCRC32D != 0 {
			skip += 4
		}
		if slen < dlen {
			if flags&lzopAdler32C != 0 {
				skip += 4
			}
			if flags&lzopCRC32C != 0 {
				skip += 4
			}
		}
		if !p.skip(skip) {
			return nil, fmt.Errorf("lzo block checksum: %w", ErrTruncated)
		}
		src, ok := p.take(int(slen))
		if !ok {
			return nil, fmt.Errorf("lzo block of %d bytes: %w", slen, ErrTruncated)
		}
		if slen == dlen {
			out = append(out, src...)
			continue
		}
		start := len(out)
		out = append(out, make([]byte, dlen)...)
		n, err := lzo.Decompress(src, out[start:])
		if err != nil {
			return nil, corrupt(err)
		}
		if n != int(dlen) {
			return nil, fmt.Errorf("lzo block gave %d bytes, want %d: %w", n, dlen, ErrCorruptPayload)
		}
	}
}

type lzopParser struct{ b []byte }

func (p *lzopParser) take(n int) ([]byte, bool) {
	if n < 0 || n > len(p.b) {
		return nil, false
	}
	v := p.b[:n]
	p.b = p.b[n:]
	return v, true
}

func (p *lzopParser) skip(n int) bool { _, ok := p.take(n); return ok }

func (p *lzopParser) u8() (uint8, bool) {
	v, ok := p.take(1)
	if !ok {
		return 0, false
	}
	return v[0], true
}

func (p *lzopParser) u16() (uint16, bool) {
	v, ok := p.take(2)
	if !ok {
		return 0, false
	}
	return binary.BigEndian.Uint16(v), true
}

func (p *lzopParser) u32() (uint32, bool) {
	v, ok := p.take(4)
	if !ok {
		return 0, false
	}
	return binary.BigEndian.Uint32(v), true
}

// header parses the lzop file header and returns its flags:
// magic(9) version(2) lib_version(2) [version_needed(2)] method(1)
// [level(1)] flags(4) [filter(4)] mode(4) mtime_low(4) [mtime_high(4)]
// name_len(1) name checksum(4); the bracketed fields exist from version
// 0x0940 on, the filter only with its flag.
func (p *lzopParser) header() (uint32, error) {
	trunc := fmt.Errorf("lzop header: %w", ErrTruncated)
	if !p.skip(len(magicLZO)) {
		return 0, trunc
	}
	version, ok := p.u16()
	if !ok || !p.skip(2) {
		return 0, trunc
	}
	if version >= 0x0940 && !p.skip(2) {
		return 0, trunc
	}
	method, ok := p.u8()
	if !ok {
		return 0, trunc
	}
	if method < 1 || method > 3 { // LZO1X_1, LZO1X_1_15, LZO1X_999
		return 0, fmt.Errorf("lzop method %d is not LZO1X: %w", method, ErrCorruptPayload)
	}
	if version >= 0x0940 && !p.skip(1) {
		return 0, trunc
	}
	flags, ok := p.u32()
	if !ok {
		return 0, trunc
	}
	if flags&lzopExtraField != 0 {
		return 0, fmt.Errorf("lzop extra field: %w", ErrCorruptPayload)
	}
	if flags&lzopFilter != 0 && !p.skip(4) {
		return 0, trunc
	}
	if !p.skip(8) {
		return 0, trunc
	}
	if version >= 0x0940 && !p.skip(4) {
		return 0, trunc
	}
	nameLen, ok := p.u8()
	if !ok || !p.skip(int(nameLen)+4) {
		return 0, trunc
	}
	return flags, nil
}
