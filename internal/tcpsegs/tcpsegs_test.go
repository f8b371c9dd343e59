package tcpsegs

import (
	"os"
	"path/filepath"
	"testing"
)

// TestPinAndRestore: Pin writes the floor and its restore function puts
// the old value back; a missing sysctl is an error that names it.
func TestPinAndRestore(t *testing.T) {
	dir := t.TempDir()
	path = filepath.Join(dir, "tcp_min_tso_segs")
	defer func() { path = "/proc/sys/net/ipv4/tcp_min_tso_segs" }()
	if err := os.WriteFile(path, []byte("2\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	restore, err := Pin(Full)
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(path); string(b) != "44\n" {
		t.Fatalf("pinned: the sysctl reads %q, want 44", b)
	}
	if err := restore(); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(path); string(b) != "2\n" {
		t.Fatalf("restored: the sysctl reads %q, want 2", b)
	}
	path = filepath.Join(dir, "missing")
	if _, err := Pin(Full); err == nil {
		t.Fatal("a missing sysctl pinned")
	}
}
