package multiboot

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"ember/boot"
	"ember/guest"
	"ember/hv"
	"ember/internal/kvmtest"
)

// TestMultibootGuestReportsItsBootInformation boots the multiboot test
// guest, as it is (an a.out-kludge kernel) and wrapped in an ELF32, with a
// command line and two modules on a VM whose RAM starts dirty, and checks
// what the guest prints of its multiboot information: the boot magic in EAX,
// the information's flags, memory bounds, command line, boot loader name,
// each module's range, first bytes and string, every memory map entry, and a
// bss the loader cleared.
func TestMultibootGuestReportsItsBootInformation(t *testing.T) {
	kvmtest.Require(t)
	h, err := hv.Open()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	cfg := Config{
		Cmdline: "/boot/multiboot.bin console=e9 answer=42",
		Modules: []Module{
			{Data: []byte("ABCD: the first module"), Cmdline: "/boot/one.mod first"},
			{Data: bytes.Repeat([]byte("wxyz"), 0x900), Cmdline: "second module, 9 KiB"},
		},
	}
	for _, tt := range []struct {
		name   string
		kernel []byte
	}{
		{"a.out kludge", guest.Multiboot.Code},
		{"ELF32", asELF32(t, guest.Multiboot.Code)},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var console bytes.Buffer
			vm, err := h.NewVM(hv.Config{MemorySize: 16 << 20, Console: &console})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { vm.Close() })
			fill(vm.Memory()) // so that the guest's bss starts dirty
			b, err := Load(vm.Memory(), tt.kernel, cfg)
			if err != nil {
				t.Fatal(err)
			}
			if err := vm.SetEntry(0, b.Entry); err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			res, err := vm.Run(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if res.Reason != hv.StopExit || res.Status != 0 {
				t.Errorf("result %v, want exit 0; console:\n%s", res, console.String())
			}
			t.Logf("the guest printed:\n%s", console.String())
			if want := report(b, cfg, memoryMap(vm.Memory())); console.String() != want {
				t.Errorf("the guest printed\n%s\nwant\n%s", console.String(), want)
			}
		})
	}
}

// report is what the multiboot guest prints for b, cfg and the memory map
// (guest/src/multiboot.S).
func report(b *Boot, cfg Config, ram []boot.E820Entry) string {
	var s strings.Builder
	lower, upper := memoryBounds(ram)
	fmt.Fprintf(&s, "magic=%08x flags=%08x\n", BootMagic, infoHasMemory|infoHasCmdline|infoHasMods|infoHasMmap|infoHasLoader)
	fmt.Fprintf(&s, "mem_lower=%08x mem_upper=%08x\n", lower, upper)
	fmt.Fprintf(&s, "cmdline=%s\nloader=%s\nmods=%08x\n", cfg.Cmdline, LoaderName, len(cfg.Modules))
	for i, m := range cfg.Modules {
		r := b.Modules[i]
		fmt.Fprintf(&s, "mod=%08x-%08x first=%08x string=%s\n", r.GPA, r.End(), le.Uint32(m.Data), m.Cmdline)
	}
	for _, e := range ram {
		fmt.Fprintf(&s, "mmap=%016x+%016x type=%08x\n", e.Addr, e.Size, e.Type)
	}
	s.WriteString("bss=00000000\n")
	return s.String()
}

// asELF32 turns an a.out-kludge kernel into the same kernel as an ELF32
// executable: its header without the address fields' flag (and the checksum
// to match), one PT_LOAD segment where the fields said, the bss included.
func asELF32(t *testing.T, aout []byte) []byte {
	t.Helper()
	img, err := Parse(aout)
	if err != nil {
		t.Fatal(err)
	}
	h := img.Header
	if h.Offset != 0 || h.LoadAddr != h.HeaderAddr || h.LoadEndAddr != h.LoadAddr+uint32(len(aout)) {
		t.Fatalf("header %+v: want the whole file loaded from its first byte, the header", h)
	}
	flags := h.Flags &^ FlagAddresses
	code := mutate(aout, put32(4, flags), put32(8, checksum(flags)))
	return elf32(h.EntryAddr, nil, seg{paddr: h.LoadAddr, data: code, memsz: h.BSSEndAddr - h.LoadAddr})
}
