package fuzzseed

import (
	"os"
	"path/filepath"
	"testing"
)

// TestWrite: the file is where `go test -fuzz` looks for the target's
// seeds, in its format, one literal per line.
func TestWrite(t *testing.T) {
	t.Chdir(t.TempDir())
	Write(t, "FuzzThing", "seed-a", `[]byte("ab")`, "uint8(3)")
	got, err := os.ReadFile(filepath.Join("testdata", "fuzz", "FuzzThing", "seed-a"))
	if err != nil {
		t.Fatal(err)
	}
	if want := "go test fuzz v1\n[]byte(\"ab\")\nuint8(3)\n"; string(got) != want {
		t.Errorf("file %q, want %q", got, want)
	}
}
