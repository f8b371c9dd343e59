package boot

import (
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"errors"
	"hash/adler32"
	"os/exec"
	"testing"

	"github.com/klauspost/compress/zstd"
	"github.com/pierrec/lz4/v4"
	"github.com/ulikunitz/xz"
	"github.com/ulikunitz/xz/lzma"
)

// fakeMem is sparse guest memory laid out as MemoryMap(size) describes.
type fakeMem struct {
	size  uint64
	pages map[uint64][]byte
}

func newMem(size uint64) *fakeMem { return &fakeMem{size: size, pages: map[uint64][]byte{}} }

func (m *fakeMem) Size() uint64 { return m.size }

func (m *fakeMem) WriteAt(p []byte, off int64) (int, error) {
	if off < 0 || !inRAM(backing(m.size), uint64(off), uint64(len(p))) {
		return 0, errors.New("fake memory: write out of range")
	}
	addr := uint64(off)
	for i := 0; i < len(p); {
		a := addr + uint64(i)
		pg := m.pages[a&^0xfff]
		if pg == nil {
			pg = make([]byte, 0x1000)
			m.pages[a&^0xfff] = pg
		}
		i += copy(pg[a&0xfff:], p[i:])
	}
	return len(p), nil
}

func (m *fakeMem) read(addr, n uint64) []byte {
	out := make([]byte, n)
	for i := uint64(0); i < n; {
		a := addr + i
		k := uint64(copy(out[i:], make([]byte, 0x1000-a&0xfff)))
		if pg := m.pages[a&^0xfff]; pg != nil {
			copy(out[i:i+k], pg[a&0xfff:])
		}
		i += k
	}
	return out
}

type testSeg struct {
	paddr uint64
	data  []byte
	memsz uint64
}

// buildELF writes an x86 (ELF32) or x86-64 (ELF64) executable: header,
// program headers, an optional note segment, then the segments' data.
func buildELF(is64 bool, entry uint64, segs []testSeg, notes []byte) []byte {
	le := binary.LittleEndian
	hsize, psize := ehdr32Size, phdr32Size
	if is64 {
		hsize, psize = ehdr64Size, phdr64Size
	}
	nph := len(segs)
	if notes != nil {
		nph++
	}
	off := hsize + nph*psize
	var b bytes.Buffer
	h := make([]byte, hsize)
	copy(h, magicELF)
	h[5], h[6] = elfDataLSB, elfVersion
	le.PutUint16(h[16:], etExec)
	if is64 {
		h[4] = elfClass64
		le.PutUint16(h[18:], emX86_64)
		le.PutUint64(h[24:], entry)
		le.PutUint64(h[32:], uint64(hsize))
		le.PutUint16(h[54:], uint16(psize))
		le.PutUint16(h[56:], uint16(nph))
	} else {
		h[4] = elfClass32
		le.PutUint16(h[18:], em386)
		le.PutUint32(h[24:], uint32(entry))
		le.PutUint32(h[28:], uint32(hsize))
		le.PutUint16(h[42:], uint16(psize))
		le.PutUint16(h[44:], uint16(nph))
	}
	b.Write(h)
	var body bytes.Buffer
	ph := func(typ uint32, off, paddr, filesz, memsz uint64) {
		p := make([]byte, psize)
		if is64 {
			le.PutUint32(p, typ)
			le.PutUint32(p[4:], 7)
			le.PutUint64(p[8:], off)
			le.PutUint64(p[16:], paddr|0xffffffff80000000)
			le.PutUint64(p[24:], paddr)
			le.PutUint64(p[32:], filesz)
			le.PutUint64(p[40:], memsz)
		} else {
			le.PutUint32(p, typ)
			le.PutUint32(p[4:], uint32(off))
			le.PutUint32(p[8:], uint32(paddr))
			le.PutUint32(p[12:], uint32(paddr))
			le.PutUint32(p[16:], uint32(filesz))
			le.PutUint32(p[20:], uint32(memsz))
			le.PutUint32(p[24:], 7)
		}
		b.Write(p)
	}
	for _, s := range segs {
		ph(ptLoad, uint64(off+body.Len()), s.paddr, uint64(len(s.data)), s.memsz)
		body.Write(s.data)
	}
	if notes != nil {
		ph(ptNote, uint64(off+body.Len()), 0, uint64(len(notes)), 0)
		body.Write(notes)
	}
	b.Write(body.Bytes())
	return b.Bytes()
}

