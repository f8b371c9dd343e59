package boot

import (
	"bytes"
	"encoding/binary"
	"errors"
	"os"
	"strings"
	"testing"

	"ember/layout"
)

const testRAM = 64 << 20

func gzipPayload(t testing.TB, data []byte) []byte {
	t.Helper()
	s, _ := compressors[0].fn(t, data)
	return withTrailer(s, len(data))
}

func testBzImage(t testing.TB) []byte {
	t.Helper()
	return buildBzImage(defaultBzOpts(gzipPayload(t, testVmlinux())))
}

func TestParseBzImageReadsSetupHeader(t *testing.T) {
	img, err := ParseBzImage(testBzImage(t))
	if err != nil {
		t.Fatal(err)
	}
	h := img.Header
	checks := []struct {
		name      string
		got, want uint64
	}{
		{"setup_sects", uint64(h.SetupSects), testSetupSects},
		{"version", uint64(h.Version), 0x020f},
		{"loadflags", uint64(h.Loadflags), LoadedHigh},
		{"xloadflags", uint64(h.XLoadflags), XLFKernel64 | XLFCanBeLoadedAbove4G},
		{"kernel_alignment", uint64(h.KernelAlignment), 0x200000},
		{"pref_address", h.PrefAddress, 0x1000000},
		{"init_size", uint64(h.InitSize), 0x100000},
		{"cmdline_size", uint64(h.CmdlineSize), 2047},
		{"initrd_addr_max", uint64(h.InitrdAddrMax), 0x7fffffff},
		{"payload_offset", uint64(h.PayloadOffset), testPMStub},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %#x, want %#x", c.name, c.got, c.want)
		}
	}
	if want := "6.1.0-ember-test (boot@ember) #1"; h.KernelVersion != want {
		t.Errorf("kernel version %q, want %q", h.KernelVersion, want)
	}
	if img.Compression != CompressionGzip {
		t.Errorf("compression %v, want gzip", img.Compression)
	}
	if !bytes.HasPrefix(img.Kernel, bytes.Repeat([]byte{0x90}, testPMStub)) {
		t.Error("protected-mode code does not start at (setup_sects+1)*512")
	}
}

func TestDecompressEachCompression(t *testing.T) {
	vm := testVmlinux()
	for _, c := range compressors {
		t.Run(c.name, func(t *testing.T) {
			stream, ok := c.fn(t, vm)
			if !ok {
				t.Skipf("%s: tool not installed", c.name)
			}
			// Through a whole bzImage, as LoadLinux sees it.
			img, err := ParseBzImage(buildBzImage(defaultBzOpts(withTrailer(stream, len(vm)))))
			if err != nil {
				t.Fatal(err)
			}
			if img.Compression != c.c {
				t.Fatalf("detected %v, want %v", img.Compression, c.c)
			}
			out, got, err := Decompress(img.Payload)
			if err != nil {
				t.Fatal(err)
			}
			if got != c.c || !bytes.Equal(out, vm) {
				t.Fatalf("decompressed %d bytes as %v, want the %d-byte vmlinux as %v", len(out), got, len(vm), c.c)
			}
			f, err := ParseELF(out)
			if err != nil || f.Entry != testEntry {
				t.Fatalf("ELF inside: %+v, %v", f, err)
			}
		})
	}
}

// A stream that decompresses to more than its trailer claims is stopped at
// the claim, not decoded to the end.
func TestDecompressCapsOutput(t *testing.T) {
	big := make([]byte, 32<<20)
	for _, c := range compressors {
		if strings.Contains(c.name, "(as") {
			continue // the pure-Go encoders suffice here
		}
		t.Run(c.name, func(t *testing.T) {
			stream, ok := c.fn(t, big)
			if !ok {
				t.Skipf("%s: tool not installed (.ci/run installs it)", c.name)
			}
			_, _, err := decompress(withTrailer(stream, 1000), 1<<20)
			if !errors.Is(err, ErrCorruptPayload) {
				t.Fatalf("err %v, want ErrCorruptPayload", err)
			}
		})
	}
}

