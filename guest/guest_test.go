package guest

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"

	"ember/acrn"
	"ember/x86"
)

// TestCommittedBinariesMatchSources rebuilds every guest from src/ and fails
// if a committed binary differs: the embedded bytes are what the sources say.
func TestCommittedBinariesMatchSources(t *testing.T) {
	for _, tool := range []string{"make", "gcc", "ld"} {
		if _, err := exec.LookPath(tool); err != nil {
			if os.Getenv("CI") != "" || os.Getenv("EMBER_REQUIRE_KVM") != "" {
				t.Fatalf("%s is needed to rebuild the guests: %v", tool, err)
			}
			t.Skipf("cannot rebuild guests without %s: %v", tool, err)
		}
	}
	out := t.TempDir()
	cmd := exec.Command("make", "-s", "OUT="+out)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("make: %v\n%s", err, b)
	}
	srcs, _ := filepath.Glob("src/*.S")
	programs := append(append([]Program(nil), All...), Kernels...)
	if len(srcs) != len(programs) {
		t.Errorf("%d sources but %d programs in All and Kernels", len(srcs), len(programs))
	}
	for _, p := range programs {
		built, err := os.ReadFile(filepath.Join(out, p.Name+".bin"))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(built, p.Code) {
			t.Errorf("bin/%s.bin differs from a fresh build of src/%s.S: run `make -C guest`", p.Name, p.Name)
		}
	}
}

// TestABIHeaderMatchesGo checks that src/abi.h and the Go constants agree.
func TestABIHeaderMatchesGo(t *testing.T) {
	h, err := os.ReadFile("src/abi.h")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]uint64{
		"PORT_CONSOLE": PortConsole, "PORT_REPORT": PortReport, "PORT_EXIT": PortExit,
		"SEL_CODE": x86.SelCode, "SEL_DATA": x86.SelData, "SEL_USER_DATA": x86.SelUserData,
		"SEL_USER_CODE64": x86.SelUserCode64, "LOAD_ADDR": LoadAddr, "PORT_HYPERCALL": PortHypercall,
	}
	re := regexp.MustCompile(`(?m)^#define\s+(\w+)\s+(0x[0-9a-fA-F]+|\d+)`)
	seen := map[string]bool{}
	for _, m := range re.FindAllSubmatch(h, -1) {
		name := string(m[1])
		v, err := strconv.ParseUint(string(m[2]), 0, 64)
		if err != nil {
			t.Fatal(err)
		}
		if w, ok := want[name]; ok {
			seen[name] = true
			if v != w {
				t.Errorf("abi.h %s = %#x, Go says %#x", name, v, w)
			}
		}
	}
	for name := range want {
		if !seen[name] {
			t.Errorf("abi.h does not define %s", name)
		}
	}
}

func TestByName(t *testing.T) {
	if p, ok := ByName("demo"); !ok || len(p.Code) == 0 || p.Mode != x86.LongMode {
		t.Errorf("ByName(demo) = %v, %v", p.Name, ok)
	}
	if _, ok := ByName("nope"); ok {
		t.Error("ByName(nope) found something")
	}
}

// TestHypercallHeaderMatchesACRN checks every ID in src/hypercall.h against
// package acrn, so a guest never makes a different hypercall than it names.
func TestHypercallHeaderMatchesACRN(t *testing.T) {
	h, err := os.ReadFile("src/hypercall.h")
	if err != nil {
		t.Fatal(err)
	}
	re := regexp.MustCompile(`(?m)^#define\s+(HC_\w+)\s+(0x[0-9a-fA-F]+)`)
	ms := re.FindAllSubmatch(h, -1)
	if len(ms) == 0 {
		t.Fatal("no hypercall IDs in src/hypercall.h")
	}
	for _, m := range ms {
		v, err := strconv.ParseUint(string(m[2]), 0, 64)
		if err != nil {
			t.Fatal(err)
		}
		id, ok := acrn.LookupID(string(m[1]))
		if !ok || uint64(id) != v {
			t.Errorf("hypercall.h %s = %#x; package acrn says %#x (known: %v)", m[1], v, uint64(id), ok)
		}
	}
}
