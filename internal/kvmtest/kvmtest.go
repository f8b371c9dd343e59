// Package kvmtest is the one rule every test that needs /dev/kvm follows:
// without KVM it skips with a clear message, unless EMBER_REQUIRE_KVM is set
// (CI sets it), in which case a missing /dev/kvm fails the test.
package kvmtest

import (
	"os"
	"testing"
)

// RequireEnv is the variable that turns "no /dev/kvm" from a skip into a failure.
const RequireEnv = "EMBER_REQUIRE_KVM"

// Require skips or fails t unless /dev/kvm can be opened for reading and writing.
func Require(t testing.TB) {
	t.Helper()
	f, err := os.OpenFile("/dev/kvm", os.O_RDWR, 0)
	if err == nil {
		f.Close()
		return
	}
	if os.Getenv(RequireEnv) != "" {
		t.Fatalf("/dev/kvm is required (%s is set) but cannot be opened: %v", RequireEnv, err)
	}
	t.Skipf("skipping: this test runs guests and needs /dev/kvm, which cannot be opened here: %v; run it in the lab (go run ./lab test ./...), or set %s=1 to make this a failure", err, RequireEnv)
}

// LabEnv is set by `go run ./lab` for everything it runs.
const LabEnv = "EMBER_LAB"

// InLab reports whether the test runs inside the lab: SVM KVM nested under
// QEMU's software emulation, which now and then triple-faults a guest that
// real hardware runs (README, "Host notes"). Tests that boot Linux give such
// a boot one more try there, and log it; nowhere else.
func InLab() bool { return os.Getenv(LabEnv) != "" }

// FlakeMark begins the log line of a test that boots again because the lab
// failed its guest (a triple fault or a stall that real hardware does not
// give). `go run ./lab test` reads it: a test that still fails after logging
// it runs once more, in a freshly booted lab, before its failure counts.
const FlakeMark = "lab flake"
