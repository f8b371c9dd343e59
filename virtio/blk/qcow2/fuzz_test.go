package qcow2

import (
	"encoding/binary"
	"os"
	"testing"
)

// seedImage is a small image with 512-byte clusters (64 KiB of disk) and
// a few clusters written, for FuzzImage to mutate.
func seedImage(t testing.TB) []byte {
	f := writeFile(t, emptyImage(t, 9, 64<<10))
	im := open(t, f, false)
	model := make([]byte, im.Size())
	exercise(t, im, model, 1, 20)
	if err := im.Close(); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(f.Name())
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// FuzzImage opens any image (the corpus, testdata/fuzz/FuzzImage, holds
// small images qemu-img made: compressed with 512-byte clusters, written
// by qemu-io, with 8-bit reference counts, version 2) read-only and
// for writes, and makes the reads, writes and zeroings ops names (six
// bytes each: the kind, a 32-bit offset, a length in 512-byte units). The
// image must be refused or served without a panic or a hang; a read
// reports no more than it was asked; the file grows by no more than the
// clusters the requests could allocate (each cluster of a request, its L2
// table and a reference count block or two).
func FuzzImage(f *testing.F) {
	f.Add(seedImage(f), []byte{1, 0, 0, 0, 0, 8, 0, 0, 2, 0, 0, 2, 2, 0, 4, 0, 0, 4})
	f.Add(emptyImage(f, 16, 1<<20), []byte{1, 0, 0, 1, 0, 200, 0, 0, 0, 0, 0, 255})
	f.Fuzz(func(t *testing.T, image, ops []byte) {
		if len(image) > 1<<20 || len(ops) > 60 {
			return
		}
		file := writeFile(t, image)
		for _, readOnly := range []bool{true, false} {
			im, err := Open(file, readOnly)
			if err != nil {
				continue
			}
			before := fileSize(t, file)
			clusters := uint64(0)
			for o := ops; len(o) >= 6; o = o[6:] {
				off := int64(binary.LittleEndian.Uint32(o[1:]) % uint32(im.Size()+1))
				n := int64(o[5]) * 512
				buf := make([]byte, n)
				switch o[0] % 3 {
				case 0:
					if got, _ := im.ReadAt([][]byte{buf}, off, o[0]&0x80 != 0); got > len(buf) {
						t.Fatalf("read %d bytes into %d", got, len(buf))
					}
				case 1:
					im.WriteAt([][]byte{buf}, off)
				case 2:
					im.Zero(off, n)
				}
				clusters += uint64(n)/im.ClusterSize() + 2 + 3
			}
			im.Close()
			if grew := fileSize(t, file) - before; grew > clusters*im.ClusterSize() {
				t.Fatalf("the file grew by %d bytes for requests that could allocate %d clusters of %d", grew, clusters, im.ClusterSize())
			}
		}
	})
}

func fileSize(t *testing.T, f *os.File) uint64 {
	st, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	return uint64(st.Size())
}
