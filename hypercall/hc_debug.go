package hypercall

import (
	"encoding/binary"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"ember/acrn"
	"ember/memory"
)

// The shared buffer (sbuf) ACRN v2.6 writes trace and log records into: a
// 64-byte header followed by ele_num elements of ele_size bytes, in the
// Service VM's memory.
const (
	SbufMagic       = 0x5aa57aa71aa13aa3 // SBUF_MAGIC
	SbufHeadSize    = 64                 // sizeof(struct shared_buf)
	SbufOverrunFlag = 1 << 0             // OVERRUN_CNT_EN: count records dropped when full
	// TraceHypercall is the trace event ID ember writes for each
	// hypercall; its 32-byte record is {tsc, id, hypercall ID, RAX}.
	TraceHypercall = 0x10
	// TraceEntrySize is sizeof(struct trace_entry).
	TraceEntrySize = 32
)

// Offsets in the sbuf header.
const (
	sbufEleNum  = 8
	sbufEleSize = 12
	sbufHead    = 16
	sbufTail    = 20
	sbufOverrun = 32
	sbufSize    = 36
)

// sbufCheck validates the sbuf at gpa in mem and returns its header and
// data area.
func sbufCheck(mem *memory.Guest, gpa uint64) (hdr, data []byte, ok bool) {
	hdr, err := mem.Slice(gpa, SbufHeadSize)
	if err != nil || gpa%8 != 0 {
		return nil, nil, false
	}
	le := binary.LittleEndian
	n, sz, size := uint64(le.Uint32(hdr[sbufEleNum:])), uint64(le.Uint32(hdr[sbufEleSize:])), uint64(le.Uint32(hdr[sbufSize:]))
	if le.Uint64(hdr) != SbufMagic || n < 2 || sz < TraceEntrySize || sz%8 != 0 || n*sz != size {
		return nil, nil, false
	}
	data, err = mem.Slice(gpa+SbufHeadSize, size)
	if err != nil {
		return nil, nil, false
	}
	return hdr, data, true
}

// hcSetupSbuf is HC_SETUP_SBUF: param1 is the GPA of a sbuf_setup_param
// naming a host CPU, a buffer kind and the GPA of a shared_buf (magic
// SBUF_MAGIC, ele_num >= 2, ele_size >= 32 and a multiple of 8, size =
// ele_num*ele_size, wholly in the caller's memory). ember then puts one
// trace record per hypercall into the ACRN_TRACE buffer of CPU 0 (host
// calls) or of the calling vCPU's index. ACRN_HVLOG is accepted and gets no
// records; SEP and SoCWatch need PMU access ember lacks: -ENODEV. A GPA of 0
// removes the buffer.
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
		if _, _, ok := sbufCheck(c.mem, p.GPA); !ok {
			return acrn.EINVAL
		}
	}
	c.h.table.sbufs.set(sbufKey{p.PCPUID, p.SbufID}, sbufRef{mem: c.mem, gpa: p.GPA})
	return 0
}

// sbufTable holds the registered shared buffers. Every hypercall looks for
// its trace buffer, so the lookup stays off the VM table's lock, and costs
// one atomic load while no trace buffer is set.
type sbufTable struct {
	mu     sync.Mutex
	bufs   map[sbufKey]sbufRef // (pcpu, sbuf id) -> the buffer
	traces atomic.Int32        // entries of bufs with id SbufTrace
}

// set registers ref under k, or removes k's buffer when ref.gpa is 0.
func (t *sbufTable) set(k sbufKey, ref sbufRef) {
	t.mu.Lock()
	defer t.mu.Unlock()
	_, had := t.bufs[k]
	if had && k.id == acrn.SbufTrace {
		t.traces.Add(-1)
	}
	delete(t.bufs, k)
	if ref.gpa == 0 {
		return
	}
	if t.bufs == nil {
		t.bufs = map[sbufKey]sbufRef{}
	}
	t.bufs[k] = ref
	if k.id == acrn.SbufTrace {
		t.traces.Add(1)
	}
}

// forget removes every buffer in mem: its VM is going, and with it the
// memory the buffers are in.
func (t *sbufTable) forget(mem *memory.Guest) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for k, ref := range t.bufs {
		if ref.mem != mem {
			continue
		}
		delete(t.bufs, k)
		if k.id == acrn.SbufTrace {
			t.traces.Add(-1)
		}
	}
}

// sbufRef is a registered shared buffer: where it is.
type sbufRef struct {
	mem *memory.Guest
	gpa uint64
}

var traceSeq atomic.Uint64

// trace appends a hypercall record to the trace sbuf of the calling CPU.
// The header is re-validated on every write: the Service VM owns the memory.
func (h *Service) trace(c *call, rax uint64) {
	var cpu uint16
	if c.vcpu != nil {
		cpu = uint16(c.vcpu.ID() % runtime.NumCPU())
	}
	t := &h.table.sbufs
	if t.traces.Load() == 0 {
		return
	}
	t.mu.Lock() // one writer per buffer at a time
	defer t.mu.Unlock()
	ref, ok := t.bufs[sbufKey{cpu, acrn.SbufTrace}]
	if !ok {
		return
	}
	hdr, data, ok := sbufCheck(ref.mem, ref.gpa)
	if !ok {
		return
	}
	le := binary.LittleEndian
	sz := le.Uint32(hdr[sbufEleSize:])
	size := le.Uint32(hdr[sbufSize:])
	head := atomic.LoadUint32((*uint32)(unsafe.Pointer(&hdr[sbufHead])))
	tail := le.Uint32(hdr[sbufTail:])
	if tail%sz != 0 || tail >= size {
		return
	}
	next := (tail + sz) % size
	if next == head {
		le.PutUint32(hdr[sbufOverrun:], le.Uint32(hdr[sbufOverrun:])+1)
		return
	}
	rec := data[tail : tail+sz]
	clear(rec)
	le.PutUint64(rec[0:], uint64(time.Now().UnixNano()))
	le.PutUint64(rec[8:], TraceHypercall)
	le.PutUint64(rec[16:], uint64(c.id))
	le.PutUint64(rec[24:], rax)
	traceSeq.Add(1)
	atomic.StoreUint32((*uint32)(unsafe.Pointer(&hdr[sbufTail])), next)
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
