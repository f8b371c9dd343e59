package cpio

import (
	"bytes"
	"strconv"
	"testing"
)

// entry is one member of a parsed archive.
type entry struct {
	name string
	mode uint32
	data string
}

// parse reads a newc archive back, checking the alignment rules the kernel
// relies on: every header and every file body starts on a 4-byte boundary.
func parse(t *testing.T, b []byte) []entry {
	t.Helper()
	var out []entry
	off := 0
	for {
		if off%4 != 0 {
			t.Fatalf("header at %d is not 4-byte aligned", off)
		}
		if off+110 > len(b) || string(b[off:off+6]) != "070701" {
			t.Fatalf("no newc header at %d", off)
		}
		field := func(i int) uint32 {
			v, err := strconv.ParseUint(string(b[off+6+8*i:off+14+8*i]), 16, 32)
			if err != nil {
				t.Fatalf("field %d at %d: %v", i, off, err)
			}
			return uint32(v)
		}
		mode, size, namesize := field(1), int(field(6)), int(field(11))
		name := string(b[off+110 : off+110+namesize-1])
		off += 110 + namesize
		off = (off + 3) &^ 3
		data := string(b[off : off+size])
		off = (off + size + 3) &^ 3
		if name == "TRAILER!!!" {
			if off != len(b) {
				t.Fatalf("%d bytes after the trailer", len(b)-off)
			}
			return out
		}
		out = append(out, entry{name, mode, data})
	}
}

func TestArchiveRoundTrip(t *testing.T) {
	var buf bytes.Buffer
	w := NewWriter(&buf)
	for _, err := range []error{
		w.File("/bin/busybox", []byte("elf!x"), 0o755),
		w.Symlink("bin/sh", "busybox"),
		w.Dir("dev", 0o755),
		w.File("etc/deep/conf", []byte("abc"), 0o644),
		w.Close(),
	} {
		if err != nil {
			t.Fatal(err)
		}
	}
	want := []entry{
		{"bin", modeDir | 0o755, ""},
		{"bin/busybox", modeRegular | 0o755, "elf!x"},
		{"bin/sh", modeSymlink | 0o777, "busybox"},
		{"dev", modeDir | 0o755, ""},
		{"etc", modeDir | 0o755, ""},
		{"etc/deep", modeDir | 0o755, ""},
		{"etc/deep/conf", modeRegular | 0o644, "abc"},
	}
	got := parse(t, buf.Bytes())
	if len(got) != len(want) {
		t.Fatalf("got %d entries %v, want %d", len(got), got, len(want))
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("entry %d = %+v, want %+v", i, got[i], want[i])
		}
	}
}
