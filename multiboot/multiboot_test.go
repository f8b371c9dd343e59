package multiboot

import (
	"bytes"
	"errors"
	"reflect"
	"strings"
	"testing"

	"ember/boot"
	"ember/guest"
	"ember/layout"
	"ember/memory"
	"ember/x86"
)

const (
	kib = 1 << 10
	mib = 1 << 20
	gib = 1 << 30
)

// elfMB is where goodELF's multiboot header starts: after the ELF header and
// its two program headers.
const elfMB = elfHeaderSize + 2*elfProgHeaderSize

// ph is the file offset of field off of goodELF's program header i.
func ph(i, off int) int { return elfHeaderSize + i*elfProgHeaderSize + off }

func TestParseRefusals(t *testing.T) {
	pad := func(n int, b []byte) []byte { return append(make([]byte, n), b...) }
	full := uint32(aoutLoad + aoutSize)
	tests := []struct {
		name  string
		image []byte
		want  error
	}{
		{"an empty image", nil, ErrNoHeader},
		{"a header after the first 8192 bytes", pad(SearchLimit, goodELF()), ErrNoHeader},
		{"a header at an offset not 4-byte aligned", pad(2, header(0)), ErrNoHeader},
		{"a header cut before its checksum", header(0)[:8], ErrNoHeader},
		{"a wrong checksum", mutate(goodELF(), put32(elfMB+8, 0)), ErrBadChecksum},
		{"flags changed after the checksum was made", mutate(goodELF(), put32(elfMB+4, FlagPageAlign)), ErrBadChecksum},
		{"address fields past the first 8192 bytes", pad(SearchLimit-16, header(FlagAddresses, 1, 2, 3, 4, 5)), ErrTruncated},
		{"address fields past the end of the file", header(FlagAddresses), ErrTruncated},
		{"video fields past the end of the file", header(FlagVideoMode, 0, 0, 0, 0, 0), ErrTruncated},
		{"required flag 3", mutate(goodAout(), put32(aoutPre+4, FlagAddresses|1<<3), put32(aoutPre+8, checksum(FlagAddresses|1<<3))), ErrUnsupportedFlags},
		{"required flag 15", append(header(1<<15), make([]byte, 64)...), ErrUnsupportedFlags},

		// The a.out kludge's address fields.
		{"load_addr above header_addr", aout(0, aoutHeader, aoutHeader+4, 0, 0, aoutEntry), ErrBadAddresses},
		{"a load that starts before the file", aout(0, aoutHeader, aoutLoad-4, 0, 0, aoutEntry), ErrBadAddresses},
		{"load_end_addr below load_addr", aout(0, aoutHeader, aoutLoad, aoutLoad-1, 0, aoutEntry), ErrBadAddresses},
		{"load_end_addr past the end of the file", aout(0, aoutHeader, aoutLoad, full+1, 0, aoutEntry), ErrBadAddresses},
		{"the header outside the loaded part", aout(0, aoutHeader, aoutLoad, aoutHeader+16, 0, aoutLoad), ErrBadAddresses},
		{"bss_end_addr below the loaded part", aout(0, aoutHeader, aoutLoad, full, full-4, aoutEntry), ErrBadAddresses},
		{"a load of the rest of the file past 4 GiB", aout(0, 0xffffff00+aoutPre, 0xffffff00, 0, 0, 0xffffff00+aoutPre+headerAddrSize), ErrBadAddresses},
		{"a load_end_addr that wrapped past 4 GiB", aoutAt(0xffffff00), ErrBadAddresses},
		{"entry_addr below load_addr", aout(0, aoutHeader, aoutLoad, 0, 0, aoutLoad-4), ErrBadEntry},
		{"entry_addr in the bss", aout(0, aoutHeader, aoutLoad, full, full+aoutBSS, full), ErrBadEntry},

		// ELF32 kernels.
		{"neither address fields nor an ELF header", append(header(0), make([]byte, 64)...), ErrNotELF32},
		{"an ELF64", mutate(goodELF(), putByte(4, 2)), ErrNotELF32},
		{"a big-endian ELF", mutate(goodELF(), putByte(5, 2)), ErrNotELF32},
		{"ELF version 0", mutate(goodELF(), putByte(6, 0)), ErrNotELF32},
		{"an x86-64 machine", mutate(goodELF(), put16(18, 62)), ErrNotELF32},
		{"a shared object", mutate(goodELF(), put16(16, 3)), ErrNotELF32},
		{"e_phentsize of ELF64", mutate(goodELF(), put16(42, 56)), ErrCorruptELF},
		{"program headers past the end of the file", mutate(goodELF(), put32(28, 0xfff0)), ErrTruncated},
		{"segment data past the end of the file", mutate(goodELF(), put32(ph(0, 4), 0xfff0)), ErrTruncated},
		{"p_filesz above p_memsz", mutate(goodELF(), put32(ph(0, 20), 4)), ErrCorruptELF},
		{"a segment past 4 GiB", mutate(goodELF(), put32(ph(1, 12), 0xfffffff0)), ErrCorruptELF},
		{"no PT_LOAD segment", elf32(elfEntry, header(0), seg{typ: 4, paddr: elfText, data: elfTextBytes}), ErrCorruptELF},
		{"e_entry outside every segment", mutate(goodELF(), put32(24, 0x300000)), ErrBadEntry},
		{"e_entry in a segment's bss", mutate(goodELF(), put32(24, elfData+uint32(len(elfDataBytes)))), ErrBadEntry},
		{"two segments at one address", elf32(elfEntry, header(0),
			seg{paddr: elfText, data: elfTextBytes}, seg{paddr: elfText + 4, data: elfTextBytes}), ErrOverlap},
		{"a segment's bss over the next segment", elf32(elfEntry, header(0),
			seg{paddr: elfText, data: elfTextBytes, memsz: 0x1001}, seg{paddr: elfText + 0x1000, data: elfDataBytes}), ErrOverlap},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			img, err := Parse(tt.image)
			if !errors.Is(err, tt.want) {
				t.Fatalf("Parse = %v, want %v", err, tt.want)
			}
			if img != nil {
				t.Error("an image returned with the error")
			}
			if !strings.HasPrefix(err.Error(), "multiboot: ") {
				t.Errorf("error %q does not say where it comes from", err)
			}
		})
	}
}

