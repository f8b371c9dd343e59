package qcow2

import (
	"bytes"
	"compress/flate"
	"encoding/binary"
	"errors"
	"testing"

	"golang.org/x/sys/unix"
)

// withCompressedCluster returns writtenImage with the disk's second
// cluster compressed (raw deflate of want) at the file's end, cluster 6.
func withCompressedCluster(t *testing.T, want []byte) []byte {
	t.Helper()
	b := writtenImage(t)
	var z bytes.Buffer
	w, err := flate.NewWriter(&z, flate.BestCompression)
	if err != nil {
		t.Fatal(err)
	}
	w.Write(want)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	host := uint64(len(b))
	sectors := (uint64(z.Len()) + 511) / 512
	b = append(b, z.Bytes()...)
	b = append(b, make([]byte, 4096-z.Len())...)
	binary.BigEndian.PutUint64(b[4*4096+8:], entryCompressed|(sectors-1)<<58|host)
	binary.BigEndian.PutUint16(b[2*4096+2*6:], 1) // cluster 6 counted
	return b
}

// TestNoWaitReads: a read with noWait (the disk's thread, which must not
// wait for the host's disk) fails with EAGAIN where it would first have
// to read an L2 table or inflate a compressed cluster, so the device hands
// it to a goroutine; the same read without noWait serves it; with the
// table in memory, an unallocated cluster is served with noWait (no I/O at
// all), a compressed one still is not.
func TestNoWaitReads(t *testing.T) {
	packed := bytes.Repeat([]byte("ember qcow2 "), 4096/12+1)[:4096]
	f := writeFile(t, withCompressedCluster(t, packed))
	im := open(t, f, true)
	read := func(off int64, noWait bool) ([]byte, error) {
		b := make([]byte, 4096)
		_, err := im.ReadAt([][]byte{b}, off, noWait)
		return b, err
	}
	if _, err := read(2*4096, true); !errors.Is(err, unix.EAGAIN) {
		t.Fatalf("noWait, the L2 table not read yet: %v, want EAGAIN", err)
	}
	if got, err := read(0, false); err != nil || !bytes.Equal(got, bytes.Repeat([]byte{0xaa}, 4096)) {
		t.Fatalf("waiting: %x… (%v), want the cluster written", got[:4], err)
	}
	if got, err := read(2*4096, true); err != nil || !bytes.Equal(got, make([]byte, 4096)) {
		t.Fatalf("noWait, an unallocated cluster, its table read: %x… (%v), want zeros", got[:4], err)
	}
	if _, err := read(4096, true); !errors.Is(err, unix.EAGAIN) {
		t.Fatalf("noWait, a compressed cluster: %v, want EAGAIN", err)
	}
	if got, err := read(4096, false); err != nil || !bytes.Equal(got, packed) {
		t.Fatalf("waiting, a compressed cluster: %q… (%v), want it inflated", got[:12], err)
	}
}