func TestMemoryMap(t *testing.T) {
	const G = 1 << 30
	tests := []struct {
		name string
		size uint64
		want []E820Entry
	}{
		{"512 KiB: low RAM only", 512 << 10, []E820Entry{{0, 512 << 10, E820RAM}}},
		{"64 MiB", 64 << 20, []E820Entry{
			{0, 0x9fc00, E820RAM}, {0x9fc00, 0x100000 - 0x9fc00, E820Reserved}, {0x100000, 63 << 20, E820RAM}}},
		{"3 GiB: up to the MMIO hole", 3 * G, []E820Entry{
			{0, 0x9fc00, E820RAM}, {0x9fc00, 0x100000 - 0x9fc00, E820Reserved}, {0x100000, 3*G - 0x100000, E820RAM}}},
		{"5 GiB: 2 GiB moved above 4 GiB", 5 * G, []E820Entry{
			{0, 0x9fc00, E820RAM}, {0x9fc00, 0x100000 - 0x9fc00, E820Reserved}, {0x100000, 3*G - 0x100000, E820RAM},
			{4 * G, 2 * G, E820RAM}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := MemoryMap(tt.size)
			if len(got) != len(tt.want) {
				t.Fatalf("got %v, want %v", got, tt.want)
			}
			for i := range got {
				if got[i] != tt.want[i] {
					t.Errorf("entry %d: %+v, want %+v", i, got[i], tt.want[i])
				}
			}
		})
	}
}

// mutate returns a copy of b with f applied.
func mutate(b []byte, f func([]byte)) []byte {
	b = bytes.Clone(b)
	f(b)
	return b
}

func put16(off int, v uint16) func([]byte) {
	return func(b []byte) { binary.LittleEndian.PutUint16(b[off:], v) }
}

func put32(off int, v uint32) func([]byte) {
	return func(b []byte) { binary.LittleEndian.PutUint32(b[off:], v) }
}

