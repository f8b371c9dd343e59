package boot

import (
	"encoding/binary"
	"fmt"

	"github.com/pierrec/lz4/v4"
)

// lz4LegacyBlock is the uncompressed size of every block of an LZ4 legacy
// frame but the last (8 MiB).
const lz4LegacyBlock = 8 << 20

// unlz4Legacy decodes the LZ4 legacy frame the kernel is built with
// (lz4 -l): the magic 0x184C2102, then blocks, each a 4-byte little-endian
// compressed size and that many bytes, every block decompressing to 8 MiB
// except the last. A repeated magic starts a concatenated frame.
func unlz4Legacy(stream []byte, limit uint64) ([]byte, error) {
	if len(stream) < len(magicLZ4) {
		return nil, fmt.Errorf("lz4 magic: %w", ErrTruncated)
	}
	le := binary.LittleEndian
	magic := le.Uint32(magicLZ4)
	in := stream[len(magicLZ4):]
	var out []byte
	var block []byte
	for len(in) > 0 {
		if len(in) < 4 {
			return nil, fmt.Errorf("lz4 block size: %w", ErrTruncated)
		}
		n := le.Uint32(in)
		in = in[4:]
		if n == magic {
			continue
		}
		if n == 0 || uint64(n) > uint64(len(in)) || n > uint32(lz4.CompressBlockBound(lz4LegacyBlock)) {
			return nil, fmt.Errorf("lz4 block of %d bytes with %d left: %w", n, len(in), ErrCorruptPayload)
		}
		room := min(uint64(lz4LegacyBlock), limit-uint64(len(out)))
		if room == 0 {
			return nil, fmt.Errorf("more than %d bytes: %w", limit, ErrCorruptPayload)
		}
		if block == nil {
			// One block's worth at most, and no more than the limit.
			block = make([]byte, min(uint64(lz4LegacyBlock), limit))
		}
		got, err := lz4.UncompressBlock(in[:n], block[:room])
		if err != nil {
			return nil, corrupt(err)
		}
		out = append(out, block[:got]...)
		in = in[n:]
	}
	return out, nil
}
