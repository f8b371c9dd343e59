package boot

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"
)

// fuzzSeeds are valid images of every kind, so the fuzzer starts from
// inputs that reach deep into the parsers.
func fuzzSeeds(f *testing.F) (bz [][]byte, payloads [][]byte) {
	vm := testVmlinux()
	for _, c := range compressors {
		s, ok := c.fn(f, vm)
		if !ok {
			continue
		}
		p := withTrailer(s, len(vm))
		payloads = append(payloads, p)
		bz = append(bz, buildBzImage(defaultBzOpts(p)))
	}
	return bz, payloads
}

func FuzzParseBzImage(f *testing.F) {
	bz, _ := fuzzSeeds(f)
	for _, b := range bz {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		img, err := ParseBzImage(data)
		if err != nil {
			if img != nil {
				t.Fatal("image returned with an error")
			}
			return
		}
		if len(img.Payload) == 0 || uint64(len(img.Kernel)) < uint64(img.Header.Syssize)*16 {
			t.Fatalf("accepted an image with payload %d bytes, kernel %d bytes", len(img.Payload), len(img.Kernel))
		}
	})
}

func FuzzParseELF(f *testing.F) {
	f.Add(testVmlinux())
	f.Add(buildELF(false, 0x10000, []testSeg{{0x10000, []byte("\xeb\xfe"), 0x2000}}, pvhNote(0x10000)))
	f.Fuzz(func(t *testing.T, data []byte) {
		e, err := ParseELF(data)
		if err != nil {
			return
		}
		for _, s := range e.Segments {
			if uint64(len(s.Data)) != s.Filesz || s.Filesz > s.Memsz || s.Paddr+s.Memsz < s.Paddr {
				t.Fatalf("bad segment accepted: %+v", s)
			}
		}
		// Loading into a small memory must not panic either.
		_, _ = LoadELF(newMem(1<<20), data)
	})
}

func FuzzDecompress(f *testing.F) {
	_, payloads := fuzzSeeds(f)
	for _, p := range payloads {
		f.Add(p)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		const limit = 1 << 20
		out, _, err := decompress(data, limit)
		if err != nil {
			if out != nil {
				t.Fatal("output returned with an error")
			}
			for _, want := range []error{ErrUnknownCompression, ErrTruncated, ErrCorruptPayload, ErrKernelTooLarge} {
				if errors.Is(err, want) {
					return
				}
			}
			t.Fatalf("error %v wraps no sentinel", err)
		}
		if DetectCompression(data) != CompressionNone && uint32(len(out)) != binary.LittleEndian.Uint32(data[len(data)-4:]) {
			t.Fatalf("%d bytes out, trailer says otherwise", len(out))
		}
	})
}

func FuzzLoadLinux(f *testing.F) {
	bz, _ := fuzzSeeds(f)
	for i, b := range bz {
		f.Add(b, uint16(100), "console=ttyS0", uint8(i%4))
	}
	f.Add(testVmlinux(), uint16(0), "", uint8(ModePVH))
	f.Fuzz(func(t *testing.T, kernel []byte, initrdLen uint16, cmdline string, mode uint8) {
		const ram = 32 << 20
		mem := newMem(ram)
		initrd := bytes.Repeat([]byte{0xa5}, int(initrdLen))
		e, err := LoadLinux(mem, LinuxConfig{Kernel: kernel, Initrd: initrd, Cmdline: cmdline, Mode: Mode(mode % 5)})
		if err != nil {
			return
		}
		m := MemoryMap(ram)
		if !inRAM(m, e.KernelStart, e.KernelEnd-e.KernelStart) {
			t.Fatalf("kernel %#x-%#x outside RAM", e.KernelStart, e.KernelEnd)
		}
		if len(initrd) > 0 && (!inRAM(m, e.Initrd, e.InitrdSize) || e.Initrd < e.KernelEnd) {
			t.Fatalf("initrd %#x+%#x misplaced (kernel ends %#x)", e.Initrd, e.InitrdSize, e.KernelEnd)
		}
		if !bytes.Equal(mem.read(e.Initrd, e.InitrdSize), initrd) {
			t.Fatal("initrd overwritten")
		}
	})
}
