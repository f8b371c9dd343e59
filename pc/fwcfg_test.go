package pc

import (
	"bytes"
	"encoding/binary"
	"log/slog"
	"strings"
	"testing"

	"ember/devices/fwcfg"
	"ember/memory"
)

var quiet = slog.New(slog.DiscardHandler)

// fwcfgRead selects key and reads n bytes through the data register.
func fwcfgRead(f *fwcfg.FWCfg, key uint16, n int) []byte {
	f.Write(0, binary.LittleEndian.AppendUint16(nil, key))
	b := make([]byte, n)
	f.Read(1, b)
	return b
}

// fwcfgU32 reads a u32 item.
func fwcfgU32(f *fwcfg.FWCfg, key uint16) uint32 {
	return binary.LittleEndian.Uint32(fwcfgRead(f, key, 4))
}

// fwcfgFiles reads the file directory: each file's size by name.
func fwcfgFiles(f *fwcfg.FWCfg) map[string]uint32 {
	n := binary.BigEndian.Uint32(fwcfgRead(f, fwcfg.KeyFileDir, 4))
	dir := fwcfgRead(f, fwcfg.KeyFileDir, 4+64*int(n))[4:]
	files := map[string]uint32{}
	for i := range int(n) {
		e := dir[64*i:]
		files[string(bytes.TrimRight(e[8:64], "\x00"))] = binary.BigEndian.Uint32(e)
	}
	return files
}

func newTestMemory(t *testing.T, size uint64) *memory.Guest {
	t.Helper()
	mem, err := memory.New(memory.PCLayout(size))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { mem.Close() })
	return mem
}

// TestFWCfgMachineItems: what firmware reads of a 2-vCPU, 64 MiB PC
// machine, as QEMU's PC machine has it.
func TestFWCfgMachineItems(t *testing.T) {
	f, err := newFWCfg(newTestMemory(t, 64<<20), 2, nil, quiet)
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name string
		key  uint16
		want []byte
	}{
		{"signature", fwcfg.KeySignature, []byte("QEMU")},
		{"ID: ports and DMA", fwcfg.KeyID, []byte{3, 0, 0, 0}},
		{"RAM size", fwcfg.KeyRAMSize, binary.LittleEndian.AppendUint64(nil, 64<<20)},
		{"CPUs", fwcfg.KeyNBCPUs, []byte{2, 0}},
		{"max CPUs", fwcfg.KeyMaxCPUs, []byte{2, 0}},
		{"UUID: zero", fwcfg.KeyUUID, make([]byte, 16)},
		{"no display", fwcfg.KeyNoGraphic, []byte{1, 0}},
		{"no boot menu", fwcfg.KeyBootMenu, []byte{0, 0, 0}},
		{"no kernel", fwcfg.KeyKernelSize, []byte{0, 0, 0, 0}},
		{"no command line", fwcfg.KeyCmdlineSize, []byte{0, 0, 0, 0}},
	} {
		if got := fwcfgRead(f, tt.key, len(tt.want)); !bytes.Equal(got, tt.want) {
			t.Errorf("%s: % x, want % x", tt.name, got, tt.want)
		}
	}
	files := fwcfgFiles(f)
	for name, size := range map[string]uint32{"bootorder": 0, "etc/boot-fail-wait": 4, "etc/e820": 3 * 20} {
		if got, ok := files[name]; !ok || got != size {
			t.Errorf("file %q: %d bytes (listed: %v), want %d", name, got, ok, size)
		}
	}
}

// bzImage builds a kernel image with a setup header: setupSects sectors of
// setup after the boot sector, then prot bytes of protected-mode code.
func bzImage(protocol uint16, loadflags uint8, setupSects uint8, prot int) []byte {
	sects := int(setupSects)
	if sects == 0 {
		sects = 4
	}
	img := make([]byte, (sects+1)*512+prot)
	le := binary.LittleEndian
	img[hdrSetupSects] = setupSects
	le.PutUint32(img[hdrMagic:], hdrSMagic)
	le.PutUint16(img[hdrVersion:], protocol)
	img[hdrLoadflags] = loadflags
	le.PutUint32(img[hdrInitrdAddrMax:], 0x7fffffff)
	for i := (sects + 1) * 512; i < len(img); i++ {
		img[i] = byte(i)
	}
	return img
}

