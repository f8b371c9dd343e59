package hypercall

import (
	"ember/acrn"
	"ember/hypercall/hostinfo"
)

// hostPStates returns host CPU cpu's P-states (hostinfo.PStates) as ACRN's
// table: fastest first, the index as control and status, at most
// acrn.MaxPState of them.
func hostPStates(cpu int) []acrn.PStateData {
	var ps []acrn.PStateData
	for i, p := range hostinfo.PStates(cpu) {
		if i == acrn.MaxPState {
			break
		}
		ps = append(ps, acrn.PStateData{CoreFrequency: p.KHz / 1000, TransitionLatency: uint64(p.Latency.Microseconds()),
			Control: uint64(i), Status: uint64(i)})
	}
	return ps
}

// hostCStates returns host CPU cpu's C-states (hostinfo.CStates, POLL left
// out: C0 is not an entry) as ACRN's table: entry i+1 of ACRN's table is
// element i, at most acrn.MaxCxEntry of them.
func hostCStates(cpu int) []acrn.CStateData {
	var cs []acrn.CStateData
	for _, c := range hostinfo.CStates(cpu) {
		if len(cs) == acrn.MaxCxEntry {
			break
		}
		cs = append(cs, acrn.CStateData{
			CxReg:   acrn.ACPIGenericAddress{SpaceID: acrn.SpaceFFixedHW, BitWidth: 1, BitOffset: 2, AccessSize: 1},
			Type:    uint8(len(cs) + 1),
			Latency: uint32(c.Latency.Microseconds()),
			Power:   c.PowerMW,
		})
	}
	return cs
}

// hcPMGetCPUState is HC_PM_GET_CPU_STATE: param1 is a PMCMD word naming a
// VM, one of its vCPUs, a state number and a request; param2 the GPA of the
// answer. The data are the host's (a vCPU runs on host CPUs): Px from
// cpufreq (fastest first; control and status are the index), Cx from
// cpuidle without POLL. GET_PX_CNT/GET_CX_CNT write one byte; GET_PX_DATA
// (state 0..count-1) an acrn_pstate_data; GET_CX_DATA (state 1..count) an
// acrn_cstate_data. A host without the data gives -ENODEV; a bad VM, vCPU,
// state or request -EINVAL.
func hcPMGetCPUState(c *call) acrn.Errno {
	cmd := acrn.PMCmd(c.p1)
	if c.p1>>32 != 0 {
		return acrn.EINVAL
	}
	e, r := c.target(uint64(cmd.VMID()))
	if r != 0 {
		return r
	}
	defer e.mu.Unlock()
	if int(cmd.VCPUID()) >= e.vm.NumVCPUs() {
		return acrn.EINVAL
	}
	n := int(cmd.StateNum())
	switch cmd.Type() {
	case acrn.PMCmdGetPxCnt, acrn.PMCmdGetPxData:
		ps := hostPStates(0)
		if len(ps) == 0 {
			return acrn.ENODEV
		}
		if cmd.Type() == acrn.PMCmdGetPxCnt {
			return c.writeByte(c.p2, uint8(len(ps)))
		}
		if n >= len(ps) {
			return acrn.EINVAL
		}
		return c.write(c.p2, &ps[n])
	case acrn.PMCmdGetCxCnt, acrn.PMCmdGetCxData:
		cs := hostCStates(0)
		if len(cs) == 0 {
			return acrn.ENODEV
		}
		if cmd.Type() == acrn.PMCmdGetCxCnt {
			return c.writeByte(c.p2, uint8(len(cs)))
		}
		if n < 1 || n > len(cs) {
			return acrn.EINVAL
		}
		return c.write(c.p2, &cs[n-1])
	}
	return acrn.EINVAL
}

// writeByte stores one byte in the caller's memory.
func (c *call) writeByte(gpa uint64, v uint8) acrn.Errno {
	b, err := c.mem.Slice(gpa, 1)
	if err != nil {
		return acrn.EFAULT
	}
	b[0] = v
	return 0
}
