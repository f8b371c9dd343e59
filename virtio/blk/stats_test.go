package blk

import (
	"testing"

	"ember/virtio/virtiotest"
)

// TestStatsCountAnsweredRequests: a disk's totals count each request
// answered by its type, the bytes of those that succeeded, and the
// requests answered with an error or as unsupported, as a host's tools
// read them (Disk.Stats).
func TestStatsCountAnsweredRequests(t *testing.T) {
	rd, wr := virtiotest.Readable, virtiotest.Writable
	r := newRig(t, false)
	requests := []struct {
		name string
		bufs []virtiotest.Buffer
	}{
		{"a read of 4 KiB", []virtiotest.Buffer{rd(header(typeIn, 8)), wr(4096), wr(1)}},
		{"a read of 512 bytes", []virtiotest.Buffer{rd(header(typeIn, 0)), wr(512), wr(1)}},
		{"a read of 512 bytes with readable bytes after its header", []virtiotest.Buffer{rd(header(typeIn, 0)), rd(make([]byte, 64)), wr(512), wr(1)}},
		{"a write of 1 KiB", []virtiotest.Buffer{rd(header(typeOut, 16)), rd(make([]byte, 1024)), wr(1)}},
		{"a flush", []virtiotest.Buffer{rd(header(typeFlush, 0)), wr(1)}},
		{"a discard", []virtiotest.Buffer{rd(header(typeDiscard, 0)), rd(seg(4, 4, 0)), wr(1)}},
		{"a read past the disk's end", []virtiotest.Buffer{rd(header(typeIn, imageSize/SectorSize)), wr(512), wr(1)}},
		{"a write past the disk's end", []virtiotest.Buffer{rd(header(typeOut, imageSize/SectorSize)), rd(make([]byte, 512)), wr(1)}},
		{"an unknown type", []virtiotest.Buffer{rd(header(99, 0)), wr(1)}},
		{"a header too short", []virtiotest.Buffer{rd(make([]byte, 8)), wr(1)}},
		{"GET_ID, counted as none of them", []virtiotest.Buffer{rd(header(typeGetID, 0)), wr(idLen), wr(1)}},
	}
	for _, q := range requests {
		r.do(q.bufs...)
	}
	want := Stats{Reads: 4, ReadBytes: 4096 + 512 + 512, Writes: 2, WriteBytes: 1024,
		Flushes: 1, Discards: 1, Errors: 3, Unsupported: 1}
	if got := r.disk.Stats(); got != want {
		t.Fatalf("after %d requests the disk's totals are\n%+v, want\n%+v", len(requests), got, want)
	}
}
