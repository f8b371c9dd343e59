package hypercall

import (
	"fmt"
	"runtime"

	"ember/acrn"
	"ember/acrn/iorequest"
)

// platformInfoVersion is the hw.version ember reports in acrn_platform_info.
const platformInfoVersion = 0x100

// hcGetAPIVersion is HC_GET_API_VERSION: param1 is the GPA of an
// hc_api_version, filled with ACRN v2.6's API version 1.0.
func hcGetAPIVersion(c *call) acrn.Errno {
	return c.write(c.p1, &acrn.APIVersion{MajorVersion: acrn.APIMajorVersion, MinorVersion: acrn.APIMinorVersion})
}

// hcGetHWInfo is HC_GET_HW_INFO: param1 is the GPA of an acrn_hw_info,
// filled with the number of host CPUs.
func hcGetHWInfo(c *call) acrn.Errno {
	return c.write(c.p1, &acrn.HWInfo{CPUNum: uint16(runtime.NumCPU())})
}

// hcGetPlatformInfo is HC_GET_PLATFORM_INFO: param1 is the GPA of an
// acrn_platform_info. ember fills in the host CPUs (LAPIC IDs 0..n-1, as
// ember numbers its vCPUs), 16 vCPUs per VM, MaxVMs VMs; if the caller put
// a non-zero sw.vm_configs_addr in, MaxVMs entries of vm_config_size bytes
// are written there, each starting with the acrn_vm_config_header of that
// VM ID (zero for a free ID).
func hcGetPlatformInfo(c *call) acrn.Errno {
	var pi acrn.PlatformInfo
	if r := c.read(c.p1, &pi); r != 0 {
		return r
	}
	n := runtime.NumCPU()
	hw := acrn.PlatformHW{CPUNum: uint16(n), Version: platformInfoVersion}
	for i := 0; i < n && i < acrn.PlatformLAPICIDsMax; i++ {
		hw.LAPICIDs[i] = uint8(i)
	}
	sw := acrn.PlatformSW{MaxVCPUsPerVM: iorequest.IORequestMax, MaxVMs: MaxVMs,
		VMConfigSize: acrn.VMConfigHeaderSize, VMConfigsAddr: pi.SW.VMConfigsAddr}
	if addr := sw.VMConfigsAddr; addr != 0 {
		if _, err := c.mem.Slice(addr, MaxVMs*acrn.VMConfigHeaderSize); err != nil {
			return acrn.EFAULT
		}
		for id := uint64(0); id < MaxVMs; id++ {
			var h acrn.VMConfigHeader
			if e := c.h.table.ids.Lookup(id); e != nil {
				h.LoadOrder = uint32(e.load)
				copy(h.Name[:], fmt.Sprintf("ember-vm%d", id))
				h.GuestFlags = e.flags
				e.mu.Lock()
				h.CPUAffinity = e.affinity
				e.mu.Unlock()
			}
			if r := c.write(addr+id*acrn.VMConfigHeaderSize, &h); r != 0 {
				return r
			}
		}
	}
	pi = acrn.PlatformInfo{HW: hw, SW: sw}
	return c.write(c.p1, &pi)
}

// hcSetCallbackVector is HC_SET_CALLBACK_VECTOR: param1 is the vector
// upcalls to the Service VM use from now on, 0x20-0xFF (-EINVAL otherwise).
func hcSetCallbackVector(c *call) acrn.Errno {
	if c.p1 < acrn.CallbackVectorMin || c.p1 > acrn.CallbackVectorMax {
		return acrn.EINVAL
	}
	t := &c.h.table
	t.mu.Lock()
	t.callback = uint8(c.p1)
	t.mu.Unlock()
	return 0
}

// CallbackVector returns the vector upcalls to the Service VM use: 0xF3
// unless HC_SET_CALLBACK_VECTOR chose another.
func (h *Service) CallbackVector() uint8 {
	t := &h.table
	t.mu.RLock()
	defer t.mu.RUnlock()
	if t.callback == 0 {
		return acrn.CallbackVectorDefault
	}
	return t.callback
}

// hcSOSOfflineCPU is HC_SOS_OFFLINE_CPU: param1 is the LAPIC ID of the
// Service VM vCPU the Service VM has taken offline, which ACRN then removes
// so that its physical CPU can go to a User VM. ember's LAPIC IDs are vCPU
// indexes. The BSP, or an ID that names no vCPU of the caller (the host
// control plane has none), is -EINVAL, as in ACRN; a valid one is -ENODEV:
// ember does not partition host CPUs between VMs (every vCPU is a thread the
// host schedules), so there is no CPU to hand over, and it does not take a
// vCPU out of a running VM.
func hcSOSOfflineCPU(c *call) acrn.Errno {
	if c.from == nil || c.p1 == 0 || c.p1 >= uint64(c.from.vm.NumVCPUs()) {
		return acrn.EINVAL
	}
	return acrn.ENODEV
}