func TestLoadLinuxErrors(t *testing.T) {
	vm := testVmlinux()
	good := testBzImage(t)
	bzWith := func(f func(*bzOpts)) []byte {
		o := defaultBzOpts(gzipPayload(t, vm))
		f(&o)
		return buildBzImage(o)
	}
	payloadAt := (testSetupSects+1)*512 + testPMStub
	elf32 := buildELF(false, 0x100000, []testSeg{{0x100000, []byte("32-bit kernel"), 0x1000}}, nil)
	tests := []struct {
		name string
		cfg  LinuxConfig
		ram  uint64
		want error
	}{
		{"corrupt boot_flag", LinuxConfig{Kernel: mutate(good, put16(offBootFlag, 0x1234))}, testRAM, ErrNotBzImage},
		{"corrupt HdrS magic", LinuxConfig{Kernel: mutate(good, put32(offHeader, 0x53726449))}, testRAM, ErrNotBzImage},
		{"no jump at 0x200", LinuxConfig{Kernel: mutate(good, func(b []byte) { b[offJump] = 0xe9 })}, testRAM, ErrNotBzImage},
		{"protocol 2.11 is too old", LinuxConfig{Kernel: bzWith(func(o *bzOpts) { o.version = 0x020b })}, testRAM, ErrBootProtocolTooOld},
		{"zImage (LOADED_HIGH clear)", LinuxConfig{Kernel: bzWith(func(o *bzOpts) { o.loadflags = 0 })}, testRAM, ErrNotBzImage},
		{"no XLF_KERNEL_64", LinuxConfig{Kernel: bzWith(func(o *bzOpts) { o.xloadflags = XLFCanBeLoadedAbove4G })}, testRAM, ErrNot64Bit},
		{"kernel_alignment not a power of two", LinuxConfig{Kernel: mutate(good, put32(offKernelAlignment, 0x300000))}, testRAM, ErrNotBzImage},
		{"init_size zero", LinuxConfig{Kernel: bzWith(func(o *bzOpts) { o.initSize = 0 })}, testRAM, ErrNotBzImage},
		{"truncated before the magic", LinuxConfig{Kernel: good[:0x203]}, testRAM, ErrTruncated},
		{"truncated setup header", LinuxConfig{Kernel: good[:0x240]}, testRAM, ErrTruncated},
		{"truncated setup code", LinuxConfig{Kernel: good[:0x600]}, testRAM, ErrTruncated},
		{"truncated protected-mode code", LinuxConfig{Kernel: good[:len(good)-40]}, testRAM, ErrTruncated},
		{"payload_length past the file", LinuxConfig{Kernel: mutate(good, put32(offPayloadLength, 1<<30))}, testRAM, ErrTruncated},
		{"unknown compression", LinuxConfig{Kernel: mutate(good, func(b []byte) { b[payloadAt] = 0x42; b[payloadAt+1] = 0x42 })}, testRAM, ErrUnknownCompression},
		{"corrupt gzip stream", LinuxConfig{Kernel: mutate(good, func(b []byte) {
			for i := payloadAt + 40; i < payloadAt+200; i++ {
				b[i] ^= 0x5a
			}
		})}, testRAM, ErrCorruptPayload},
		{"size trailer disagrees", LinuxConfig{Kernel: bzWith(func(o *bzOpts) {
			binary.LittleEndian.PutUint32(o.payload[len(o.payload)-4:], uint32(len(vm)+1))
		})}, testRAM, ErrCorruptPayload},
		{"payload claims more than RAM", LinuxConfig{Kernel: bzWith(func(o *bzOpts) {
			binary.LittleEndian.PutUint32(o.payload[len(o.payload)-4:], 1<<30)
		})}, testRAM, ErrKernelTooLarge},
		{"payload is a 32-bit kernel", LinuxConfig{Kernel: bzWith(func(o *bzOpts) { o.payload = gzipPayload(t, elf32) })}, testRAM, ErrNot64Bit},
		{"payload ELF with bad class", LinuxConfig{Kernel: bzWith(func(o *bzOpts) {
			o.payload = gzipPayload(t, mutate(vm, func(b []byte) { b[4] = 3 }))
		})}, testRAM, ErrNotELF},
		{"command line longer than cmdline_size", LinuxConfig{Kernel: good, Cmdline: strings.Repeat("x", 2048)}, testRAM, ErrCmdlineTooLong},
		{"command line longer than a small cmdline_size", LinuxConfig{Kernel: bzWith(func(o *bzOpts) { o.cmdlineSize = 8 }), Cmdline: "console=ttyS0"}, testRAM, ErrCmdlineTooLong},
		{"command line with NUL", LinuxConfig{Kernel: good, Cmdline: "a\x00b"}, testRAM, ErrBadCmdline},
		{"initrd larger than RAM", LinuxConfig{Kernel: good, Initrd: make([]byte, 48<<20)}, testRAM, ErrInitrdTooLarge},
		{"initrd above initrd_addr_max", LinuxConfig{Kernel: bzWith(func(o *bzOpts) {
			o.initrdAddrMax = 0x12fffff
			o.xloadflags = XLFKernel64
		}), Initrd: make([]byte, 4<<20)}, testRAM, ErrInitrdTooLarge},
		{"kernel does not fit in RAM", LinuxConfig{Kernel: good}, 16 << 20, ErrOutOfRange},
		{"plain path: init_size beyond RAM", LinuxConfig{Kernel: bzWith(func(o *bzOpts) { o.initSize = 0x8000000 }), Mode: ModeBzImage}, testRAM, ErrOutOfRange},
		{"vmlinux with bad ELF magic", LinuxConfig{Kernel: mutate(vm, func(b []byte) { b[3] = 'G' })}, testRAM, ErrNotBzImage},
		{"vmlinux for another machine", LinuxConfig{Kernel: mutate(vm, put16(18, 183))}, testRAM, ErrNotELF},
		{"vmlinux with truncated program headers", LinuxConfig{Kernel: vm[:ehdr64Size+10]}, testRAM, ErrTruncated},
		{"vmlinux with truncated segment", LinuxConfig{Kernel: vm[:0x200]}, testRAM, ErrTruncated},
		{"vmlinux with p_filesz > p_memsz", LinuxConfig{Kernel: mutate(vm, func(b []byte) {
			binary.LittleEndian.PutUint64(b[ehdr64Size+40:], 16)
		})}, testRAM, ErrCorruptELF},
		{"vmlinux segment outside memory", LinuxConfig{Kernel: buildELF(true, 0x40000000,
			[]testSeg{{0x40000000, []byte("far away"), 0x1000}}, nil)}, testRAM, ErrOutOfRange},
		{"vmlinux segment below 1 MiB", LinuxConfig{Kernel: buildELF(true, 0x8000,
			[]testSeg{{0x8000, []byte("over the boot data"), 0x1000}}, nil)}, testRAM, ErrOverlap},
		{"32-bit vmlinux by the 64-bit protocol", LinuxConfig{Kernel: elf32}, testRAM, ErrNot64Bit},
		{"PVH without the note", LinuxConfig{Kernel: buildELF(true, testEntry,
			[]testSeg{{testEntry, []byte("no note"), 0x1000}}, nil), Mode: ModePVH}, testRAM, ErrNoPVHNote},
		{"PVH note of 3 bytes", LinuxConfig{Kernel: buildELF(true, testEntry,
			[]testSeg{{testEntry, []byte("bad note"), 0x1000}}, mutate(pvhNote(1), put32(24, 3))), Mode: ModePVH}, testRAM, ErrCorruptELF},
		{"plain bzImage mode with a vmlinux", LinuxConfig{Kernel: vm, Mode: ModeBzImage}, testRAM, ErrBadMode},
		{"unknown mode", LinuxConfig{Kernel: good, Mode: Mode(9)}, testRAM, ErrBadMode},
		{"memory map with too many entries", LinuxConfig{Kernel: good, E820: make([]E820Entry, 129)}, testRAM, ErrBadMemoryMap},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mem := newMem(tt.ram)
			e, err := LoadLinux(mem, tt.cfg)
			if !errors.Is(err, tt.want) {
				t.Fatalf("LoadLinux = %v, %v; want %v", e, err, tt.want)
			}
			if n := len(mem.pages); n != 0 {
				t.Errorf("%d pages written before the error", n)
			}
		})
	}
}

