package multiboot

import (
	"bytes"
	"errors"
	"testing"

	"ember/guest"
	"ember/layout"
)

// sentinels are the errors every refusal must wrap one of.
var sentinels = []error{ErrNoHeader, ErrBadChecksum, ErrTruncated, ErrUnsupportedFlags, ErrBadAddresses, ErrBadEntry,
	ErrNotELF32, ErrCorruptELF, ErrOverlap, ErrOutsideRAM, ErrNoRoom, ErrBadCmdline, ErrBadMemoryMap}

func checkSentinel(t *testing.T, err error) {
	t.Helper()
	n := 0
	for _, s := range sentinels {
		if errors.Is(err, s) {
			n++
		}
	}
	if n != 1 {
		t.Fatalf("error %q wraps %d sentinels, want 1", err, n)
	}
}

// fuzzKernels are valid kernels of every kind, so the fuzzer starts from
// inputs that reach deep into the parser.
func fuzzKernels() [][]byte {
	video := append(bytes.Repeat([]byte{0xcc}, aoutPre),
		header(FlagAddresses|FlagVideoMode, aoutHeader, aoutLoad, 0, 0, aoutLoad, 1, 80, 25, 0)...)
	return [][]byte{goodELF(), goodAout(), video, guest.Multiboot.Code,
		elf32(0xc0000000+elfEntry, header(FlagVideoMode, 0, 0, 0, 0, 0, 0, 0, 0, 0), seg{paddr: elfText, vaddr: 0xc0000000 + elfText, data: elfTextBytes})}
}

func FuzzParse(f *testing.F) {
	for _, k := range fuzzKernels() {
		f.Add(k)
	}
	f.Fuzz(func(t *testing.T, image []byte) {
		img, err := Parse(image)
		if err != nil {
			if img != nil {
				t.Fatal("an image returned with an error")
			}
			checkSentinel(t, err)
			return
		}
		if !HasHeader(image) {
			t.Fatal("Parse accepted an image HasHeader rejects")
		}
		h := img.Header
		if h.Offset%4 != 0 || h.Offset+h.size() > SearchLimit || h.Flags&requiredMask&^supportedRequired != 0 {
			t.Fatalf("accepted header %+v", h)
		}
		inText := false
		for i, s := range img.Segments {
			if uint64(len(s.Data)) > s.MemSize || s.End() > fourGiB || s.MemSize == 0 {
				t.Fatalf("accepted segment %d: %#x, %d bytes, %d in memory", i, s.Addr, len(s.Data), s.MemSize)
			}
			if i > 0 && img.Segments[i-1].End() > uint64(s.Addr) {
				t.Fatalf("accepted overlapping segments %d and %d", i-1, i)
			}
			inText = inText || img.Entry >= s.Addr && uint64(img.Entry) < uint64(s.Addr)+uint64(len(s.Data))
		}
		if !inText {
			t.Fatalf("entry %#x is in no segment's file bytes", img.Entry)
		}
	})
}

func FuzzLoad(f *testing.F) {
	for _, k := range fuzzKernels() {
		f.Add(k, "kernel arg=1", []byte("module data"), "mod arg")
	}
	f.Add(aoutAt(layout.MultibootInfo-aoutSize-aoutBSS), "", []byte{}, "")
	mem := newRAM(f, 4<<20)
	f.Fuzz(func(t *testing.T, kernel []byte, cmdline string, mod []byte, modCmdline string) {
		fill(mem)
		cfg := Config{Cmdline: cmdline, Modules: []Module{{Data: mod, Cmdline: modCmdline}}}
		b, err := Load(mem, kernel, cfg)
		if err != nil {
			if b != nil {
				t.Fatal("a Boot returned with an error")
			}
			checkSentinel(t, err)
			if !untouched(mem) {
				t.Fatalf("RAM written before the refusal %v", err)
			}
			return
		}
		img, err := Parse(kernel)
		if err != nil {
			t.Fatalf("Load accepted what Parse refuses: %v", err)
		}
		if b.Entry.RIP != uint64(img.Entry) || b.Entry.Regs.RAX != BootMagic || b.Entry.Regs.RBX != b.Info {
			t.Fatalf("entry %+v", b.Entry)
		}
		for _, s := range img.Segments {
			if !bytes.Equal(read(t, mem, uint64(s.Addr), uint64(len(s.Data))), s.Data) {
				t.Fatalf("segment at %#x not in RAM", s.Addr)
			}
		}
		m := b.Modules[0]
		if m.GPA%pageSize != 0 || m.GPA < b.KernelEnd && m.End() > b.KernelStart || m.End() > fourGiB-1 {
			t.Fatalf("module at %#x-%#x, kernel %#x-%#x", m.GPA, m.End(), b.KernelStart, b.KernelEnd)
		}
		checkInfo(t, mem, b, cfg, memoryMap(mem), img.Header.Flags&FlagVideoMode != 0)
	})
}