func TestParseAout(t *testing.T) {
	image := goodAout()
	img, err := Parse(image)
	if err != nil {
		t.Fatal(err)
	}
	want := &Image{
		Header: Header{Offset: aoutPre, Flags: FlagAddresses, HeaderAddr: aoutHeader, LoadAddr: aoutLoad,
			LoadEndAddr: aoutLoad + aoutSize, BSSEndAddr: aoutLoad + aoutSize + aoutBSS, EntryAddr: aoutEntry},
		Segments: []Segment{{Addr: aoutLoad, Data: image, MemSize: aoutSize + aoutBSS}},
		Entry:    aoutEntry,
	}
	if !reflect.DeepEqual(img, want) {
		t.Errorf("Parse = %+v\nwant    %+v", img, want)
	}
}

// TestParseAoutDefaults: load_end_addr 0 loads the rest of the file, and
// bss_end_addr 0 means no bss; the load may start after the file's first
// byte.
func TestParseAoutDefaults(t *testing.T) {
	const skip = 0x10 // the file's first bytes are not loaded
	image := aout(0, aoutHeader, aoutLoad+skip, 0, 0, aoutEntry)
	img, err := Parse(image)
	if err != nil {
		t.Fatal(err)
	}
	s := img.Segments
	if len(s) != 1 || s[0].Addr != aoutLoad+skip || !bytes.Equal(s[0].Data, image[skip:]) || s[0].MemSize != uint64(len(image)-skip) {
		t.Errorf("segments %+v; want the file from offset %#x at %#x, no bss", s, skip, aoutLoad+skip)
	}
}

