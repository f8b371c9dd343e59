package hv

import (
	"encoding/binary"
	"testing"

	"ember/kvm"
	"ember/kvm/kvmcap"
)

// hvMSRSControl is HV_X64_MSR_SCONTROL, the SynIC's enable register: KVM
// takes a non-zero value only on a vCPU whose SynIC is on.
const hvMSRSControl = 0x40000080

// TestHyperVEnlightenments: with Config.HyperV, each vCPU's CPUID leads the
// hypervisor range with Hyper-V's leaves ("Linux KVM Hv", the SynIC and its
// timers among the features), KVM's follow at 0x40000100, and the SynIC is
// on; without it, leaf 0x40000000 is KVM's and the SynIC stays off.
func TestHyperVEnlightenments(t *testing.T) {
	h := openHV(t)
	if n, _ := h.System().CheckExtension(kvmcap.SysHypervCPUID); n <= 0 {
		t.Skip("this host's KVM has no KVM_CAP_SYS_HYPERV_CPUID")
	}
	const synicTimers = 1<<2 | 1<<3 // HV_MSR_SYNIC_AVAILABLE, HV_MSR_SYNTIMER_AVAILABLE
	tests := []struct {
		name      string
		hyperV    bool
		first     string // the signature at 0x40000000
		kvmLeaf   uint32 // where "KVMKVMKVM" is
		synicMSRs bool
	}{
		{"without", false, "KVMKVMKVM\x00\x00\x00", 0x40000000, false},
		{"with", true, "Linux KVM Hv", 0x40000100, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			vm, err := h.NewVM(Config{MemorySize: 2 << 20, VCPUs: 2, HyperV: tt.hyperV})
			if err != nil {
				t.Fatal(err)
			}
			defer vm.Close()
			for i := range vm.NumVCPUs() {
				c := vm.VCPU(i).KVM()
				leaves, err := c.GetCPUID2()
				if err != nil {
					t.Fatal(err)
				}
				sig := func(leaf uint32) string {
					for _, e := range leaves {
						if e.Function == leaf {
							b := make([]byte, 12)
							binary.LittleEndian.PutUint32(b[0:], e.EBX)
							binary.LittleEndian.PutUint32(b[4:], e.ECX)
							binary.LittleEndian.PutUint32(b[8:], e.EDX)
							return string(b)
						}
					}
					return ""
				}
				if s := sig(0x40000000); s != tt.first {
					t.Errorf("vCPU %d: 0x40000000 is %q, want %q", i, s, tt.first)
				}
				if s := sig(tt.kvmLeaf); s != "KVMKVMKVM\x00\x00\x00" {
					t.Errorf("vCPU %d: %#x is %q, want KVM's", i, tt.kvmLeaf, s)
				}
				if tt.hyperV {
					for _, e := range leaves {
						if e.Function == 0x40000003 && e.EAX&synicTimers != synicTimers {
							t.Errorf("vCPU %d: Hyper-V features %#x lack the SynIC and its timers", i, e.EAX)
						}
					}
				}
				n, err := c.SetMSRs([]kvm.MSREntry{{Index: hvMSRSControl, Data: 1}})
				if got := n == 1 && err == nil; got != tt.synicMSRs {
					t.Errorf("vCPU %d: setting SCONTROL: %d, %v; want accepted %v", i, n, err, tt.synicMSRs)
				}
			}
		})
	}
}
