package mmio

import (
	"strings"
	"testing"

	"ember/virtio"
)

// TestDescribe: the report lines of a started device give its status, the
// interrupt status the driver has not acknowledged yet, and queue 0's rings
// (all zero: the driver made nothing available).
func TestDescribe(t *testing.T) {
	r := newRig(t)
	r.start(virtio.FeatureVersion1, 0x10000)
	r.dev.Interrupt(0)
	want := []string{
		"virtio-mmio rng: status 0xf (ACKNOWLEDGE DRIVER FEATURES_OK DRIVER_OK), interrupt status 0x1",
		"queue 0: size 64: avail 0 (flags 0x0, used_event 0) used 0 (flags 0x0, avail_event 0), 0 in flight",
	}
	if got := r.tr.Describe(); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("Describe:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