func TestParseELF32(t *testing.T) {
	img, err := Parse(goodELF())
	if err != nil {
		t.Fatal(err)
	}
	if !img.ELF || img.Entry != elfEntry || img.Header.Offset != elfMB || img.Header.Flags != FlagPageAlign|FlagMemoryInfo {
		t.Errorf("image %+v: want ELF, entry %#x, header at %#x", img, elfEntry, elfMB)
	}
	want := []Segment{
		{Addr: elfText, Data: elfTextBytes, MemSize: uint64(len(elfTextBytes))},
		{Addr: elfData, Data: elfDataBytes, MemSize: uint64(len(elfDataBytes)) + elfBSS},
	}
	if !reflect.DeepEqual(img.Segments, want) {
		t.Errorf("segments %+v, want %+v", img.Segments, want)
	}
}

// TestParseFlags: the optional flags a loader may ignore (17-31) are
// ignored; the address fields win over an ELF header when flag 16 is set.
func TestParseFlags(t *testing.T) {
	e := goodELF()
	optional := mutate(e, put32(elfMB+4, 1<<17|1<<31), put32(elfMB+8, checksum(1<<17|1<<31)))
	if img, err := Parse(optional); err != nil || !img.ELF {
		t.Errorf("flags 17 and 31: %v", err)
	}
	// An ELF file whose header carries address fields is loaded by them.
	withAddrs := append(append([]byte(nil), e[:elfMB]...), header(FlagAddresses, 0x300000+elfMB, 0x300000, 0, 0, 0x300000+elfMB)...)
	img, err := Parse(append(withAddrs, e[elfMB+12:]...))
	if err != nil || img.ELF || img.Segments[0].Addr != 0x300000 {
		t.Errorf("ELF with address fields: %+v, %v; want loaded by the fields at 0x300000", img, err)
	}
}

// TestHigherHalfELFEntry: a kernel linked to run at 3 GiB but loaded at its
// physical addresses, whose e_entry is virtual, is entered at the physical
// address of that entry.
func TestHigherHalfELFEntry(t *testing.T) {
	const virt = 0xc0000000
	img, err := Parse(elf32(virt+elfEntry, header(0), seg{paddr: elfText, vaddr: virt + elfText, data: elfTextBytes}))
	if err != nil {
		t.Fatal(err)
	}
	if img.Entry != elfEntry {
		t.Errorf("entry %#x, want %#x", img.Entry, elfEntry)
	}
}

func TestHasHeader(t *testing.T) {
	for _, tt := range []struct {
		name  string
		image []byte
		want  bool
	}{
		{"an ELF32 kernel", goodELF(), true},
		{"an a.out-kludge kernel", goodAout(), true},
		{"a kernel Parse refuses", append(header(1<<15), make([]byte, 64)...), true},
		{"a wrong checksum", mutate(goodELF(), put32(elfMB+8, 0)), false},
		{"no header", make([]byte, 4096), false},
	} {
		if got := HasHeader(tt.image); got != tt.want {
			t.Errorf("%s: HasHeader = %v, want %v", tt.name, got, tt.want)
		}
	}
}

// TestGuestKernelParses: the committed multiboot test guest is an a.out-
// kludge kernel at 1 MiB whose file is exactly what it loads.
func TestGuestKernelParses(t *testing.T) {
	img, err := Parse(guest.Multiboot.Code)
	if err != nil {
		t.Fatal(err)
	}
	s := img.Segments
	if img.ELF || len(s) != 1 || s[0].Addr != layout.HighRAM || len(s[0].Data) != len(guest.Multiboot.Code) || s[0].MemSize <= uint64(len(s[0].Data)) {
		t.Errorf("image %+v: want the whole file at 1 MiB with a bss", img)
	}
}