// pvhNote is an ELF note XEN_ELFNOTE_PHYS32_ENTRY, named "Xen", preceded by
// an unrelated note so that the walk is exercised.
func pvhNote(entry uint32) []byte {
	le := binary.LittleEndian
	var b bytes.Buffer
	w := func(v uint32) { _ = binary.Write(&b, le, v) }
	w(4)
	w(3)
	w(1)
	b.WriteString("GNU\x00")
	b.Write([]byte{1, 2, 3, 0})
	w(4)
	w(4)
	w(xenElfnotePhys32Entry)
	b.WriteString("Xen\x00")
	w(entry)
	return b.Bytes()
}

const (
	testEntry    = 0x1000000
	testPVHEntry = 0x1000100
	testTextSize = 0x6000
	testMemsz    = 0xa000
)

// testVmlinux is a small stand-in for the vmlinux inside a bzImage: an
// ELF64 with one segment at 16 MiB whose last part is bss, a PVH note, and
// relocation data appended after the ELF as in vmlinux.bin.all.
func testVmlinux() []byte {
	text := make([]byte, testTextSize)
	for i := range text {
		text[i] = byte(i*7 + i>>8)
	}
	copy(text, "startup_64")
	f := buildELF(true, testEntry, []testSeg{{testEntry, text, testMemsz}}, pvhNote(testPVHEntry))
	return append(f, bytes.Repeat([]byte{0xee}, 64)...)
}

type bzOpts struct {
	version       uint16
	loadflags     uint8
	xloadflags    uint16
	cmdlineSize   uint32
	initrdAddrMax uint32
	initSize      uint32
	payload       []byte // with its size trailer
}

func defaultBzOpts(payload []byte) bzOpts {
	return bzOpts{
		version:       0x020f,
		loadflags:     LoadedHigh,
		xloadflags:    XLFKernel64 | XLFCanBeLoadedAbove4G,
		cmdlineSize:   2047,
		initrdAddrMax: 0x7fffffff,
		initSize:      0x100000,
		payload:       payload,
	}
}

const (
	testSetupSects = 4
	testPMStub     = 0x300 // protected-mode code before the payload
)

// buildBzImage writes a bzImage: boot sector and setup with a setup header,
// then protected-mode code holding the payload.
func buildBzImage(o bzOpts) []byte {
	le := binary.LittleEndian
	setup := make([]byte, (testSetupSects+1)*512)
	setup[offSetupSects] = testSetupSects
	le.PutUint16(setup[offBootFlag:], bootFlagMagic)
	setup[offJump], setup[offJump+1] = 0xeb, 0x6a // header ends at 0x26c
	le.PutUint32(setup[offHeader:], hdrSMagic)
	le.PutUint16(setup[offVersion:], o.version)
	le.PutUint16(setup[offKernelVersion:], 0x200)
	copy(setup[0x400:], "6.1.0-ember-test (boot@ember) #1\x00")
	setup[offLoadflags] = o.loadflags
	le.PutUint32(setup[offCode32Start:], 0x100000)
	le.PutUint32(setup[offInitrdAddrMax:], o.initrdAddrMax)
	le.PutUint32(setup[offKernelAlignment:], 0x200000)
	setup[offRelocatable] = 1
	setup[offMinAlignment] = 21
	le.PutUint16(setup[offXLoadflags:], o.xloadflags)
	le.PutUint32(setup[offCmdlineSize:], o.cmdlineSize)
	le.PutUint32(setup[offPayloadOffset:], testPMStub)
	le.PutUint32(setup[offPayloadLength:], uint32(len(o.payload)))
	le.PutUint64(setup[offPrefAddress:], 0x1000000)
	le.PutUint32(setup[offInitSize:], o.initSize)
	pm := bytes.Repeat([]byte{0x90}, testPMStub)
	pm = append(pm, o.payload...)
	pm = append(pm, make([]byte, 16-len(pm)%16)...)
	le.PutUint32(setup[offSyssize:], uint32(len(pm)/16))
	return append(setup, pm...)
}

