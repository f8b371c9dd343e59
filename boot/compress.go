package boot

import (
	"bytes"
	"compress/bzip2"
	"compress/gzip"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/klauspost/compress/zstd"
	"github.com/therootcompany/xz"
	"github.com/ulikunitz/xz/lzma"
)

// Compression names a bzImage payload compression.
type Compression int

// The compressions Linux can build an x86 bzImage with, and None for an ELF
// payload that is not compressed at all.
const (
	CompressionUnknown Compression = iota
	CompressionNone
	CompressionGzip
	CompressionBzip2
	CompressionLZMA
	CompressionXZ
	CompressionLZ4
	CompressionZstd
	CompressionLZO
)

func (c Compression) String() string {
	switch c {
	case CompressionNone:
		return "none"
	case CompressionGzip:
		return "gzip"
	case CompressionBzip2:
		return "bzip2"
	case CompressionLZMA:
		return "lzma"
	case CompressionXZ:
		return "xz"
	case CompressionLZ4:
		return "lz4"
	case CompressionZstd:
		return "zstd"
	case CompressionLZO:
		return "lzo"
	}
	return "unknown"
}

// MaxKernelSize caps the size of a decompressed kernel, so that a hostile
// image cannot make the host allocate without bound. Real x86-64 kernels
// decompress to a few tens of MiB.
const MaxKernelSize = 512 << 20

// xzDictMax caps the LZMA2 dictionary an xz payload may ask for; the kernel
// builds with 32 MiB (scripts/xz_wrap.sh).
const xzDictMax = 64 << 20

// zstdWindowMax is the largest zstd window accepted: that of zstd -22
// --ultra (window log 27), which the kernel build uses.
const zstdWindowMax = 128 << 20

var (
	magicGzip    = []byte{0x1f, 0x8b}
	magicGzipOld = []byte{0x1f, 0x9e}
	magicBzip2   = []byte{'B', 'Z', 'h'}
	magicLZMA    = []byte{0x5d, 0x00, 0x00}
	magicXZ      = []byte{0xfd, '7', 'z', 'X', 'Z', 0x00}
	magicLZ4     = []byte{0x02, 0x21, 0x4c, 0x18} // 0x184C2102, legacy frame
	magicZstd    = []byte{0x28, 0xb5, 0x2f, 0xfd}
	magicLZO     = []byte{0x89, 'L', 'Z', 'O', 0x00, 0x0d, 0x0a, 0x1a, 0x0a}
	magicELF     = []byte{0x7f, 'E', 'L', 'F'}
)

// DetectCompression identifies a payload by its magic bytes (boot.rst,
// payload_offset; the lzop magic for LZO, which boot.rst does not list).
func DetectCompression(payload []byte) Compression {
	switch {
	case bytes.HasPrefix(payload, magicGzip), bytes.HasPrefix(payload, magicGzipOld):
		return CompressionGzip
	case bytes.HasPrefix(payload, magicBzip2):
		return CompressionBzip2
	case bytes.HasPrefix(payload, magicLZMA):
		return CompressionLZMA
	case bytes.HasPrefix(payload, magicXZ):
		return CompressionXZ
	case bytes.HasPrefix(payload, magicLZ4):
		return CompressionLZ4
	case bytes.HasPrefix(payload, magicZstd):
		return CompressionZstd
	case bytes.HasPrefix(payload, magicLZO):
		return CompressionLZO
	case bytes.HasPrefix(payload, magicELF):
		return CompressionNone
	}
	return CompressionUnknown
}

// Decompress decompresses a bzImage payload: a compressed stream followed by
// the 4-byte little-endian size of its decompressed contents (the kernel
// build's size_append, read by mkpiggy). The result must have exactly that
// size, which may not exceed MaxKernelSize. An uncompressed ELF payload is
// returned as it is.
func Decompress(payload []byte) ([]byte, Compression, error) {
	return decompress(payload, MaxKernelSize)
}

func decompress(payload []byte, limit uint64) ([]byte, Compression, error) {
	c := DetectCompression(payload)
	switch c {
	case CompressionUnknown:
		n := min(len(payload), 4)
		return nil, c, fmt.Errorf("payload starts % x: %w", payload[:n], ErrUnknownCompression)
	case CompressionNone:
		return payload, c, nil
	}
	if len(payload) < 4+4 {
		return nil, c, fmt.Errorf("%v payload of %d bytes: %w", c, len(payload), ErrTruncated)
	}
	stream := payload[:len(payload)-4]
	want := uint64(binary.LittleEndian.Uint32(payload[len(payload)-4:]))
	if want > limit {
		return nil, c, fmt.Errorf("%v payload decompresses to %d bytes, limit %d: %w", c, want, limit, ErrKernelTooLarge)
	}
	out, err := decompressStream(c, stream, want)
	if err != nil {
		return nil, c, fmt.Errorf("%v payload: %w", c, err)
	}
	if uint64(len(out)) != want {
		return nil, c, fmt.Errorf("%v payload decompressed to %d bytes, trailer says %d: %w", c, len(out), want, ErrCorruptPayload)
	}
	return out, c, nil
}

