package qcow2

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// emptyImage returns a new version 3 image of size bytes with clusters of
// 1<<bits bytes, laid out as qemu-img lays one out: the header, the
// reference count table, its first block, the L1 table, each a cluster
// (the L1 table more if it needs), all counted once.
func emptyImage(t testing.TB, bits uint32, size uint64) []byte {
	t.Helper()
	cs := uint64(1) << bits
	h := header{clusterBits: bits, size: size}
	l1 := h.l1Needed()
	l1Clusters := max(1, (l1*8+cs-1)/cs)
	b := make([]byte, (3+l1Clusters)*cs)
	be := binary.BigEndian
	copy(b, magic)
	be.PutUint32(b[hdrVersion:], 3)
	be.PutUint32(b[hdrClusterBits:], bits)
	be.PutUint64(b[hdrSize:], size)
	be.PutUint32(b[hdrL1Size:], uint32(l1))
	be.PutUint64(b[hdrL1Offset:], 3*cs)
	be.PutUint64(b[hdrRefTableOffset:], cs)
	be.PutUint32(b[hdrRefTableCluster:], 1)
	be.PutUint32(b[hdrRefcountOrder:], 4)
	be.PutUint32(b[hdrLength:], v3HeaderLen)
	be.PutUint64(b[cs:], 2*cs) // the table's first block
	for c := range 3 + l1Clusters {
		be.PutUint16(b[2*cs+2*c:], 1)
	}
	return b
}

// writeFile writes b to a new file and opens it read-write.
func writeFile(t testing.TB, b []byte) *os.File {
	t.Helper()
	path := filepath.Join(t.TempDir(), "disk.qcow2")
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

// open opens f as an image, failing t on error; Close runs at t's end.
func open(t testing.TB, f *os.File, readOnly bool) *Image {
	t.Helper()
	im, err := Open(f, readOnly)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { im.Close() })
	return im
}

// readAll reads the whole disk through im.
func readAll(t testing.TB, im *Image) []byte {
	t.Helper()
	got := make([]byte, im.Size())
	if n, err := im.ReadAt([][]byte{got}, 0, false); err != nil || n != len(got) {
		t.Fatalf("reading the disk: %d bytes, %v", n, err)
	}
	return got
}

// split cuts b into a few buffers of uneven lengths, as a guest's
// scattered request comes.
func split(b []byte, r *rand.Rand) [][]byte {
	var out [][]byte
	for len(b) > 0 {
		n := min(len(b), 1+r.IntN(3*len(b)/2+1))
		out = append(out, b[:n])
		b = b[n:]
	}
	return out
}

// exercise makes n random writes and zeroings through im, the same on
// model, each a few clusters long at most and often not aligned.
func exercise(t testing.TB, im *Image, model []byte, seed uint64, n int) {
	t.Helper()
	r := rand.New(rand.NewPCG(seed, 2))
	cs := int(im.ClusterSize())
	for range n {
		off := r.IntN(len(model))
		size := min(len(model)-off, 1+r.IntN(3*cs))
		if r.IntN(5) == 0 {
			// Zero whole clusters and the parts around them.
			if err := im.Zero(int64(off), int64(size)); err != nil {
				t.Fatalf("Zero(%d, %d): %v", off, size, err)
			}
			clear(model[off : off+size])
			continue
		}
		b := make([]byte, size)
		for i := range b {
			b[i] = byte(r.Uint32())
		}
		if w, err := im.WriteAt(split(b, r), int64(off)); err != nil || w != size {
			t.Fatalf("WriteAt(%d bytes at %d) = %d, %v", size, off, w, err)
		}
		copy(model[off:], b)
	}
}

// TestWritesReadBack: random writes and zeroings, unaligned and across
// clusters, on an empty image of each cluster size (512 bytes, whose
// reference count blocks count 128 KiB each, so the writes need several
// new ones), read back as written, before and after the image is opened
// again.
func TestWritesReadBack(t *testing.T) {
	for _, bits := range []uint32{9, 12, 16} {
		f := writeFile(t, emptyImage(t, bits, 1<<20+3*512))
		im := open(t, f, false)
		model := make([]byte, im.Size())
		exercise(t, im, model, uint64(bits), 300)
		if !bytes.Equal(readAll(t, im), model) {
			t.Fatalf("%d-byte clusters: the disk does not read back as written", 1<<bits)
		}
		if err := im.Close(); err != nil {
			t.Fatal(err)
		}
		again := open(t, f, true)
		if !bytes.Equal(readAll(t, again), model) {
			t.Fatalf("%d-byte clusters: the disk opened again does not read as written", 1<<bits)
		}
	}
}

