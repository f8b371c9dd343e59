package qcow2

import (
	"bytes"
	"errors"
	"testing"
)

// TestMetadataIsNotData: an image whose tables name a cluster of its own
// metadata as the guest's data, or an L2 table on its header or tables,
// is corrupt there: reads, writes and zeroings of that cluster fail with
// ErrCorrupt and the metadata is left as it was, where a write would
// have let the guest rewrite the image's tables.
func TestMetadataIsNotData(t *testing.T) {
	const cs = 4096
	base := writtenImage(t)
	tests := []struct {
		name  string
		at    int    // the file's byte the patch goes to
		entry uint64 // the table entry written there
		off   int64  // the disk's byte the requests go to
		guard int    // the file's cluster that must not change
	}{
		{"data on its own L2 table", 4*cs + 8, 4*cs | entryCopied, cs, 4},
		{"data on a reference count block", 4*cs + 8, 2*cs | entryCopied, cs, 2},
		{"data on the L1 table", 4*cs + 8, 3*cs | entryCopied, cs, 3},
		{"compressed data on an L2 table", 4*cs + 8, entryCompressed | (4*cs + 100), cs, 4},
		{"compressed data running into an L2 table", 4*cs + 8, entryCompressed | 1<<58 | (3*cs + 4000), cs, 4},
		{"an L2 table on the reference count table", 3 * cs, cs | entryCopied, 0, 1},
		{"an L2 table on the L1 table", 3 * cs, 3*cs | entryCopied, 0, 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := patched(t, base, tt.at, tt.entry)
			im := open(t, f, false)
			guard := func() []byte {
				b := make([]byte, cs)
				if _, err := f.ReadAt(b, int64(tt.guard*cs)); err != nil {
					t.Fatal(err)
				}
				return b
			}
			before := guard()
			buf := make([]byte, cs)
			if _, err := im.ReadAt([][]byte{buf}, tt.off, false); !errors.Is(err, ErrCorrupt) {
				t.Errorf("read: %v, want ErrCorrupt", err)
			}
			if _, err := im.WriteAt([][]byte{bytes.Repeat([]byte{0x55}, cs)}, tt.off); !errors.Is(err, ErrCorrupt) {
				t.Errorf("write: %v, want ErrCorrupt", err)
			}
			if _, err := im.WriteAt([][]byte{bytes.Repeat([]byte{0x55}, 512)}, tt.off+512); !errors.Is(err, ErrCorrupt) {
				t.Errorf("partial write: %v, want ErrCorrupt", err)
			}
			if err := im.Zero(tt.off, cs); !errors.Is(err, ErrCorrupt) {
				t.Errorf("zeroing: %v, want ErrCorrupt", err)
			}
			if err := im.Close(); err != nil {
				t.Fatal(err)
			}
			if after := guard(); !bytes.Equal(after, before) {
				t.Errorf("cluster %d changed: %x… after %x…", tt.guard, after[:16], before[:16])
			}
		})
	}
}

// TestRefBlockOnAnL2TableRefusedForWrites: an image whose reference count
// block is also an L2 table is refused for writes (a count changed would
// change a mapping) and served read-only.
func TestRefBlockOnAnL2TableRefusedForWrites(t *testing.T) {
	f := patched(t, writtenImage(t), 4096, 4*4096)
	if im, err := Open(f, false); !errors.Is(err, ErrCorrupt) {
		if err == nil {
			im.Close()
		}
		t.Fatalf("open for writes: %v, want ErrCorrupt", err)
	}
	im := open(t, f, true)
	got := make([]byte, 4096)
	if _, err := im.ReadAt([][]byte{got}, 0, false); err != nil || !bytes.Equal(got, bytes.Repeat([]byte{0xaa}, 4096)) {
		t.Fatalf("read-only: %x… (%v), want the cluster the guest wrote", got[:4], err)
	}
}

// TestNewClustersAvoidTables: an L2 table past the file's end whose count
// says free (its zeros not yet on the file when a crash came, its count
// lost) is not handed out again as a data cluster, which would have had
// the table's next entry overwrite the guest's data.
func TestNewClustersAvoidTables(t *testing.T) {
	f := patched(t, writtenImage(t), 3*4096, 6*4096|entryCopied) // the L1 entry: a table at cluster 6, the file's end
	im := open(t, f, false)
	for i := range 4 {
		want := bytes.Repeat([]byte{byte(0x10 + i)}, 4096)
		off := int64(i+1) * 4096
		if _, err := im.WriteAt([][]byte{want}, off); err != nil {
			t.Fatal(err)
		}
		got := make([]byte, 4096)
		if _, err := im.ReadAt([][]byte{got}, off, false); err != nil || !bytes.Equal(got, want) {
			t.Fatalf("cluster %d reads %x… (%v), want %x…", i+1, got[:24], err, want[:4])
		}
	}
}
