package blk

import (
	"encoding/binary"
	"os"
	"path/filepath"
	"testing"

	"ember/virtio"
)

// FuzzRequest throws arbitrary request chains at a disk's request parser:
// a header of any type and sector, followed by readable and writable
// buffers of fuzzed sizes, served as a queue serves them — by the disk's
// thread (with requests behind it or none, the type's bit 30), and by a
// goroutine if the thread hands the request on. Whatever comes, serve must
// not panic, must leave the status byte alone when it hands a request on,
// must not claim more bytes written than the chain has room for, and must
// answer with one of the three statuses whenever there is a byte for it.
func FuzzRequest(f *testing.F) {
	seed := func(typ uint32, sector uint64, lens ...byte) []byte {
		b := make([]byte, 12)
		binary.LittleEndian.PutUint32(b, typ)
		binary.LittleEndian.PutUint64(b[4:], sector)
		return append(b, lens...)
	}
	f.Add(seed(typeIn, 0, 0, 2, 1, 0x81))
	f.Add(seed(typeOut, 3, 0, 2, 1, 0x81))
	f.Add(seed(typeFlush, 0, 0x81))
	f.Add(seed(typeGetID, 0, 0, 0x94, 0x81))
	f.Add(seed(typeDiscard, 0, 0, 1, 0x81))
	f.Add(seed(typeWriteZeroes, 1<<60, 0, 1, 0x81))
	f.Add(seed(typeIn, 1<<62, 0x82, 0x83))
	f.Add(seed(typeIn|1<<30, 0, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x81))
	f.Add(seed(typeOut|1<<30, 0, 0, 0x7f, 0x7f, 0x7f, 0x7f, 0x7f, 0x7f, 0x7f, 0x7f, 0x7f, 0x7f, 0x7f, 0x7f, 0x7f, 0x7f, 0x81))
	dir := f.TempDir()
	for _, ro := range []bool{false, true} {
		path := filepath.Join(dir, map[bool]string{false: "rw.img", true: "ro.img"}[ro])
		if err := os.WriteFile(path, make([]byte, 64<<10), 0o644); err != nil {
			f.Fatal(err)
		}
	}
	disks := map[bool]*Disk{}
	for _, ro := range []bool{false, true} {
		d, err := Open(Config{Path: filepath.Join(dir, map[bool]string{false: "rw.img", true: "ro.img"}[ro]), ReadOnly: ro, Serial: "fuzz"})
		if err != nil {
			f.Fatal(err)
		}
		f.Cleanup(func() { d.Close() })
		disks[ro] = d
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		if len(in) < 12 {
			return
		}
		typ, sector := binary.LittleEndian.Uint32(in), binary.LittleEndian.Uint64(in[4:])
		c := chainFrom(typ, sector, in[12:])
		d := disks[typ&1<<31 != 0]
		room := c.WritableLen()
		var status *byte
		if room > 0 {
			last := c.Writable[len(c.Writable)-1]
			status = &last[len(last)-1]
			*status = 0xee
		}
		n, served := (&worker{d: d, alone: typ&(1<<30) != 0}).serve(c)
		if !served {
			if n != 0 || (status != nil && *status != 0xee) {
				t.Fatalf("a request handed on: %d bytes claimed, status byte written", n)
			}
			n, _ = (&worker{d: d, wait: true}).serve(c)
		}
		if uint64(n) > room {
			t.Fatalf("claims %d bytes written into %d", n, room)
		}
		if room > 0 {
			last := c.Writable[len(c.Writable)-1]
			if st := last[len(last)-1]; n > 0 && st > statusUnsupp {
				t.Fatalf("status %d", st)
			}
		}
	})
}

// chainFrom builds a chain: a 16-byte header (type, sector), then one
// buffer per byte of lens, readable if its top bit is clear and writable if
// set, of (low 7 bits) × 37 bytes, so sizes land on and off sector
// boundaries (0: none, as Pop makes no empty buffers). Readable buffers
// after writable ones are dropped, as Pop would refuse them.
func chainFrom(typ uint32, sector uint64, lens []byte) *virtio.Chain {
	hdr := make([]byte, headerSize)
	binary.LittleEndian.PutUint32(hdr, typ&^(3<<30))
	binary.LittleEndian.PutUint64(hdr[8:], sector)
	c := &virtio.Chain{Readable: [][]byte{hdr}}
	for i, l := range lens {
		if i >= 16 {
			break
		}
		buf := make([]byte, int(l&0x7f)*37)
		if len(buf) == 0 {
			continue // Pop never yields an empty buffer
		}
		if l&0x80 != 0 {
			c.Writable = append(c.Writable, buf)
		} else if len(c.Writable) == 0 {
			for j := range buf {
				buf[j] = byte(j)
			}
			c.Readable = append(c.Readable, buf)
		}
	}
	return c
}