// TestDirtyUntilFlush: the first write that changes the tables marks the
// image dirty on the file; Flush marks it clean; an image left dirty (a
// crash) is refused for writes and opens read-only.
func TestDirtyUntilFlush(t *testing.T) {
	f := writeFile(t, emptyImage(t, 16, 1<<20))
	im := open(t, f, false)
	dirty := func() bool {
		var b [8]byte
		if _, err := f.ReadAt(b[:], hdrIncompatible); err != nil {
			t.Fatal(err)
		}
		return binary.BigEndian.Uint64(b[:])&incompatDirty != 0
	}
	if dirty() {
		t.Fatal("dirty before any write")
	}
	if _, err := im.WriteAt([][]byte{[]byte("hello")}, 4096); err != nil {
		t.Fatal(err)
	}
	if !dirty() {
		t.Fatal("a cluster was allocated, but the image is not marked dirty")
	}
	if _, err := Open(f, false); err == nil || !strings.Contains(err.Error(), "qemu-img check -r all") {
		t.Fatalf("a dirty image opened for writes: %v", err)
	}
	open(t, f, true) // read-only, it opens
	if err := im.Flush(); err != nil {
		t.Fatal(err)
	}
	if dirty() {
		t.Fatal("dirty after Flush")
	}
	if _, err := im.WriteAt([][]byte{[]byte("again")}, 4096); err != nil || dirty() {
		t.Fatalf("a write in place (err %v) marked the image dirty: %v", err, dirty())
	}
}

// TestRefusals: what the package does not serve is refused at Open with
// the reason, and out-of-range requests fail.
func TestRefusals(t *testing.T) {
	base := emptyImage(t, 16, 1<<20)
	set := func(off int, v uint64, n int) []byte {
		b := bytes.Clone(base)
		switch n {
		case 4:
			binary.BigEndian.PutUint32(b[off:], uint32(v))
		case 8:
			binary.BigEndian.PutUint64(b[off:], v)
		}
		return b
	}
	for _, tt := range []struct {
		name     string
		image    []byte
		readOnly bool
		want     error
		says     string
	}{
		{"backing file", set(hdrBackingOffset, 0x200, 8), true, ErrUnsupported, "backing file"},
		{"encryption", set(hdrCryptMethod, 2, 4), true, ErrUnsupported, "encryption"},
		{"version 4", set(hdrVersion, 4, 4), true, ErrUnsupported, "version 4"},
		{"unknown incompatible feature", set(hdrIncompatible, 1<<20, 8), true, ErrUnsupported, "incompatible features"},
		{"external data file", set(hdrIncompatible, incompatExternalData, 8), true, ErrUnsupported, "external data"},
		{"extended L2", set(hdrIncompatible, incompatExtendedL2, 8), true, ErrUnsupported, "extended L2"},
		{"cluster bits", set(hdrClusterBits, 22, 4), true, ErrCorrupt, "cluster bits"},
		{"L1 too small", set(hdrL1Size, 0, 4), true, ErrCorrupt, "L1 table of 0 entries"},
		{"L1 misaligned", set(hdrL1Offset, 0x30200, 8), true, ErrCorrupt, "L1 table at"},
		{"huge L1", set(hdrL1Size, 1<<23, 4), true, ErrCorrupt, "L1 table of"},
		{"huge refcount table", set(hdrRefTableCluster, 1<<20, 4), true, ErrCorrupt, "reference count table of"},
		{"snapshots, for writes", set(hdrSnapshots, 1, 4), false, ErrUnsupported, "internal snapshots"},
		{"dirty, for writes", set(hdrIncompatible, incompatDirty, 8), false, ErrUnsupported, "marked dirty"},
		{"corrupt, for writes", set(hdrIncompatible, incompatCorrupt, 8), false, ErrCorrupt, "marked corrupt"},
		{"version 2, for writes", set(hdrVersion, 2, 4), false, ErrUnsupported, "version 2"},
		{"1-bit counts, for writes", set(hdrRefcountOrder, 0, 4), false, ErrUnsupported, "1-bit reference counts"},
	} {
		_, err := Open(writeFile(t, tt.image), tt.readOnly)
		if !errors.Is(err, tt.want) || !strings.Contains(err.Error(), tt.says) {
			t.Errorf("%s: Open = %v, want %v saying %q", tt.name, err, tt.want, tt.says)
		}
	}
	for _, v := range []uint32{2} {
		if _, err := Open(writeFile(t, set(hdrVersion, uint64(v), 4)), true); err != nil {
			t.Errorf("version %d read-only: %v", v, err)
		}
	}
	im := open(t, writeFile(t, base), false)
	buf := make([]byte, 512)
	if _, err := im.ReadAt([][]byte{buf}, 1<<20-256, false); !errors.Is(err, ErrOutOfRange) {
		t.Errorf("a read across the end: %v", err)
	}
	if _, err := im.WriteAt([][]byte{buf}, 1<<20); !errors.Is(err, ErrOutOfRange) {
		t.Errorf("a write past the end: %v", err)
	}
	ro := open(t, writeFile(t, base), true)
	if _, err := ro.WriteAt([][]byte{buf}, 0); !errors.Is(err, ErrReadOnly) {
		t.Errorf("a write to a read-only image: %v", err)
	}
}