func TestRangeErrorIsErrOutOfRange(t *testing.T) {
	_, err := LoadLinux(newMem(16<<20), LinuxConfig{Kernel: testBzImage(t)})
	var re *RangeError
	if !errors.As(err, &re) || re.What != "kernel" || re.Addr != testEntry {
		t.Fatalf("err %v, want a RangeError for the kernel at %#x", err, testEntry)
	}
}

// loadOK runs LoadLinux and fails the test on error.
func loadOK(t *testing.T, mem *fakeMem, cfg LinuxConfig) *Entry {
	t.Helper()
	e, err := LoadLinux(mem, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Log(e)
	return e
}

func TestZeroPageForHostDecompressedBzImage(t *testing.T) {
	mem := newMem(testRAM)
	// Garbage where the bss goes: the loader must clear it.
	mem.WriteAt(bytes.Repeat([]byte{0xcc}, testMemsz), testEntry)
	initrd := bytes.Repeat([]byte("initrd"), 200000)
	const cmdline = "console=ttyS0 root=/dev/vda"
	e := loadOK(t, mem, LinuxConfig{Kernel: testBzImage(t), Initrd: initrd, Cmdline: cmdline})

	if e.Mode != LongMode || e.RIP != testEntry || e.RSI != layout.ZeroPage || e.Compression != CompressionGzip {
		t.Errorf("entry %v, want long mode at %#x with RSI %#x", e, testEntry, layout.ZeroPage)
	}
	text := mem.read(testEntry, testMemsz)
	if !bytes.HasPrefix(text, []byte("startup_64")) || !bytes.Equal(text[testTextSize:], make([]byte, testMemsz-testTextSize)) {
		t.Error("kernel segment not loaded at p_paddr with its bss cleared")
	}
	wantInitrd := uint64(testRAM-len(initrd)) &^ 0xfff
	if e.Initrd != wantInitrd || e.Initrd%pageSize != 0 {
		t.Errorf("initrd at %#x, want %#x (top of RAM, page aligned)", e.Initrd, wantInitrd)
	}
	if !bytes.Equal(mem.read(e.Initrd, uint64(len(initrd))), initrd) {
		t.Error("initrd contents")
	}
	if got := mem.read(layout.Cmdline, uint64(len(cmdline)+1)); string(got) != cmdline+"\x00" {
		t.Errorf("command line %q", got)
	}
	checkZeroPage(t, mem, e, MemoryMap(testRAM), 0x020f)
}

// checkZeroPage checks the fields of boot_params the loader writes.
func checkZeroPage(t *testing.T, mem *fakeMem, e *Entry, ram []E820Entry, version uint16) {
	t.Helper()
	zp := mem.read(layout.ZeroPage, zeroPageSize)
	le := binary.LittleEndian
	u16 := func(o int) uint64 { return uint64(le.Uint16(zp[o:])) }
	u32 := func(o int) uint64 { return uint64(le.Uint32(zp[o:])) }
	checks := []struct {
		name      string
		got, want uint64
	}{
		{"boot_flag", u16(offBootFlag), bootFlagMagic},
		{"header", u32(offHeader), hdrSMagic},
		{"version", u16(offVersion), uint64(version)},
		{"type_of_loader", uint64(zp[offTypeOfLoader]), 0xff},
		{"loadflags LOADED_HIGH|CAN_USE_HEAP", uint64(zp[offLoadflags] & (LoadedHigh | CanUseHeap)), LoadedHigh | CanUseHeap},
		{"heap_end_ptr", u16(offHeapEndPtr), 0xde00},
		{"cmd_line_ptr", u32(offCmdLinePtr), layout.Cmdline},
		{"ext_cmd_line_ptr", u32(offExtCmdLinePtr), 0},
		{"ramdisk_image", u32(offRamdiskImage), e.Initrd & 0xffffffff},
		{"ramdisk_size", u32(offRamdiskSize), e.InitrdSize & 0xffffffff},
		{"ext_ramdisk_image", u32(offExtRamdiskImage), e.Initrd >> 32},
		{"ext_ramdisk_size", u32(offExtRamdiskSize), e.InitrdSize >> 32},
		{"e820_entries", uint64(zp[offE820Entries]), uint64(len(ram))},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("boot_params %s = %#x, want %#x", c.name, c.got, c.want)
		}
	}
	for i, r := range ram {
		o := offE820Table + i*e820EntrySize
		got := E820Entry{le.Uint64(zp[o:]), le.Uint64(zp[o+8:]), le.Uint32(zp[o+16:])}
		if got != r {
			t.Errorf("e820 entry %d = %+v, want %+v", i, got, r)
		}
	}
}

