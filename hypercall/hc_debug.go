package hypercall

import (
	"encoding/binary"
	"runtime"
	"time"

	"ember/acrn"
	"ember/acrn/sbuf"
)

// The shared buffer (sbuf) format (package sbuf), as this package has always
// named it.
const (
	SbufMagic       = sbuf.Magic       // SBUF_MAGIC
	SbufHeadSize    = sbuf.HeadSize    // sizeof(struct shared_buf)
	SbufOverrunFlag = sbuf.OverrunFlag // OVERRUN_CNT_EN: count records dropped when full
	// TraceHypercall is the trace event ID ember writes for each
	// hypercall; its 32-byte record is {tsc, id, hypercall ID, RAX}.
	TraceHypercall = 0x10
	// TraceEntrySize is sizeof(struct trace_entry).
	TraceEntrySize = sbuf.EntrySize
)

// hcSetupSbuf is HC_SETUP_SBUF: param1 is the GPA of a sbuf_setup_param
// naming a host CPU, a buffer kind and the GPA of a shared_buf (magic
// SBUF_MAGIC, ele_num >= 2, ele_size >= 32 and a multiple of 8, size =
// ele_num*ele_size, wholly in the caller's memory: sbuf.Open). ember then
// puts one trace record per hypercall into the ACRN_TRACE buffer of CPU 0
// (host calls) or of the calling vCPU's index. ACRN_HVLOG is accepted and
// gets no records; SEP and SoCWatch need PMU access ember lacks: -ENODEV. A
// GPA of 0 removes the buffer.
func hcSetupSbuf(c *call) acrn.Errno {
	var p acrn.SbufSetupParam
	if r := c.read(c.p1, &p); r != 0 {
		return r
	}
	if int(p.PCPUID) >= runtime.NumCPU() || p.SbufID >= acrn.SbufIDMax {
		return acrn.EINVAL
	}
	if p.SbufID == acrn.SbufSEP || p.SbufID == acrn.SbufSocWatch {
		return acrn.ENODEV
	}
	if p.GPA != 0 {
		if _, err := sbuf.Open(c.mem, p.GPA); err != nil {
			return acrn.EINVAL
		}
	}
	c.h.table.sbufs.Set(sbuf.Key{PCPU: p.PCPUID, ID: p.SbufID}, c.mem, p.GPA)
	return 0
}

// trace appends a hypercall record to the trace sbuf of the calling CPU, if
// it has one (sbuf.Table.Trace checks the header again: the Service VM owns
// the memory).
func (h *Service) trace(c *call, rax uint64) {
	t := &h.table.sbufs
	if t.Traces() == 0 {
		return
	}
	var cpu uint16
	if c.vcpu != nil {
		cpu = uint16(c.vcpu.ID() % runtime.NumCPU())
	}
	t.Trace(cpu, func(rec []byte) {
		le := binary.LittleEndian
		le.PutUint64(rec[0:], uint64(time.Now().UnixNano()))
		le.PutUint64(rec[8:], TraceHypercall)
		le.PutUint64(rec[16:], uint64(c.id))
		le.PutUint64(rec[24:], rax)
	})
}

// hcSetupNPKLog is HC_SETUP_HV_NPK_LOG: param1 is the GPA of an
// hv_npk_log_param. The host has no Intel Trace Hub (NPK) for ember to log
// to: QUERY and DISABLE succeed with res DISABLED; CONF and ENABLE write res
// KO and return -ENODEV; other commands are -EINVAL.
func hcSetupNPKLog(c *call) acrn.Errno {
	var p acrn.NPKLogParam
	if r := c.read(c.p1, &p); r != 0 {
		return r
	}
	var ret acrn.Errno
	switch p.Cmd {
	case acrn.NPKLogCmdQuery, acrn.NPKLogCmdDisable:
		p.Res = acrn.NPKLogResDisabled
	case acrn.NPKLogCmdConf, acrn.NPKLogCmdEnable:
		p.Res, ret = acrn.NPKLogResKO, acrn.ENODEV
	default:
		return acrn.EINVAL
	}
	if r := c.write(c.p1, &p); r != 0 {
		return r
	}
	return ret
}

// hcProfilingOps is HC_PROFILING_OPS: param1 is the profiling command,
// param2 the GPA of its data. ACRN's profiling drives the host PMU, which
// ember does not own: every defined command is -ENODEV, others -EINVAL.
func hcProfilingOps(c *call) acrn.Errno {
	if c.p1 > acrn.ProfilingGetStatus {
		return acrn.EINVAL
	}
	return acrn.ENODEV
}