// TestFWCfgKernel: how a kernel is split and described for firmware, as
// QEMU does it, for each kind of kernel a PC loader meets.
func TestFWCfgKernel(t *testing.T) {
	const below4G = 64 << 20
	modern := bzImage(0x020f, loadedHigh, 30, 1000)
	binary.LittleEndian.PutUint16(modern[hdrXLoadflags:], xlfCanBeLoadedAbove4G)
	capped := bzImage(0x0203, loadedHigh, 4, 100)
	binary.LittleEndian.PutUint32(capped[hdrInitrdAddrMax:], 0x1000000-1)
	initrd := bytes.Repeat([]byte{0x1d}, 5000)
	type want struct {
		realAddr, cmdlineAddr, protAddr, setupSize uint32
		initrdAddr                                 uint32 // 0: no initrd
		heapEnd                                    uint16
		oldCmdline                                 bool // cl_magic/cl_offset rather than cmd_line_ptr
		vidMode                                    uint16
	}
	for _, tt := range []struct {
		name string
		k    FWCfgKernel
		want want
	}{
		{"bzImage, protocol 2.15: setup at 0x10000, initrd at the top of low RAM",
			FWCfgKernel{modern, initrd, "console=ttyS0"},
			want{0x10000, 0x20000, 0x100000, 31 * 512, (below4G - fwcfgACPIDataSize - 1 - 5000) &^ 0xfff, 0xfe00, false, 0}},
		{"initrd_addr_max caps the initrd",
			FWCfgKernel{capped, initrd, ""},
			want{0x10000, 0x20000, 0x100000, 5 * 512, (0x1000000 - 1 - 5000) &^ 0xfff, 0xfe00, false, 0}},
		{"setup_sects 0 means 4",
			FWCfgKernel{bzImage(0x020f, loadedHigh, 0, 64), nil, "quiet"},
			want{0x10000, 0x20000, 0x100000, 5 * 512, 0, 0xfe00, false, 0}},
		{"protocol 2.01: low setup, the command line below 0x9a000",
			FWCfgKernel{bzImage(0x0201, loadedHigh, 4, 64), nil, "root=/dev/sda"},
			want{0x90000, 0x9a000 - 16, 0x100000, 5 * 512, 0, 0xa000 - 16 - 0x200, true, 0}},
		{"zImage: protected-mode part at 0x10000",
			FWCfgKernel{bzImage(0x0204, 0, 4, 64), nil, strings.Repeat("x", 16)},
			want{0x90000, 0x9a000 - 32, 0x10000, 5 * 512, 0, 0xa000 - 32 - 0x200, false, 0}},
		{"vga=ask",
			FWCfgKernel{bzImage(0x020f, loadedHigh, 4, 64), nil, "console=ttyS0 vga=ask"},
			want{0x10000, 0x20000, 0x100000, 5 * 512, 0, 0xfe00, false, 0xfffd}},
		{"vga=0x317",
			FWCfgKernel{bzImage(0x020f, loadedHigh, 4, 64), nil, "vga=0x317 quiet"},
			want{0x10000, 0x20000, 0x100000, 5 * 512, 0, 0xfe00, false, 0x317}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f := fwcfg.New(fwcfg.Config{Logger: quiet})
			orig := bytes.Clone(tt.k.Kernel)
			if err := addFWCfgKernel(f, tt.k, below4G); err != nil {
				t.Fatal(err)
			}
			w := tt.want
			le := binary.LittleEndian
			for _, item := range []struct {
				name string
				key  uint16
				want uint32
			}{
				{"setup address", fwcfg.KeySetupAddr, w.realAddr},
				{"setup size", fwcfg.KeySetupSize, w.setupSize},
				{"kernel address", fwcfg.KeyKernelAddr, w.protAddr},
				{"kernel size", fwcfg.KeyKernelSize, uint32(len(tt.k.Kernel)) - w.setupSize},
				{"command line address", fwcfg.KeyCmdlineAddr, w.cmdlineAddr},
				{"command line size", fwcfg.KeyCmdlineSize, uint32(len(tt.k.Cmdline) + 1)},
				{"initrd address", fwcfg.KeyInitrdAddr, w.initrdAddr},
				{"initrd size", fwcfg.KeyInitrdSize, uint32(len(tt.k.Initrd))},
			} {
				if got := fwcfgU32(f, item.key); got != item.want {
					t.Errorf("%s: %#x, want %#x", item.name, got, item.want)
				}
			}
			if got := fwcfgRead(f, fwcfg.KeyCmdlineData, len(tt.k.Cmdline)+2); string(got) != tt.k.Cmdline+"\x00\x00" {
				t.Errorf("command line %q", got)
			}
			rest := tt.k.Kernel[w.setupSize:]
			if got := fwcfgRead(f, fwcfg.KeyKernelData, len(rest)+1); !bytes.Equal(got, append(rest[:len(rest):len(rest)], 0)) {
				t.Error("kernel data is not the image after its setup")
			}
			if got := fwcfgRead(f, fwcfg.KeyInitrdData, len(tt.k.Initrd)); !bytes.Equal(got, tt.k.Initrd) {
				t.Error("initrd data differs")
			}
			setup := fwcfgRead(f, fwcfg.KeySetupData, int(w.setupSize)+1)
			if setup[w.setupSize] != 0 {
				t.Errorf("setup data runs past %d bytes", w.setupSize)
			}
			// The setup header as a boot loader leaves it; the rest as in
			// the image.
			want := bytes.Clone(tt.k.Kernel[:w.setupSize])
			want[hdrTypeOfLoader] = loaderUnassigned
			want[hdrLoadflags] |= canUseHeap
			le.PutUint16(want[hdrHeapEndPtr:], w.heapEnd)
			if w.oldCmdline {
				le.PutUint16(want[hdrOldCmdlineMagic:], oldCmdlineMagic)
				le.PutUint16(want[hdrOldCmdlineOffset:], uint16(w.cmdlineAddr-w.realAddr))
			} else {
				le.PutUint32(want[hdrCmdLinePtr:], w.cmdlineAddr)
			}
			if w.initrdAddr != 0 {
				le.PutUint32(want[hdrRamdiskImage:], w.initrdAddr)
				le.PutUint32(want[hdrRamdiskSize:], uint32(len(tt.k.Initrd)))
			}
			if w.vidMode != 0 {
				le.PutUint16(want[hdrVidMode:], w.vidMode)
			}
			if !bytes.Equal(setup[:w.setupSize], want) {
				for i := range want {
					if setup[i] != want[i] {
						t.Errorf("setup byte %#x is %#x, want %#x", i, setup[i], want[i])
					}
				}
			}
			if !bytes.Equal(tt.k.Kernel, orig) {
				t.Error("the caller's kernel image was changed")
			}
		})
	}
}