func TestPlainBzImagePath(t *testing.T) {
	mem := newMem(testRAM)
	bz := testBzImage(t)
	e := loadOK(t, mem, LinuxConfig{Kernel: bz, Mode: ModeBzImage, Cmdline: "quiet"})
	img, _ := ParseBzImage(bz)
	if e.Mode != LongMode || e.RIP != layout.BzImageLoad+0x200 || e.RSI != layout.ZeroPage {
		t.Errorf("entry %v, want 64-bit entry at load address + 0x200", e)
	}
	if e.KernelEnd != 0x1000000+0x100000 {
		t.Errorf("kernel end %#x, want pref_address + init_size", e.KernelEnd)
	}
	if !bytes.Equal(mem.read(layout.BzImageLoad, uint64(len(img.Kernel))), img.Kernel) {
		t.Error("protected-mode code not at 0x100000")
	}
	zp := mem.read(layout.ZeroPage, zeroPageSize)
	if got := binary.LittleEndian.Uint32(zp[offCode32Start:]); got != layout.BzImageLoad {
		t.Errorf("code32_start %#x", got)
	}
	checkZeroPage(t, mem, e, MemoryMap(testRAM), 0x020f)
}

func TestInitrdAbove4G(t *testing.T) {
	const G = 1 << 30
	ram := []E820Entry{{0, 0x9fc00, E820RAM}, {0x100000, 31 << 20, E820RAM}, {4 * G, 64 << 20, E820RAM}}
	initrd := make([]byte, 40<<20)
	initrd[0], initrd[len(initrd)-1] = 1, 2
	mem := newMem(3*G + 64<<20)
	e := loadOK(t, mem, LinuxConfig{Kernel: testBzImage(t), Initrd: initrd, E820: ram})
	if want := uint64(4*G + 24<<20); e.Initrd != want {
		t.Fatalf("initrd at %#x, want %#x", e.Initrd, want)
	}
	checkZeroPage(t, mem, e, ram, 0x020f)

	// Without XLF_CAN_BE_LOADED_ABOVE_4G it does not fit.
	o := defaultBzOpts(gzipPayload(t, testVmlinux()))
	o.xloadflags = XLFKernel64
	_, err := LoadLinux(newMem(3*G+64<<20), LinuxConfig{Kernel: buildBzImage(o), Initrd: initrd, E820: ram})
	if !errors.Is(err, ErrInitrdTooLarge) {
		t.Fatalf("err %v, want ErrInitrdTooLarge", err)
	}
}

