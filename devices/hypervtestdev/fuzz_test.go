package hypervtestdev

import (
	"strings"
	"testing"
)

// FuzzCommands: any sequence of register writes (4 bytes each; a leading
// byte picks the access size and offset of some) never panics, and after
// Close every route the device made is closed and no handler is left.
func FuzzCommands(f *testing.F) {
	f.Add([]byte{4, 5, 0, 1, 0, 4, 5, 0, 3, 0, 4, 5, 0, 2, 0})
	f.Add([]byte{4, 8, 0, 4, 0x10, 4, 0, 0, 5, 0x10, 4, 9, 1, 6, 0x21, 4, 0, 0, 7, 0x21})
	f.Fuzz(func(t *testing.T, ops []byte) {
		fk := newFake()
		d := New(fk, 2, quiet)
		for len(ops) >= 5 {
			size, off := int(ops[0]%5), uint64(ops[0]/5%2)
			if size == 0 {
				size = 4
			}
			b := make([]byte, 4)
			copy(b, ops[1:5])
			d.Write(off, b[:size])
			ops = ops[5:]
		}
		if err := d.Close(); err != nil {
			t.Fatal(err)
		}
		made, closed := 0, 0
		for _, l := range fk.log {
			made += b2i(strings.HasPrefix(l, "route "))
			closed += b2i(strings.HasPrefix(l, "close "))
		}
		if made != closed || len(fk.messages) != 0 || len(fk.events) != 0 {
			t.Fatalf("%d routes made, %d closed, %d+%d handlers left: %q", made, closed, len(fk.messages), len(fk.events), fk.log)
		}
	})
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}
