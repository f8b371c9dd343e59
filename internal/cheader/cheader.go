// Package cheader checks Go mirrors of kernel ABI against the kernel's own
// C headers: a test names C expressions (sizeof, offsetof, ioctl request
// numbers, constants), Values compiles and runs a C program that prints
// each, and the test compares them with its Go values. The kvm and vhost
// bindings' layout tests share it.
package cheader

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// Values compiles a C program that includes header (as "linux/kvm.h") and
// prints every expression of exprs, runs it, and returns the values by
// expression. Without gcc or the header the test is skipped, or fails
// where CI or EMBER_REQUIRE_KVM is set (CI installs both).
func Values(t testing.TB, header string, exprs []string) map[string]uint64 {
	t.Helper()
	gcc, err := exec.LookPath("gcc")
	if err != nil {
		skip(t, "no gcc to compile the layout check: %v", err)
	}
	var src bytes.Buffer
	fmt.Fprintf(&src, "#include <stdio.h>\n#include <stddef.h>\n#include <%s>\n\nint main(void) {\n", header)
	for _, e := range exprs {
		fmt.Fprintf(&src, "\tprintf(\"%%llu\\t%%s\\n\", (unsigned long long)(%s), %q);\n", e, e)
	}
	src.WriteString("\treturn 0;\n}\n")

	dir := t.TempDir()
	cfile, bin := filepath.Join(dir, "layout.c"), filepath.Join(dir, "layout")
	if err := os.WriteFile(cfile, src.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(gcc, "-o", bin, cfile).CombinedOutput()
	if err != nil {
		if bytes.Contains(out, []byte(header)) && bytes.Contains(out, []byte("No such file")) {
			skip(t, "no <%s> (install linux-libc-dev): %s", header, out)
		}
		t.Fatalf("compiling the layout check: %v\n%s", err, out)
	}
	out, err = exec.Command(bin).Output()
	if err != nil {
		t.Fatalf("running the layout check: %v", err)
	}
	got := map[string]uint64{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		v, expr, ok := strings.Cut(sc.Text(), "\t")
		n, err := strconv.ParseUint(v, 10, 64)
		if !ok || err != nil {
			t.Fatalf("bad line from the layout check: %q", sc.Text())
		}
		got[expr] = n
	}
	return got
}

// skip skips the test for a missing tool or header, or fails it where CI
// or EMBER_REQUIRE_KVM says the host must have them.
func skip(t testing.TB, format string, args ...any) {
	t.Helper()
	for _, env := range []string{"CI", "EMBER_REQUIRE_KVM"} {
		if os.Getenv(env) != "" {
			t.Fatalf(env+" is set, so this is an error: "+format, args...)
		}
	}
	t.Skipf("skipping: "+format, args...)
}
