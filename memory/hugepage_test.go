package memory

import (
	"bufio"
	"fmt"
	"os"
	"strings"
	"testing"
	"unsafe"
)

// Guest RAM lies at host addresses congruent to its guest-physical ones
// modulo 2 MiB, so an aligned 2 MiB block of the guest can be one huge page
// of the host, for private and memfd-backed RAM alike.
func TestRAMIsHugePageAligned(t *testing.T) {
	ranges := []Range{{GPA: 0, Size: 6 << 20}, {GPA: 0x100000000 + 0x3000, Size: 3 << 20}}
	for _, shared := range []bool{false, true} {
		g, err := newGuest(ranges, shared)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range g.list() {
			host := uintptr(unsafe.Pointer(unsafe.SliceData(r.Host)))
			if host%HugePageSize != uintptr(r.GPA)%HugePageSize {
				t.Errorf("shared %v: GPA %#x at host %#x: not congruent modulo 2 MiB", shared, r.GPA, host)
			}
			if uint64(len(r.Host)) != r.Size {
				t.Errorf("shared %v: GPA %#x: %d bytes mapped, want %d", shared, r.GPA, len(r.Host), r.Size)
			}
			r.Host[0], r.Host[len(r.Host)-1] = 1, 2 // both ends are mapped
		}
		if err := g.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

// Private guest RAM is marked for transparent huge pages: with the kernel's
// "madvise" mode, the default on Debian, nothing else gets them.
func TestPrivateRAMAsksForHugePages(t *testing.T) {
	mode, err := os.ReadFile("/sys/kernel/mm/transparent_hugepage/enabled")
	if err != nil || strings.Contains(string(mode), "[never]") {
		t.Skipf("this kernel gives no transparent huge pages (%q, %v): nothing to ask for", strings.TrimSpace(string(mode)), err)
	}
	g, err := New([]Range{{GPA: 0, Size: 8 << 20}})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	host := uintptr(unsafe.Pointer(unsafe.SliceData(g.list()[0].Host)))
	flags, err := smapsField(host, "VmFlags")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(" "+flags+" ", " hg ") {
		t.Errorf("VmFlags of guest RAM: %q; want hg (MADV_HUGEPAGE)", flags)
	}
}

// smapsField is field of the mapping that starts at addr in /proc/self/smaps.
func smapsField(addr uintptr, field string) (string, error) {
	f, err := os.Open("/proc/self/smaps")
	if err != nil {
		return "", err
	}
	defer f.Close()
	in := false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if lo, _, ok := strings.Cut(line, "-"); ok && !strings.Contains(lo, ":") && !strings.Contains(lo, " ") {
			in = lo == fmt.Sprintf("%x", addr)
			continue
		}
		if v, ok := strings.CutPrefix(line, field+":"); ok && in {
			return strings.TrimSpace(v), nil
		}
	}
	return "", fmt.Errorf("no mapping at %#x with %s in /proc/self/smaps", addr, field)
}
