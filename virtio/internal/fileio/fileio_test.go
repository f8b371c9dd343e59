package fileio

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

// TestReadWriteWhole: reads and writes of one buffer, of several and of
// more than the stack's eight move every byte at the offset; a read that
// reaches the file's end returns what there was; the caller's list of
// buffers is left as it was.
func TestReadWriteWhole(t *testing.T) {
	f, err := os.Create(filepath.Join(t.TempDir(), "f"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fd := int(f.Fd())
	for _, shape := range [][]int{{4096}, {100, 0, 3996, 512}, {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}} {
		var src [][]byte
		var want []byte
		for i, n := range shape {
			b := bytes.Repeat([]byte{byte(i + 1)}, n)
			src, want = append(src, b), append(want, b...)
		}
		if n, err := WriteAt(fd, src, 512); err != nil || n != len(want) {
			t.Fatalf("%v: WriteAt = %d, %v", shape, n, err)
		}
		dst := make([][]byte, len(shape))
		for i, n := range shape {
			dst[i] = make([]byte, n)
		}
		keep := append([][]byte(nil), dst...)
		for _, read := range []func(int, [][]byte, int64) (int, error){ReadAt, ReadAtNoWait} {
			n, err := read(fd, dst, 512)
			if errors.Is(err, unix.EOPNOTSUPP) {
				continue // a file system without RWF_NOWAIT
			}
			if err != nil || n != len(want) || !bytes.Equal(bytes.Join(dst, nil), want) {
				t.Fatalf("%v: read %d, %v; the bytes differ: %v", shape, n, err, !bytes.Equal(bytes.Join(dst, nil), want))
			}
			for i := range dst {
				if len(dst[i]) != len(keep[i]) || (len(dst[i]) > 0 && &dst[i][0] != &keep[i][0]) {
					t.Fatalf("%v: the caller's buffer %d changed", shape, i)
				}
			}
		}
	}
	st, _ := f.Stat()
	end := make([]byte, 100)
	if n, err := ReadAt(fd, [][]byte{end}, st.Size()-40); err != nil || n != 40 {
		t.Fatalf("a read across the file's end: %d, %v; want 40 bytes", n, err)
	}
}

// TestTransferRetries: a short transfer goes on from where it stopped,
// EINTR is tried again, an error or a transfer of nothing ends it.
func TestTransferRetries(t *testing.T) {
	bufs := [][]byte{make([]byte, 10), make([]byte, 10)}
	var offs []int64
	calls := 0
	n, err := Transfer(bufs, 100, func(b [][]byte, o int64) (int, error) {
		calls++
		offs = append(offs, o)
		switch calls {
		case 1:
			return 0, unix.EINTR
		case 2:
			return 15, nil
		}
		return len(b[0]), nil
	})
	if err != nil || n != 20 || len(offs) != 3 || offs[2] != 115 {
		t.Fatalf("Transfer = %d, %v at offsets %v; want 20 bytes, the last call at 115", n, err, offs)
	}
	n, err = Transfer(bufs, 0, func([][]byte, int64) (int, error) { return 0, unix.EIO })
	if n != 0 || !errors.Is(err, unix.EIO) {
		t.Fatalf("a failing transfer: %d, %v", n, err)
	}
	if n, err = Transfer(bufs, 0, func([][]byte, int64) (int, error) { return 0, nil }); n != 0 || err != nil {
		t.Fatalf("a transfer of nothing: %d, %v", n, err)
	}
}
