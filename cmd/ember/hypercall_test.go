package main

import (
	"errors"
	"strings"
	"testing"

	"ember/internal/kvmtest"
)

func TestHypercallCommand(t *testing.T) {
	kvmtest.Require(t)
	out, _, err := execute(t, "hypercall", "HC_GET_API_VERSION", "0x1000", ";",
		"HC_CREATE_VM", "@0x2000:000000000100", ";", "HC_DESTROY_VM", "1", ";", "HC_PAUSE_VM", "1", ";", "HC_DESTROY_VM", "1", ";", "HC_DESTROY_VM", "1")
	var ee exitError
	if !errors.As(err, &ee) || ee.code != 1 {
		t.Fatalf("err %v, want exit status 1 for the failed call\n%s", err, out)
	}
	for _, want := range []string{"HC_GET_API_VERSION(0x1000, 0x0) = 0", "@0x2000: 01 00 00 00 01 00",
		"HC_DESTROY_VM(0x1, 0x0) = -1 (acrn: EPERM)", // a created VM: pause it first, as ACRN asks
		"HC_PAUSE_VM(0x1, 0x0) = 0", "HC_DESTROY_VM(0x1, 0x0) = 0", "HC_DESTROY_VM(0x1, 0x0) = -22 (acrn: EINVAL)"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}
