package permission

import (
	"testing"

	"ember/acrn"
)

// caller is who makes a hypercall: the Service VM or a VM with flags, at a
// privilege level.
type caller struct {
	service bool
	flags   uint64
	cpl     uint8
}

func TestCheck(t *testing.T) {
	var (
		serviceVM = caller{service: true}
		plainVM   = caller{}
		trustyVM  = caller{flags: acrn.GuestFlagSecureWorldEnabled}
		teeVM     = caller{flags: acrn.GuestFlagTEE}
		ring      = func(c caller, cpl uint8) caller { c.cpl = cpl; return c }
	)
	for _, tt := range []struct {
		name string
		from caller
		id   acrn.ID
		want Verdict
	}{
		{"Service VM, ring 0, Service VM call", serviceVM, acrn.HCCreateVM, Allow},
		{"Service VM, ring 3", ring(serviceVM, 3), acrn.HCCreateVM, InjectGP},
		{"Service VM, ring 1", ring(serviceVM, 1), acrn.HCCreateVM, InjectGP},
		{"plain VM", plainVM, acrn.HCGetAPIVersion, InjectUD},
		{"plain VM, ring 3: #UD, whatever the ring (seed 003)", ring(plainVM, 3), acrn.HCGetAPIVersion, InjectUD},
		{"Trusty VM, ring 3: #GP(0)", ring(trustyVM, 3), acrn.HCWorldSwitch, InjectGP},
		{"Trusty VM, Trusty call", trustyVM, acrn.HCWorldSwitch, Allow},
		{"Trusty VM, Service VM call", trustyVM, acrn.HCCreateVM, Refuse},
		{"TEE VM, Trusty call: #UD, TEE is v3.0's, not the seed's (v2.6)", teeVM, acrn.HCWorldSwitch, InjectUD},
		{"Service VM, Trusty call", serviceVM, acrn.HCInitializeTrusty, Refuse},
		{"Service VM, unknown ID", serviceVM, 0x80000099, Refuse},
		{"Service VM, retired ID", serviceVM, acrn.HCAssignPtdev, Refuse},
		{"Service VM, HC_CREATE_VM's index with junk above", serviceVM, 0x1280000010, Refuse},
	} {
		if got := Check(tt.from.service, tt.from.flags, tt.from.cpl, tt.id); got != tt.want {
			t.Errorf("%s: %v, want %v", tt.name, got, tt.want)
		}
	}
}
