package kvmtest

import (
	"os"
	"testing"
)

// OpenFDs counts the process's open file descriptors, for tests that check
// a VM released every descriptor it had.
func OpenFDs(t testing.TB) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}
