package debugexit

import (
	"bytes"
	"log/slog"
	"testing"
)

var quiet = slog.New(slog.DiscardHandler)

// TestWriteEndsTheRun: each write the guest can make, and the status the
// run ends with.
func TestWriteEndsTheRun(t *testing.T) {
	for _, tt := range []struct {
		name   string
		off    uint64
		data   []byte
		status int // -1: the run goes on
	}{
		{"byte 0: status 1, kvm-unit-tests' pass", 0, []byte{0}, 1},
		{"byte 1: status 3, a failure", 0, []byte{1}, 3},
		{"word", 0, []byte{0x34, 0x12}, 0x2469},
		{"long at the port's last byte", 3, []byte{0x78, 0x56, 0x34, 0x12}, 0x2468acf1},
		{"long 0xffffffff: all 33 bits", 0, []byte{0xff, 0xff, 0xff, 0xff}, 0x1ffffffff},
		{"three bytes: ignored", 0, []byte{1, 2, 3}, -1},
		{"eight bytes: ignored", 0, make([]byte, 8), -1},
		{"nothing: ignored", 0, nil, -1},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got := -1
			calls := 0
			p := New(Config{Exit: func(s int) { got = s; calls++ }, Logger: quiet})
			p.Write(tt.off, tt.data)
			if got != tt.status || calls > 1 {
				t.Errorf("status %#x after %d calls, want %#x", got, calls, tt.status)
			}
		})
	}
}

// TestReadsZero: reading the port neither ends the run nor reads ones.
func TestReadsZero(t *testing.T) {
	p := New(Config{Exit: func(int) { t.Error("a read ended the run") }, Logger: quiet})
	for _, n := range []int{1, 2, 4} {
		b := bytes.Repeat([]byte{0xaa}, n)
		p.Read(0, b)
		if !bytes.Equal(b, make([]byte, n)) {
			t.Errorf("%d-byte read: % x", n, b)
		}
	}
}

func TestStatus(t *testing.T) {
	for v, want := range map[uint64]int{0: 1, 1: 3, 0x7f: 0xff, 0x80: 0x101} {
		if got := Status(v); got != want {
			t.Errorf("Status(%#x) = %#x, want %#x", v, got, want)
		}
	}
}