// TestFWCfgKernelRefusals: what cannot be handed to firmware, and why.
func TestFWCfgKernelRefusals(t *testing.T) {
	big := bzImage(0x020f, loadedHigh, 4, 64)
	for _, tt := range []struct {
		name    string
		k       FWCfgKernel
		below4G uint64
		want    string
	}{
		{"no setup header", FWCfgKernel{Kernel: make([]byte, 4096)}, 64 << 20, "HdrS"},
		{"too small", FWCfgKernel{Kernel: []byte("MZ")}, 64 << 20, "too small"},
		{"setup past the image", FWCfgKernel{Kernel: bzImage(0x020f, loadedHigh, 4, 0)[:2000]}, 64 << 20, "setup of 2560 bytes"},
		{"initrd too large for RAM", FWCfgKernel{Kernel: big, Initrd: make([]byte, 2<<20)}, 2 << 20, "initrd of"},
		{"no RAM for an initrd at all", FWCfgKernel{Kernel: big, Initrd: []byte{1}}, 0x20000, "initrd of"},
		{"initrd with protocol 1.x", FWCfgKernel{Kernel: bzImage(0x0100, 0, 4, 64), Initrd: []byte{1}}, 64 << 20, "too old"},
		{"NUL in the command line", FWCfgKernel{Kernel: big, Cmdline: "a\x00b"}, 64 << 20, "NUL"},
		{"bad vga=", FWCfgKernel{Kernel: big, Cmdline: "vga=large"}, 64 << 20, "vga="},
		{"an old kernel's command line that does not fit", FWCfgKernel{Kernel: bzImage(0x0201, loadedHigh, 4, 64), Cmdline: strings.Repeat("x", 40000)}, 64 << 20, "does not fit"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			err := addFWCfgKernel(fwcfg.New(fwcfg.Config{Logger: quiet}), tt.k, tt.below4G)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %v, want one saying %q", err, tt.want)
			}
		})
	}
}
