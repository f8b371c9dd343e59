package blk

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"ember/virtio/virtiotest"
)

// qcow2Rig is a rig on a qcow2 image with 4 KiB clusters that qemu-img
// converted from the rig's usual raw image, so the disk reads as
// r.image; it skips t without qemu-img.
func qcow2Rig(t *testing.T, readOnly bool) *rig {
	t.Helper()
	img, err := exec.LookPath("qemu-img")
	if err != nil {
		t.Skip("qemu-img not installed (apt-get install qemu-utils; .ci/run installs it)")
	}
	image := make([]byte, imageSize)
	for i := range image {
		image[i] = byte(i / SectorSize)
	}
	dir := t.TempDir()
	raw, path := filepath.Join(dir, "disk.raw"), filepath.Join(dir, "disk.qcow2")
	if err := os.WriteFile(raw, image, 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(img, "convert", "-O", "qcow2", "-o", "cluster_size=4096", raw, path).CombinedOutput(); err != nil {
		t.Fatalf("qemu-img convert: %v: %s", err, out)
	}
	return newRigAt(t, Config{ReadOnly: readOnly}, path, image)
}

// TestQcow2DiskThroughTheQueue: a qcow2 image served as a disk, request by
// request through the virtqueue: reads of the converted data, writes short
// (served on the disk's thread) and long (by a goroutine) into allocated
// and unallocated clusters, a discard and a write-zeroes over whole
// clusters and parts, a flush; each read back through the queue, then,
// the disk closed, qemu-img finds the image consistent and reads the same
// disk; qemu-img finds it consistent after the guest's flush too, the disk
// still open. A read-only qcow2 disk refuses writes.
func TestQcow2DiskThroughTheQueue(t *testing.T) {
	rd, wr := virtiotest.Readable, virtiotest.Writable
	r := qcow2Rig(t, false)
	if r.disk.qcow == nil {
		t.Fatal("the qcow2 image is served as raw")
	}
	want := bytes.Clone(r.image)
	read := func(sector uint64, n uint32) []byte {
		t.Helper()
		_, out := r.do(rd(header(typeIn, sector)), wr(n), wr(1))
		if status(out) != statusOK {
			t.Fatalf("read of %d bytes at sector %d: status %d", n, sector, status(out))
		}
		return out[0]
	}
	ok := func(what string, bufs ...virtiotest.Buffer) {
		t.Helper()
		if _, out := r.do(bufs...); status(out) != statusOK {
			t.Fatalf("%s: status %d", what, status(out))
		}
	}
	mode := r.disk.now.get()
	if !bytes.Equal(read(3, 2*SectorSize), want[3*SectorSize:5*SectorSize]) {
		t.Fatal("a read differs from the image qemu-img converted")
	}
	if got := r.disk.now.get(); got != mode {
		// The read found no L2 table in memory: the thread's try without
		// waiting fails with EAGAIN, which hands the read on and must not
		// be taken for a file system that cannot read so.
		t.Fatalf("a first read left the disk reading without waiting in mode %d, was %d", got, mode)
	}
	short := bytes.Repeat([]byte{0xab}, 3*SectorSize)
	ok("a short write", rd(header(typeOut, 7)), rd(short), wr(1)) // across a cluster's end
	copy(want[7*SectorSize:], short)
	long := make([]byte, 96<<10)
	for i := range long {
		long[i] = byte(i*7 + 1)
	}
	ok("a long write", rd(header(typeOut, 300)), rd(long), wr(1))
	copy(want[300*SectorSize:], long)
	ok("a discard", rd(header(typeDiscard, 0)), rd(seg(30, 20, 0)), wr(1)) // parts of two clusters and one whole
	clear(want[30*SectorSize : 50*SectorSize])
	ok("write zeroes", rd(header(typeWriteZeroes, 0)), rd(seg(480, 9, 0)), wr(1))
	clear(want[480*SectorSize : 489*SectorSize])
	ok("a flush", rd(header(typeFlush, 0)), wr(1))
	img, _ := exec.LookPath("qemu-img")
	// The image as a crash right after the flush would leave it: clean.
	if out, err := exec.Command(img, "check", r.path).CombinedOutput(); err != nil || !strings.Contains(string(out), "No errors were found") {
		t.Fatalf("qemu-img check after a flush, the disk still open: %v\n%s", err, out)
	}
	// The header's incompatible features, big-endian at byte 72: bit 0,
	// dirty, is cleared by the flush.
	if hdr, err := os.ReadFile(r.path); err != nil || hdr[79]&1 != 0 {
		t.Fatalf("after a flush the image is still marked dirty (%v)", err)
	}
	for _, s := range []uint64{0, 128, 256, 384} {
		if !bytes.Equal(read(s, 64<<10), want[s*SectorSize:(s+128)*SectorSize]) {
			t.Fatalf("64 KiB at sector %d do not read back as written", s)
		}
	}
	if err := r.disk.Close(); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(img, "check", r.path).CombinedOutput(); err != nil || !strings.Contains(string(out), "No errors were found") {
		t.Fatalf("qemu-img check: %v\n%s", err, out)
	}
	raw := r.path + ".out"
	if out, err := exec.Command(img, "convert", "-O", "raw", r.path, raw).CombinedOutput(); err != nil {
		t.Fatalf("qemu-img convert: %v: %s", err, out)
	}
	if got, err := os.ReadFile(raw); err != nil || !bytes.Equal(got, want) {
		t.Fatalf("qemu-img reads another disk than the guest wrote (%v)", err)
	}

	ro := qcow2Rig(t, true)
	if _, out := ro.do(rd(header(typeOut, 7)), rd(short), wr(1)); status(out) != statusIOErr {
		t.Fatalf("a write to a read-only qcow2 disk: status %d", status(out))
	}
}