// decompressStream decodes one stream of compression c. It returns an error
// wrapping ErrCorruptPayload if the stream is bad or decodes to more than
// limit bytes; it never allocates much more than limit.
func decompressStream(c Compression, stream []byte, limit uint64) ([]byte, error) {
	var r io.Reader
	switch c {
	case CompressionGzip:
		zr, err := gzip.NewReader(bytes.NewReader(stream))
		if err != nil {
			return nil, corrupt(err)
		}
		zr.Multistream(false)
		r = zr
	case CompressionBzip2:
		r = bzip2.NewReader(bytes.NewReader(stream))
	case CompressionLZMA:
		hdr, err := lzmaHeader(stream, limit)
		if err != nil {
			return nil, err
		}
		lr, err := lzma.ReaderConfig{DictCap: lzma.MaxDictCap}.NewReader(io.MultiReader(bytes.NewReader(hdr), bytes.NewReader(stream[len(hdr):])))
		if err != nil {
			return nil, corrupt(err)
		}
		r = lr
	case CompressionXZ:
		xr, err := xz.NewReader(bytes.NewReader(stream), xzDictMax)
		if err != nil {
			return nil, corrupt(err)
		}
		r = xr
	case CompressionZstd:
		return unzstd(stream, limit)
	case CompressionLZ4:
		return unlz4Legacy(stream, limit)
	case CompressionLZO:
		return unlzop(stream, limit)
	default:
		return nil, fmt.Errorf("%v: %w", c, ErrUnknownCompression)
	}
	return readLimited(r, limit, len(stream))
}

// readLimited reads r to its end, failing if it yields more than limit
// bytes. The buffer grows with the output rather than being sized by a
// claim in the image.
func readLimited(r io.Reader, limit uint64, inLen int) ([]byte, error) {
	var buf bytes.Buffer
	buf.Grow(int(min(limit, uint64(inLen)*4+4096)))
	n, err := io.Copy(&buf, io.LimitReader(r, int64(limit)+1))
	if err != nil {
		return nil, corrupt(err)
	}
	if uint64(n) > limit {
		return nil, fmt.Errorf("more than %d bytes: %w", limit, ErrCorruptPayload)
	}
	return buf.Bytes(), nil
}

func corrupt(err error) error {
	if errors.Is(err, ErrCorruptPayload) {
		return err
	}
	return fmt.Errorf("%w: %v", ErrCorruptPayload, err)
}

// lzmaHeader returns a copy of the 13-byte .lzma header with its dictionary
// size lowered to limit: a dictionary larger than the whole output is never
// used, and this keeps a forged header from making the decoder allocate one.
func lzmaHeader(stream []byte, limit uint64) ([]byte, error) {
	if len(stream) < lzma.HeaderLen {
		return nil, fmt.Errorf("lzma header needs %d bytes: %w", lzma.HeaderLen, ErrTruncated)
	}
	hdr := bytes.Clone(stream[:lzma.HeaderLen])
	dict := uint64(binary.LittleEndian.Uint32(hdr[1:]))
	if dict > limit {
		dict = max(limit, lzma.MinDictCap)
		binary.LittleEndian.PutUint32(hdr[1:], uint32(dict))
	}
	return hdr, nil
}

func unzstd(stream []byte, limit uint64) ([]byte, error) {
	d, err := zstd.NewReader(nil,
		zstd.WithDecoderConcurrency(1),
		// The window may be larger than the output (the kernel is
		// compressed from a pipe, so zstd -22 picks a 128 MiB window),
		// and the decoder refuses windows above its memory limit. DecodeAll
		// does not allocate the window, so a limit of 128 MiB costs nothing
		// unless the stream really decodes to that much.
		zstd.WithDecoderMaxMemory(max(limit, zstdWindowMax)))
	if err != nil {
		return nil, corrupt(err)
	}
	defer d.Close()
	out, err := d.DecodeAll(stream, nil)
	if err != nil {
		return nil, corrupt(err)
	}
	if uint64(len(out)) > limit {
		return nil, fmt.Errorf("more than %d bytes: %w", limit, ErrCorruptPayload)
	}
	return out, nil
}