func withTrailer(stream []byte, size int) []byte {
	return binary.LittleEndian.AppendUint32(bytes.Clone(stream), uint32(size))
}

// compressor makes a compressed stream of data, or reports that it cannot
// (a command-line tool that is not installed).
type compressor struct {
	name string
	c    Compression
	fn   func(t testing.TB, data []byte) ([]byte, bool)
}

func cli(name string, args ...string) func(testing.TB, []byte) ([]byte, bool) {
	return func(t testing.TB, data []byte) ([]byte, bool) {
		t.Helper()
		if _, err := exec.LookPath(name); err != nil {
			return nil, false
		}
		cmd := exec.Command(name, args...)
		cmd.Stdin = bytes.NewReader(data)
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("%s %v: %v", name, args, err)
		}
		return out, true
	}
}

var compressors = []compressor{
	{"gzip (compress/gzip)", CompressionGzip, func(t testing.TB, d []byte) ([]byte, bool) {
		var b bytes.Buffer
		w, _ := gzip.NewWriterLevel(&b, gzip.BestCompression)
		w.Write(d)
		w.Close()
		return b.Bytes(), true
	}},
	{"gzip -9 (as the kernel builds it)", CompressionGzip, cli("gzip", "-n", "-9", "-c")},
	{"bzip2 -9", CompressionBzip2, cli("bzip2", "-9", "-c")},
	{"lzma (ulikunitz/xz)", CompressionLZMA, func(t testing.TB, d []byte) ([]byte, bool) {
		var b bytes.Buffer
		w, err := lzma.WriterConfig{SizeInHeader: false, EOSMarker: true}.NewWriter(&b)
		if err != nil {
			t.Fatal(err)
		}
		w.Write(d)
		w.Close()
		return b.Bytes(), true
	}},
	{"lzma -9 (as the kernel builds it)", CompressionLZMA, cli("xz", "--format=lzma", "-9", "-c")},
	{"xz (ulikunitz/xz)", CompressionXZ, func(t testing.TB, d []byte) ([]byte, bool) {
		var b bytes.Buffer
		w, err := xz.NewWriter(&b)
		if err != nil {
			t.Fatal(err)
		}
		w.Write(d)
		w.Close()
		return b.Bytes(), true
	}},
	{"xz --x86 BCJ (as scripts/xz_wrap.sh)", CompressionXZ, cli("xz", "--check=crc32", "--x86", "--lzma2=dict=32MiB", "-c")},
	{"lz4 legacy (pierrec/lz4 blocks)", CompressionLZ4, func(t testing.TB, d []byte) ([]byte, bool) {
		return lz4Legacy(t, d), true
	}},
	{"lz4 -l -9 (as the kernel builds it)", CompressionLZ4, cli("lz4", "-l", "-9", "-c")},
	{"zstd (klauspost)", CompressionZstd, func(t testing.TB, d []byte) ([]byte, bool) {
		w, _ := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedBestCompression))
		defer w.Close()
		return w.EncodeAll(d, nil), true
	}},
	{"zstd -19 --long=27 (a 128 MiB window, as zstd -22 --ultra)", CompressionZstd, cli("zstd", "-19", "--long=27", "-q", "-c")},
	{"lzop (test LZO1X encoder)", CompressionLZO, func(t testing.TB, d []byte) ([]byte, bool) {
		return lzopCompress(d), true
	}},
	{"lzop -9 (as the kernel builds it)", CompressionLZO, cli("lzop", "-9", "-c")},
}

// lz4Legacy frames data as lz4 -l does, 8 MiB blocks.
func lz4Legacy(t testing.TB, d []byte) []byte {
	out := bytes.Clone(magicLZ4)
	for len(d) > 0 {
		n := min(len(d), lz4LegacyBlock)
		dst := make([]byte, lz4.CompressBlockBound(n))
		k, err := lz4.CompressBlock(d[:n], dst, nil)
		if err != nil || k == 0 {
			t.Fatalf("lz4 block: %d, %v", k, err)
		}
		out = binary.LittleEndian.AppendUint32(out, uint32(k))
		out = append(out, dst[:k]...)
		d = d[n:]
	}
	return out
}