func TestInitrdRespectsInitrdAddrMax(t *testing.T) {
	o := defaultBzOpts(gzipPayload(t, testVmlinux()))
	o.initrdAddrMax = 0x1ffffff // 32 MiB - 1
	e := loadOK(t, newMem(testRAM), LinuxConfig{Kernel: buildBzImage(o), Initrd: make([]byte, 1<<20+1)})
	if end := e.Initrd + e.InitrdSize - 1; end > 0x1ffffff || e.Initrd != 0x1eff000 {
		t.Fatalf("initrd %#x-%#x, want it to end at or below initrd_addr_max", e.Initrd, end)
	}
}

func TestPVHEntry(t *testing.T) {
	for _, kernel := range []struct {
		name string
		data []byte
	}{{"bzImage", testBzImage(t)}, {"vmlinux", testVmlinux()}} {
		t.Run(kernel.name, func(t *testing.T) {
			mem := newMem(testRAM)
			initrd := []byte("initramfs")
			e := loadOK(t, mem, LinuxConfig{Kernel: kernel.data, Mode: ModePVH, Initrd: initrd, Cmdline: "pvh"})
			if e.Mode != ProtectedMode || e.RIP != testPVHEntry || e.RBX != layout.PVHStartInfo || e.ZeroPage != 0 {
				t.Fatalf("entry %v, want 32-bit protected mode at the PVH note's %#x with RBX %#x", e, testPVHEntry, layout.PVHStartInfo)
			}
			le := binary.LittleEndian
			si := mem.read(layout.PVHStartInfo, hvmStartInfoSize)
			ram := MemoryMap(testRAM)
			checks := []struct {
				name      string
				got, want uint64
			}{
				{"magic", uint64(le.Uint32(si)), 0x336ec578},
				{"version", uint64(le.Uint32(si[4:])), 1},
				{"nr_modules", uint64(le.Uint32(si[12:])), 1},
				{"modlist_paddr", le.Uint64(si[16:]), layout.PVHModlist},
				{"cmdline_paddr", le.Uint64(si[24:]), layout.Cmdline},
				{"memmap_paddr", le.Uint64(si[40:]), layout.PVHMemmap},
				{"memmap_entries", uint64(le.Uint32(si[48:])), uint64(len(ram))},
			}
			for _, c := range checks {
				if c.got != c.want {
					t.Errorf("hvm_start_info %s = %#x, want %#x", c.name, c.got, c.want)
				}
			}
			mod := mem.read(layout.PVHModlist, hvmModlistSize)
			if le.Uint64(mod) != e.Initrd || le.Uint64(mod[8:]) != uint64(len(initrd)) {
				t.Errorf("module list %x, want initrd at %#x", mod, e.Initrd)
			}
			mm := mem.read(layout.PVHMemmap, uint64(len(ram)*hvmMemmapEntrySize))
			for i, r := range ram {
				o := i * hvmMemmapEntrySize
				got := E820Entry{le.Uint64(mm[o:]), le.Uint64(mm[o+8:]), le.Uint32(mm[o+16:])}
				if got != r {
					t.Errorf("memmap %d = %+v, want %+v", i, got, r)
				}
			}
		})
	}
}

func TestVmlinuxBy64BitProtocol(t *testing.T) {
	mem := newMem(testRAM)
	e := loadOK(t, mem, LinuxConfig{Kernel: testVmlinux(), Cmdline: "console=ttyS0"})
	if e.Mode != LongMode || e.RIP != testEntry || e.Protocol != 0 {
		t.Fatalf("entry %v", e)
	}
	zp := mem.read(layout.ZeroPage, zeroPageSize)
	if binary.LittleEndian.Uint32(zp[offCmdlineSize:]) != defaultCmdlineSize {
		t.Error("synthetic setup header lacks cmdline_size")
	}
	checkZeroPage(t, mem, e, MemoryMap(testRAM), 0)
}

