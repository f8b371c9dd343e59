package hypercall

import (
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"

	"ember/acrn"
)

// sysCPU is where the host's cpufreq and cpuidle data are read from.
var sysCPU = "/sys/devices/system/cpu"

func readSys(path string) (string, bool) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", false
	}
	return strings.TrimSpace(string(b)), true
}

func readSysUint(path string) uint64 {
	s, _ := readSys(path)
	v, _ := strconv.ParseUint(s, 10, 64)
	return v
}

// hostPStates returns the host's P-states from cpufreq, fastest first: the
// scaling_available_frequencies of cpu, or its min and max.
func hostPStates(cpu int) []acrn.PStateData {
	dir := fmt.Sprintf("%s/cpu%d/cpufreq/", sysCPU, cpu)
	var khz []uint64
	if s, ok := readSys(dir + "scaling_available_frequencies"); ok {
		for _, f := range strings.Fields(s) {
			if v, err := strconv.ParseUint(f, 10, 64); err == nil && v > 0 {
				khz = append(khz, v)
			}
		}
	} else if hi, lo := readSysUint(dir+"cpuinfo_max_freq"), readSysUint(dir+"cpuinfo_min_freq"); hi > 0 {
		khz = append(khz, hi)
		if lo > 0 && lo != hi {
			khz = append(khz, lo)
		}
	}
	sort.Slice(khz, func(i, j int) bool { return khz[i] > khz[j] })
	lat := readSysUint(dir+"cpuinfo_transition_latency") / 1000
	var ps []acrn.PStateData
	for i, f := range khz {
		if i == acrn.MaxPState {
			break
		}
		ps = append(ps, acrn.PStateData{CoreFrequency: f / 1000, TransitionLatency: lat,
			Control: uint64(i), Status: uint64(i)})
	}
	return ps
}

// hostCStates returns the host's C-states from cpuidle, without the POLL
// state (C0 is not an entry): entry i+1 of ACRN's table is element i.
func hostCStates(cpu int) []acrn.CStateData {
	var cs []acrn.CStateData
	for i := 0; len(cs) < acrn.MaxCxEntry; i++ {
		dir := fmt.Sprintf("%s/cpu%d/cpuidle/state%d/", sysCPU, cpu, i)
		name, ok := readSys(dir + "name")
		if !ok {
			break
		}
		if name == "POLL" {
			continue
		}
		cs = append(cs, acrn.CStateData{
			CxReg:   acrn.ACPIGenericAddress{SpaceID: acrn.SpaceFFixedHW, BitWidth: 1, BitOffset: 2, AccessSize: 1},
			Type:    uint8(len(cs) + 1),
			Latency: uint32(readSysUint(dir + "latency")),
			Power:   readSysUint(dir + "power"),
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