// qemuImg returns qemu-img's path, or skips t.
func qemuImg(t testing.TB) string {
	t.Helper()
	p, err := exec.LookPath("qemu-img")
	if err != nil {
		t.Skip("qemu-img not installed (apt-get install qemu-utils; .ci/run installs it)")
	}
	return p
}

// run runs a command, failing t with its output if it fails.
func run(t testing.TB, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// rawOf is the disk qemu-img reads from the qcow2 image at path.
func rawOf(t testing.TB, img, path string) []byte {
	t.Helper()
	raw := path + ".raw"
	run(t, img, "convert", "-f", "qcow2", "-O", "raw", path, raw)
	b, err := os.ReadFile(raw)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestQEMUAgrees: images qemu-img makes — empty, written by qemu-io,
// compressed — read through the package as qemu-img reads them; after
// random writes and zeroings through the package (into compressed
// clusters too), qemu-img reads what was written and `qemu-img check`
// finds no error and no leaked cluster.
func TestQEMUAgrees(t *testing.T) {
	img := qemuImg(t)
	dir := t.TempDir()
	src := make([]byte, 3<<20)
	r := rand.New(rand.NewPCG(7, 7))
	for i := range src {
		if i%(256<<10) < 128<<10 { // half compressible, half not
			src[i] = byte(i / 4096)
		} else {
			src[i] = byte(r.Uint32())
		}
	}
	rawSrc := filepath.Join(dir, "src.raw")
	if err := os.WriteFile(rawSrc, src, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name string
		make func(path string)
	}{
		{"empty, 64 KiB clusters", func(p string) { run(t, img, "create", "-q", "-f", "qcow2", p, "3M") }},
		{"empty, 4 KiB clusters", func(p string) { run(t, img, "create", "-q", "-f", "qcow2", "-o", "cluster_size=4096", p, "3M") }},
		{"converted", func(p string) { run(t, img, "convert", "-O", "qcow2", rawSrc, p) }},
		{"compressed", func(p string) { run(t, img, "convert", "-c", "-O", "qcow2", rawSrc, p) }},
		{"written by qemu-io", func(p string) {
			run(t, img, "create", "-q", "-f", "qcow2", p, "3M")
			run(t, "qemu-io", "-f", "qcow2", "-c", "write -P 0x11 0 70k", "-c", "write -P 0x22 1M 4k",
				"-c", "write -z 64k 64k", "-c", "discard 2M 64k", p)
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "disk.qcow2")
			tt.make(path)
			want := rawOf(t, img, path)
			f, err := os.OpenFile(path, os.O_RDWR, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			im := open(t, f, false)
			if got := readAll(t, im); !bytes.Equal(got, want) {
				t.Fatalf("the disk reads otherwise than qemu-img reads it (first difference at %d)", firstDiff(got, want))
			}
			exercise(t, im, want, 11, 200)
			if err := im.Close(); err != nil {
				t.Fatal(err)
			}
			if out := run(t, img, "check", "-f", "qcow2", path); !strings.Contains(out, "No errors were found") || strings.Contains(out, "leaked") {
				t.Fatalf("qemu-img check after the writes:\n%s", out)
			}
			if got := rawOf(t, img, path); !bytes.Equal(got, want) {
				t.Fatalf("qemu-img reads otherwise than written (first difference at %d)", firstDiff(got, want))
			}
		})
	}
}

func firstDiff(a, b []byte) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

// TestPastTheFilesEndReadsZeros: a cluster or an L2 table the tables name
// past the file's end (allocated, its bytes not yet on the file when a
// crash came) reads as zeros, as the unallocated cluster it was before,
// not as an error.
func TestPastTheFilesEndReadsZeros(t *testing.T) {
	f := writeFile(t, emptyImage(t, 12, 1<<20))
	im := open(t, f, false)
	before := fileSize(t, f)
	data := bytes.Repeat([]byte{0x5a}, 4096)
	if _, err := im.WriteAt([][]byte{data}, 8192); err != nil {
		t.Fatal(err)
	}
	if err := im.Close(); err != nil {
		t.Fatal(err)
	}
	// The write allocated the L2 table, then the data cluster, at the end.
	for _, cut := range []uint64{before + 4096, before} {
		if err := f.Truncate(int64(cut)); err != nil {
			t.Fatal(err)
		}
		again := open(t, f, true)
		got := make([]byte, 4096)
		if _, err := again.ReadAt([][]byte{got}, 8192, false); err != nil || !bytes.Equal(got, make([]byte, 4096)) {
			t.Fatalf("file cut to %d bytes: the cluster reads %x..., %v; want zeros", cut, got[:4], err)
		}
	}
}

// TestCopyOfAClusterPastTheEnd: a write into a shared cluster (its L2
// entry without COPIED) that lies past the file's end copies zeros for
// the bytes it does not write, not what the copy buffer held from the
// write before, and not an error.
func TestCopyOfAClusterPastTheEnd(t *testing.T) {
	// Point the entry of the data writtenImage wrote at cluster 64, past
	// the file's end, shared (no COPIED), and count that cluster once.
	b := writtenImage(t)
	binary.BigEndian.PutUint64(b[4*4096:], 64*4096)
	binary.BigEndian.PutUint16(b[2*4096+2*64:], 1)
	f := writeFile(t, b)
	im := open(t, f, false)
	if _, err := im.WriteAt([][]byte{bytes.Repeat([]byte{0xbb}, 4096)}, 8192); err != nil { // fills the copy buffer
		t.Fatal(err)
	}
	if _, err := im.WriteAt([][]byte{bytes.Repeat([]byte{0xcc}, 512)}, 2048); err != nil {
		t.Fatalf("a write into a cluster past the file's end: %v", err)
	}
	want := make([]byte, 4096)
	copy(want[2048:], bytes.Repeat([]byte{0xcc}, 512))
	got := make([]byte, 4096)
	if _, err := im.ReadAt([][]byte{got}, 0, false); err != nil || !bytes.Equal(got, want) {
		t.Fatalf("the copied cluster reads %x… (%v); want zeros around the write", got[:8], err)
	}
}

// writtenImage returns an image of 1 MiB with 4 KiB clusters whose first
// cluster the guest wrote: the header at cluster 0, the reference count
// table at 1, its block at 2, the L1 table at 3, the L2 table at 4, the
// data at 5, each counted once.
func writtenImage(t *testing.T) []byte {
	t.Helper()
	f := writeFile(t, emptyImage(t, 12, 1<<20))
	im := open(t, f, false)
	if _, err := im.WriteAt([][]byte{bytes.Repeat([]byte{0xaa}, 4096)}, 0); err != nil {
		t.Fatal(err)
	}
	if err := im.Close(); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(f.Name())
	if err != nil {
		t.Fatal(err)
	}
	if len(b) != 6*4096 {
		t.Fatalf("the written image is %d bytes, want 6 clusters", len(b))
	}
	return b
}

// patched returns a file holding b with v written big-endian at off.
func patched(t *testing.T, b []byte, off int, v uint64) *os.File {
	t.Helper()
	b = bytes.Clone(b)
	binary.BigEndian.PutUint64(b[off:], v)
	return writeFile(t, b)
}