func TestLoadRefusals(t *testing.T) {
	mods := func(ms ...Module) Config { return Config{Modules: ms} }
	tests := []struct {
		name   string
		kernel []byte
		cfg    Config
		want   error
	}{
		{"an image with no header", make([]byte, 4096), Config{}, ErrNoHeader},
		{"a segment above RAM", aoutAt(9 * mib), Config{}, ErrOutsideRAM},
		{"a bss past the end of RAM", aoutAt(8*mib - aoutSize - 0x1000), Config{}, ErrOutsideRAM},
		{"a segment in the legacy area below 1 MiB", aoutAt(0xa0000), Config{}, ErrOutsideRAM},
		{"a segment over the GDT", aoutAt(0x400), Config{}, ErrOverlap},
		{"a segment over the multiboot information", aoutAt(layout.MultibootInfo - aoutSize), Config{}, ErrOverlap},
		{"a NUL in the command line", goodELF(), Config{Cmdline: "a\x00b"}, ErrBadCmdline},
		{"a NUL in a module's string", goodELF(), mods(Module{Data: []byte("m"), Cmdline: "m\x00"}), ErrBadCmdline},
		{"a module larger than RAM", goodELF(), mods(Module{Data: make([]byte, 9*mib)}), ErrNoRoom},
		{"modules that fit one by one but not together", goodELF(), mods(Module{Data: make([]byte, 4*mib)}, Module{Data: make([]byte, 4*mib)}), ErrNoRoom},
		{"a command line larger than the information's room", goodELF(), Config{Cmdline: strings.Repeat("x", layout.MultibootInfoSize)}, ErrNoRoom},
		{"an empty memory map", goodELF(), Config{MemoryMap: []boot.E820Entry{}}, ErrBadMemoryMap},
		{"a memory map with more RAM than the guest has", goodELF(), Config{MemoryMap: []boot.E820Entry{{Addr: 0, Size: 16 * mib, Type: boot.E820RAM}}}, ErrBadMemoryMap},
		{"a memory map entry that wraps", goodELF(), Config{MemoryMap: []boot.E820Entry{{Addr: 1 * mib, Size: ^uint64(0), Type: boot.E820Reserved}}}, ErrBadMemoryMap},
		{"a memory map of 129 entries", goodELF(), Config{MemoryMap: make([]boot.E820Entry, boot.E820MaxEntries+1)}, ErrBadMemoryMap},
		{"a memory map without RAM at the multiboot information", goodELF(), Config{MemoryMap: []boot.E820Entry{
			{Addr: 0, Size: 0x10000, Type: boot.E820RAM}, {Addr: 1 * mib, Size: 7 * mib, Type: boot.E820RAM}}}, ErrOutsideRAM},
		{"a memory map that reserves the kernel's place", goodELF(), Config{MemoryMap: []boot.E820Entry{
			{Addr: 0, Size: layout.EBDA, Type: boot.E820RAM}, {Addr: 1 * mib, Size: 7 * mib, Type: boot.E820Reserved}}}, ErrOutsideRAM},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mem := newRAM(t, 8*mib)
			b, err := Load(mem, tt.kernel, tt.cfg)
			if !errors.Is(err, tt.want) {
				t.Fatalf("Load = %v, want %v", err, tt.want)
			}
			if b != nil {
				t.Error("a Boot returned with the error")
			}
			if !untouched(mem) {
				t.Error("guest RAM was written before the refusal")
			}
		})
	}
}

// twoModules are the modules the Load tests give the kernel.
var twoModules = []Module{
	{Data: []byte("first module's bytes"), Cmdline: "/boot/one.mod alpha"},
	{Data: bytes.Repeat([]byte("2nd!"), 0x500), Cmdline: ""},
}