func TestLoadELFTestGuests(t *testing.T) {
	tests := []struct {
		name string
		elf  []byte
		mode CPUMode
	}{
		{"ELF64 enters long mode", buildELF(true, 0x2000, []testSeg{{0x2000, []byte("\xeb\xfe"), 0x10}}, nil), LongMode},
		{"ELF32 enters protected mode", buildELF(false, 0x10000, []testSeg{{0x10000, []byte("\xeb\xfe"), 0x2000}}, nil), ProtectedMode},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mem := newMem(1 << 20)
			e, err := LoadELF(mem, tt.elf)
			if err != nil {
				t.Fatal(err)
			}
			f, _ := ParseELF(tt.elf)
			if e.Mode != tt.mode || e.RIP != f.Entry || !bytes.Equal(mem.read(f.Entry, 2), []byte("\xeb\xfe")) {
				t.Fatalf("entry %v", e)
			}
		})
	}
	_, err := LoadELF(newMem(1<<20), buildELF(true, 0x200000, []testSeg{{0x200000, []byte{1}, 1}}, nil))
	if !errors.Is(err, ErrOutOfRange) {
		t.Fatalf("segment past the end of memory: %v", err)
	}
}

func TestLoadFlat(t *testing.T) {
	tests := []struct {
		name string
		addr uint64
		size int
		want error
	}{
		{"boot sector at 0x7c00", 0x7c00, 512, nil},
		{"64 KiB ROM below 1 MiB", 0xf0000, 0x10000, nil},
		{"unaligned", 0x7c01, 512, ErrBadAddress},
		{"crosses 1 MiB", 0xfff00, 0x200, ErrBadAddress},
		{"empty", 0x1000, 0, ErrTruncated},
		{"beyond a small memory", 0x80000, 0x100, ErrOutOfRange},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mem := newMem(1 << 20)
			if tt.name == "beyond a small memory" {
				mem = newMem(0x80000)
			}
			img := bytes.Repeat([]byte{0xf4}, tt.size)
			e, err := LoadFlat(mem, img, tt.addr)
			if !errors.Is(err, tt.want) {
				t.Fatalf("err %v, want %v", err, tt.want)
			}
			if err == nil && (e.Mode != RealMode || e.CS != uint16(tt.addr>>4) || e.RIP != 0 ||
				!bytes.Equal(mem.read(tt.addr, uint64(tt.size)), img)) {
				t.Fatalf("entry %v", e)
			}
		})
	}
}

// TestRealKernel parses a distribution kernel if one was put at
// /tmp/vmlinuz (booting it is the vmm package's test).
func TestRealKernel(t *testing.T) {
	data, err := os.ReadFile("/tmp/vmlinuz")
	if err != nil {
		t.Skipf("no kernel at /tmp/vmlinuz: %v", err)
	}
	img, err := ParseBzImage(data)
	if err != nil {
		t.Fatal(err)
	}
	h := img.Header
	t.Logf("%q: protocol %d.%02d, %v payload of %d bytes, pref_address %#x, init_size %#x, cmdline_size %d, initrd_addr_max %#x, xloadflags %#x",
		h.KernelVersion, h.Version>>8, h.Version&0xff, img.Compression, len(img.Payload),
		h.PrefAddress, h.InitSize, h.CmdlineSize, h.InitrdAddrMax, h.XLoadflags)
	vm, _, err := Decompress(img.Payload)
	if err != nil {
		t.Fatal(err)
	}
	f, err := ParseELF(vm)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("vmlinux: %d bytes, entry %#x, %d segments, PVH note %v (%#x)", len(vm), f.Entry, len(f.Segments), f.HasPVH, f.PVHEntry)
	e, err := LoadLinux(newMem(1<<30), LinuxConfig{Kernel: data, Cmdline: "console=ttyS0", Initrd: make([]byte, 1<<20)})
	if err != nil {
		t.Fatal(err)
	}
	t.Log(e)
}

// The test LZO1X encoder must really emit matches, or the lzop rows above
// would only cover stored blocks.
func TestLZOMatchesDecode(t *testing.T) {
	data := bytes.Repeat([]byte("ember boots linux; "), 20000)
	blk := lzo1xCompress(data[:lzoBlockMax])
	if len(blk) >= lzoBlockMax/4 {
		t.Fatalf("test encoder made %d bytes of %d: no matches", len(blk), lzoBlockMax)
	}
	out, err := unlzop(lzopCompress(data), 1<<20)
	if err != nil || !bytes.Equal(out, data) {
		t.Fatalf("unlzop: %d bytes, %v", len(out), err)
	}
}