// lzopCompress writes an lzop file whose blocks a tiny greedy LZO1X
// encoder made, using only literal runs and M3 matches (distance up to
// 16 KiB): enough to exercise the framing and the decoder's literal, match
// and end-of-stream paths without a C compressor.
func lzopCompress(d []byte) []byte {
	be := binary.BigEndian
	b := bytes.Clone(magicLZO)
	b = be.AppendUint16(b, 0x1040) // version
	b = be.AppendUint16(b, 0x2080) // library version
	b = be.AppendUint16(b, 0x0940) // version needed
	b = append(b, 1, 5)            // method LZO1X_1, level
	b = be.AppendUint32(b, lzopAdler32D)
	b = be.AppendUint32(b, 0o100644) // mode
	b = be.AppendUint32(b, 0)        // mtime low
	b = be.AppendUint32(b, 0)        // mtime high
	b = append(b, 0)                 // no name
	b = be.AppendUint32(b, 0)        // header checksum (not checked)
	for len(d) > 0 {
		n := min(len(d), lzoBlockMax)
		chunk := d[:n]
		d = d[n:]
		blk := lzo1xCompress(chunk)
		if blk == nil || len(blk) >= n {
			blk = chunk // stored
		}
		b = be.AppendUint32(b, uint32(n))
		b = be.AppendUint32(b, uint32(len(blk)))
		b = be.AppendUint32(b, adler32.Checksum(chunk))
		b = append(b, blk...)
	}
	return be.AppendUint32(b, 0)
}

// lzo1xCompress encodes p (at least 4 bytes) as LZO1X, or returns nil.
func lzo1xCompress(p []byte) []byte {
	if len(p) < 4 {
		return nil
	}
	type token struct{ lits, mlen, dist int } // lits literals, then a match
	var toks []token
	table := map[uint32]int{}
	lit := 0
	for i := 4; i+4 <= len(p); {
		k := binary.LittleEndian.Uint32(p[i:])
		j, ok := table[k]
		table[k] = i
		if !ok || i-j > 16384 {
			i++
			continue
		}
		m := 4
		for i+m < len(p) && p[j+m] == p[i+m] && m < 264 {
			m++
		}
		toks = append(toks, token{i - lit, m, i - j})
		i += m
		lit = i
	}
	toks = append(toks, token{len(p) - lit, 0, 0})
	// The first literal run must be at least 4 bytes (guaranteed: i >= 4).
	var out []byte
	litRun := func(n int) { // state-0 literal run of n >= 4
		if n-3 <= 15 {
			out = append(out, byte(n-3))
			return
		}
		r := n - 18
		zeros := (r - 1) / 255
		out = append(out, 0)
		out = append(out, make([]byte, zeros)...)
		out = append(out, byte(r-zeros*255))
	}
	pos := 0
	first := toks[0].lits
	if first <= 238 {
		out = append(out, byte(17+first))
	} else {
		litRun(first)
	}
	out = append(out, p[:first]...)
	pos = first
	for ti, t := range toks {
		if t.mlen == 0 {
			break
		}
		next := toks[ti+1].lits // literals after this match
		l := t.mlen - 2
		if l <= 31 {
			out = append(out, byte(0x20|l))
		} else {
			r := l - 31
			zeros := (r - 1) / 255
			out = append(out, 0x20)
			out = append(out, make([]byte, zeros)...)
			out = append(out, byte(r-zeros*255))
		}
		s := 0
		if next <= 3 {
			s = next
		}
		out = binary.LittleEndian.AppendUint16(out, uint16((t.dist-1)<<2|s))
		pos += t.mlen
		if next > 3 {
			litRun(next)
		}
		out = append(out, p[pos:pos+next]...)
		pos += next
	}
	return append(out, 0x11, 0, 0) // end of stream (M4, distance 16384)
}
