package hypercall

import (
	"testing"

	"ember/acrn"
)

// TestCountsByIDAndResult: each hypercall is counted once under its ID and
// how it ended (ok, the errno's name), and the table lists the VMs it made.
func TestCountsByIDAndResult(t *testing.T) {
	h := fakeService(t)
	for range 2 {
		if r := h.Hypercall(acrn.HCGetAPIVersion, 0x1000, 0); r != 0 {
			t.Fatal(acrn.ResultError(r))
		}
	}
	h.Hypercall(acrn.HCGetAPIVersion, ServiceMemorySize, 0) // outside service memory: -EFAULT
	h.Hypercall(acrn.HCPauseVM, 30, 0)                      // no VM 30: -EINVAL
	id := createVM(t, h, 1)
	want := map[CallCount]bool{
		{acrn.HCGetAPIVersion, "ok", 2}:     true,
		{acrn.HCGetAPIVersion, "EFAULT", 1}: true,
		{acrn.HCPauseVM, "EINVAL", 1}:       true,
		{acrn.HCCreateVM, "ok", 1}:          true,
		// createVM's own calls
		{acrn.HCSetIOReqBuffer, "ok", 1}:     true,
		{acrn.HCVMSetMemoryRegions, "ok", 1}: true,
	}
	got := h.Counts()
	for _, c := range got {
		if !want[c] {
			t.Errorf("unexpected count %+v", c)
		}
		delete(want, c)
	}
	for c := range want {
		t.Errorf("missing count %+v (got %+v)", c, got)
	}
	vms := h.VMs()
	if len(vms) != 1 || vms[0].ID != id || !vms[0].Hypercall || vms[0].State != "created" {
		t.Errorf("VMs() = %+v", vms)
	}
}
