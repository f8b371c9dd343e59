// Package fuzzseed writes a fuzz target's seed corpus files in the format
// `go test -fuzz` reads (testdata/fuzz/TARGET/NAME: "go test fuzz v1", then
// one Go literal per argument of the target), so that a package's committed
// seeds are regenerated from code rather than kept as opaque blobs.
package fuzzseed

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Write writes testdata/fuzz/target/name, under the test's working
// directory (its package's), holding the argument literals args, such as
// `[]byte("...")` or `uint64(22)`; it fails t on an error.
func Write(t testing.TB, target, name string, args ...string) {
	t.Helper()
	dir := filepath.Join("testdata", "fuzz", target)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	body := "go test fuzz v1\n" + strings.Join(args, "\n") + "\n"
	if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
}
