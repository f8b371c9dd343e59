package virtio

import (
	"bytes"
	"testing"
)

// TestAppendSkip: the buffers after the first n bytes are appended to what
// dst held, the first of them cut where the n bytes end; bufs itself is
// left as it was, and skipping everything appends nothing.
func TestAppendSkip(t *testing.T) {
	bufs := [][]byte{[]byte("head"), []byte("er"), []byte("payload"), []byte("!")}
	tests := []struct {
		n    int
		want []string
	}{
		{0, []string{"head", "er", "payload", "!"}},
		{3, []string{"d", "er", "payload", "!"}},
		{4, []string{"er", "payload", "!"}},
		{6, []string{"payload", "!"}},
		{9, []string{"load", "!"}},
		{14, nil},
		{100, nil},
	}
	for _, tt := range tests {
		dst := [][]byte{[]byte("kept")}
		got := AppendSkip(dst, bufs, tt.n)
		if len(got) != 1+len(tt.want) || string(got[0]) != "kept" {
			t.Fatalf("n=%d: got %q, want \"kept\" then %q", tt.n, got, tt.want)
		}
		for i, w := range tt.want {
			if string(got[1+i]) != w {
				t.Errorf("n=%d: buffer %d is %q, want %q", tt.n, i, got[1+i], w)
			}
		}
		if string(bytes.Join(bufs, nil)) != "headerpayload!" || len(bufs[0]) != 4 {
			t.Fatalf("n=%d: bufs changed to %q", tt.n, bufs)
		}
		if s := Skip(bufs, tt.n); len(s) != len(tt.want) {
			t.Errorf("Skip(bufs, %d) = %q, want %q", tt.n, s, tt.want)
		}
	}
}