func TestLoadAout(t *testing.T) {
	mem := newRAM(t, 8*mib)
	cfg := Config{Cmdline: "/boot/kernel quiet test=1", Modules: twoModules}
	b, err := Load(mem, goodAout(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	checkKernel(t, mem, b, aoutEntry, []Segment{{Addr: aoutLoad, Data: goodAout(), MemSize: aoutSize + aoutBSS}})
	checkInfo(t, mem, b, cfg, memoryMap(mem), false)
}

func TestLoadELF32(t *testing.T) {
	mem := newRAM(t, 8*mib)
	cfg := Config{Cmdline: "kernel.elf", Modules: twoModules}
	b, err := Load(mem, goodELF(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	checkKernel(t, mem, b, elfEntry, []Segment{
		{Addr: elfText, Data: elfTextBytes, MemSize: uint64(len(elfTextBytes))},
		{Addr: elfData, Data: elfDataBytes, MemSize: uint64(len(elfDataBytes)) + elfBSS},
	})
	checkInfo(t, mem, b, cfg, memoryMap(mem), false)
}

// TestLoadGivenMemoryMap: the map in Config is what the kernel gets, and
// mem_lower and mem_upper come from it.
func TestLoadGivenMemoryMap(t *testing.T) {
	mem := newRAM(t, 8*mib)
	ram := []boot.E820Entry{
		{Addr: 0, Size: 0x80000, Type: boot.E820RAM},
		{Addr: 0x80000, Size: 1*mib - 0x80000, Type: boot.E820Reserved},
		{Addr: 1 * mib, Size: 3 * mib, Type: boot.E820RAM},
		{Addr: 4 * mib, Size: 4 * mib, Type: boot.E820ACPI},
	}
	cfg := Config{MemoryMap: ram, Modules: twoModules[:1]}
	b, err := Load(mem, goodAout(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	checkInfo(t, mem, b, cfg, ram, false)
	if lo, up := u32(t, mem, b.Info+infoMemLower), u32(t, mem, b.Info+infoMemUpper); lo != 512 || up != 3*1024 {
		t.Errorf("mem_lower %d, mem_upper %d KiB; want 512, 3072", lo, up)
	}
}

// TestVideoModeGivesTextMode: a kernel that requires video information gets
// the EGA text mode, whatever mode it preferred.
func TestVideoModeGivesTextMode(t *testing.T) {
	mem := newRAM(t, 8*mib)
	image := append(bytes.Repeat([]byte{0xcc}, aoutPre),
		header(FlagAddresses|FlagVideoMode, aoutHeader, aoutLoad, 0, 0, aoutLoad, 0, 1024, 768, 32)...)
	img, err := Parse(image)
	if err != nil {
		t.Fatal(err)
	}
	if h := img.Header; h.ModeType != 0 || h.Width != 1024 || h.Height != 768 || h.Depth != 32 {
		t.Errorf("video fields %+v, want linear 1024x768x32", h)
	}
	b, err := Load(mem, image, Config{})
	if err != nil {
		t.Fatal(err)
	}
	i := b.Info
	if f := u32(t, mem, i+infoFlags); f&infoHasFB == 0 {
		t.Fatalf("info flags %#x: no framebuffer information", f)
	}
	fb := read(t, mem, i+infoFBAddr, 22)
	got := []uint64{le.Uint64(fb), uint64(le.Uint32(fb[8:])), uint64(le.Uint32(fb[12:])), uint64(le.Uint32(fb[16:])), uint64(fb[20]), uint64(fb[21])}
	if want := []uint64{0xb8000, 160, 80, 25, 16, 2}; !reflect.DeepEqual(got, want) {
		t.Errorf("framebuffer addr, pitch, width, height, bpp, type = %#x, want %#x", got, want)
	}
}

func TestModulePlacement(t *testing.T) {
	m := func(n int) Module { return Module{Data: bytes.Repeat([]byte{'m'}, n)} }
	kernelEnd := uint64(aoutLoad + aoutSize + aoutBSS)
	tests := []struct {
		name   string
		kernel []byte
		ram    []boot.E820Entry // nil: derived
		mods   []Module
		want   []memory.Range
	}{
		{"page-aligned, one after the other above the kernel", goodAout(), nil, []Module{m(0x1001), m(1)},
			[]memory.Range{{GPA: alignUp(kernelEnd), Size: 0x1001}, {GPA: alignUp(kernelEnd) + 0x2000, Size: 1}}},
		{"empty modules each get their own address", goodAout(), nil, []Module{m(0), m(0)},
			[]memory.Range{{GPA: alignUp(kernelEnd), Size: 0}, {GPA: alignUp(kernelEnd) + 0x1000, Size: 0}}},
		{"below the kernel, from 1 MiB, when it ends RAM", aoutAt(8*mib - aoutSize - aoutBSS - 0x100), nil, []Module{m(0x2000)},
			[]memory.Range{{GPA: 1 * mib, Size: 0x2000}}},
		{"past the multiboot information", aoutAt(0x10000), nil, []Module{m(0x10000)},
			[]memory.Range{{GPA: layout.MultibootInfo + 0x1000, Size: 0x10000}}},
		{"over a hole in the memory map", goodAout(), []boot.E820Entry{
			{Addr: 0, Size: layout.EBDA, Type: boot.E820RAM},
			{Addr: 1 * mib, Size: 0x205000 - 1*mib, Type: boot.E820RAM},
			{Addr: 0x300000, Size: 5 * mib, Type: boot.E820RAM}}, []Module{m(0x2000)},
			[]memory.Range{{GPA: 0x300000, Size: 0x2000}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mem := newRAM(t, 8*mib)
			b, err := Load(mem, tt.kernel, Config{Modules: tt.mods, MemoryMap: tt.ram})
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(b.Modules, tt.want) {
				t.Errorf("modules at %+v, want %+v", b.Modules, tt.want)
			}
			for i, r := range b.Modules {
				if !bytes.Equal(read(t, mem, r.GPA, r.Size), tt.mods[i].Data) {
					t.Errorf("module %d's bytes are not at %#x", i, r.GPA)
				}
			}
		})
	}
}

func TestMemoryMapFromRAM(t *testing.T) {
	ram, res := uint32(boot.E820RAM), uint32(boot.E820Reserved)
	e := func(addr, size uint64, typ uint32) boot.E820Entry {
		return boot.E820Entry{Addr: addr, Size: size, Type: typ}
	}
	tests := []struct {
		name         string
		regions      []memory.Range
		want         []boot.E820Entry
		lower, upper uint64 // KiB
	}{
		{"512 KiB: low RAM only", memory.PCLayout(512 * kib), []boot.E820Entry{e(0, 512*kib, ram)}, 512, 0},
		{"1 MiB: no RAM above the legacy area", memory.PCLayout(1 * mib), []boot.E820Entry{
			e(0, layout.EBDA, ram), e(layout.EBDA, 1*mib-layout.EBDA, res)}, 639, 0},
		{"8 MiB", memory.PCLayout(8 * mib), []boot.E820Entry{
			e(0, layout.EBDA, ram), e(layout.EBDA, 1*mib-layout.EBDA, res), e(1*mib, 7*mib, ram)}, 639, 7 * 1024},
		{"RAM above 4 GiB is in the map, not in mem_upper", []memory.Range{{GPA: 0, Size: 2 * mib}, {GPA: 4 * gib, Size: 1 * mib}}, []boot.E820Entry{
			e(0, layout.EBDA, ram), e(layout.EBDA, 1*mib-layout.EBDA, res), e(1*mib, 1*mib, ram), e(4*gib, 1*mib, ram)}, 639, 1024},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := memoryMap(newRegions(t, tt.regions...))
			if !reflect.DeepEqual(m, tt.want) {
				t.Errorf("map %+v, want %+v", m, tt.want)
			}
			if lo, up := memoryBounds(m); lo != tt.lower || up != tt.upper {
				t.Errorf("mem_lower %d, mem_upper %d, want %d, %d", lo, up, tt.lower, tt.upper)
			}
		})
	}
	// Adjacent RAM entries are one stretch for mem_upper.
	if _, up := memoryBounds([]boot.E820Entry{e(1*mib, 1*mib, ram), e(2*mib, 1*mib, ram), e(4*mib, 1*mib, ram)}); up != 2048 {
		t.Errorf("mem_upper over two adjacent entries = %d, want 2048", up)
	}
}

// checkKernel checks the entry state and the segments in RAM: their bytes,
// their bss cleared, and the byte after left alone.
func checkKernel(t *testing.T, mem *memory.Guest, b *Boot, entry uint64, segs []Segment) {
	t.Helper()
	want := x86.Entry{Mode: x86.ProtectedMode, RIP: entry}
	want.Regs.RAX, want.Regs.RBX = BootMagic, layout.MultibootInfo
	if !reflect.DeepEqual(b.Entry, want) {
		t.Errorf("entry %+v, want %+v", b.Entry, want)
	}
	if b.Info != layout.MultibootInfo || b.KernelStart != uint64(segs[0].Addr) || b.KernelEnd != segs[len(segs)-1].End() {
		t.Errorf("info %#x, kernel %#x-%#x", b.Info, b.KernelStart, b.KernelEnd)
	}
	for _, s := range segs {
		got := read(t, mem, uint64(s.Addr), s.MemSize+1)
		wantBytes := append(append(append([]byte(nil), s.Data...), make([]byte, s.MemSize-uint64(len(s.Data)))...), 0xaa)
		if !bytes.Equal(got, wantBytes) {
			t.Errorf("segment at %#x: RAM holds %q, want the data, %d zeros and RAM untouched after", s.Addr, got, s.MemSize-uint64(len(s.Data)))
		}
	}
}

// checkInfo reads the multiboot information back from RAM as a kernel
// would and compares it with what it should say.
func checkInfo(t *testing.T, mem *memory.Guest, b *Boot, cfg Config, ram []boot.E820Entry, video bool) {
	t.Helper()
	i := b.Info
	want := uint64(1<<0 | 1<<2 | 1<<3 | 1<<6 | 1<<9)
	if video {
		want |= 1 << 12
	}
	if f := u32(t, mem, i+infoFlags); f != want {
		t.Errorf("flags %#x, want %#x: memory, cmdline, mods, mmap, loader name (and framebuffer for video)", f, want)
	}
	lower, upper := memoryBounds(ram)
	if lo, up := u32(t, mem, i+infoMemLower), u32(t, mem, i+infoMemUpper); lo != lower || up != upper {
		t.Errorf("mem_lower %d, mem_upper %d, want %d, %d", lo, up, lower, upper)
	}
	if s := cstring(t, mem, u32(t, mem, i+infoCmdline)); s != cfg.Cmdline {
		t.Errorf("cmdline %q, want %q", s, cfg.Cmdline)
	}
	if s := cstring(t, mem, u32(t, mem, i+infoLoaderName)); s != "ember" {
		t.Errorf("boot_loader_name %q", s)
	}
	n, list := u32(t, mem, i+infoModsCount), u32(t, mem, i+infoModsAddr)
	if n != uint64(len(cfg.Modules)) || len(b.Modules) != len(cfg.Modules) {
		t.Fatalf("mods_count %d, Boot has %d modules; want %d", n, len(b.Modules), len(cfg.Modules))
	}
	prevEnd := b.KernelEnd
	for k, m := range cfg.Modules {
		e := list + uint64(k)*modEntrySize
		start, end := u32(t, mem, e), u32(t, mem, e+4)
		if start != b.Modules[k].GPA || end != start+uint64(len(m.Data)) || start%4096 != 0 || start < prevEnd {
			t.Errorf("module %d at %#x-%#x (Boot says %+v): want page-aligned after %#x, %d bytes", k, start, end, b.Modules[k], prevEnd, len(m.Data))
		}
		if !bytes.Equal(read(t, mem, start, uint64(len(m.Data))), m.Data) {
			t.Errorf("module %d: its bytes are not at %#x", k, start)
		}
		if s := cstring(t, mem, u32(t, mem, e+8)); s != m.Cmdline {
			t.Errorf("module %d string %q, want %q", k, s, m.Cmdline)
		}
		prevEnd = end
	}
	mlen, maddr := u32(t, mem, i+infoMmapLength), u32(t, mem, i+infoMmapAddr)
	var got []boot.E820Entry
	for a := maddr; a < maddr+mlen; a += u32(t, mem, a) + 4 {
		e := read(t, mem, a+4, 20)
		got = append(got, boot.E820Entry{Addr: le.Uint64(e), Size: le.Uint64(e[8:]), Type: le.Uint32(e[16:])})
	}
	if !reflect.DeepEqual(got, ram) {
		t.Errorf("mmap %+v, want %+v", got, ram)
	}
}
