package kvmcap

import (
	"strings"
	"testing"
)

// TestNames: a capability is found by its KVM_CAP_ name with or without
// the prefix, prints as that name (or its number), and every named one
// round-trips.
func TestNames(t *testing.T) {
	tests := []struct {
		name string
		cap  Cap
	}{
		{"KVM_CAP_IRQCHIP", IRQChip},
		{"IRQCHIP", IRQChip},
		{"KVM_CAP_USER_MEMORY", UserMemory},
		{"KVM_CAP_MAX_VCPU_ID", MaxVCPUID},
		{"SYNC_REGS", SyncRegs},
	}
	for _, tt := range tests {
		c, ok := ByName(tt.name)
		if !ok || c != tt.cap {
			t.Errorf("ByName(%q) = %v, %v; want %v", tt.name, c, ok, tt.cap)
		}
	}
	if c, ok := ByName("KVM_CAP_NO_SUCH_THING"); ok {
		t.Errorf("ByName(unknown) = %v, true", c)
	}
	if got := ReadonlyMem.String(); got != "KVM_CAP_READONLY_MEM" {
		t.Errorf("ReadonlyMem.String() = %q", got)
	}
	if got := Cap(9999).String(); got != "KVM_CAP_9999" {
		t.Errorf("Cap(9999).String() = %q", got)
	}
	for c, n := range names {
		if !strings.HasPrefix(n, "KVM_CAP_") {
			t.Errorf("cap %d named %q", c, n)
		}
		if back, ok := ByName(n); !ok || back != c {
			t.Errorf("ByName(%q) = %v, %v; want %d", n, back, ok, c)
		}
	}
}
