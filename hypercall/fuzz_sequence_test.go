package hypercall

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"runtime"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"

	"ember/acrn"
	"ember/acrn/iorequest"
	"ember/hv"
	"ember/ioreq"
	"ember/memory"
)

// FuzzHypercallSequence drives sequences of ACRN hypercalls, made as the host
// control plane, against a fresh service on fake machines, together with
// emulated accesses of the VMs' vCPU 0 that go to the host acting as their
// Service VM (SetServiceUpcall), which answers them in one of several ways,
// or not at all.
//
// The input is a list of records of seqRecord bytes, at most seqMaxOps of
// them: the first byte picks the operation (seqOps), the others are its
// arguments (see each operation's comment; bytes past the end of the input
// read as zero, and all-zero arguments make the valid, common case). Target
// VM IDs are mostly ones HC_CREATE_VM returned, sometimes others.
//
// Invariants: nothing panics; every hypercall returns 0 or the negation of
// an errno acrn defines, and returns promptly; a VM created by hypercall is
// always created, running, paused or powered-off, and in the state a
// successful lifecycle call leaves it in; no VM is closed with its run still
// going; every emulated access returns within the dispatcher's time-out,
// with all ones for a failed read; and once every VM the sequence created is
// destroyed and the service closed, no VM is left in the table, no access
// is blocked and the number of goroutines is back to what it was.
func FuzzHypercallSequence(f *testing.F) {
	seqCrashOutput(f)
	pulse = startPulse()
	f.Cleanup(pulse.close)
	for _, seed := range seqSeeds() {
		f.Add(seed)
	}
	f.Fuzz(runSequence)
}

// seqCrashOutput sends the panic and stacks of a crashing process to the
// file EMBER_FUZZ_CRASH_OUTPUT names, if set: go test -fuzz discards its
// workers' output, so a panic on a goroutine of the service (which no
// recover sees) otherwise leaves only "fuzzing process hung or terminated
// unexpectedly: exit status 2".
func seqCrashOutput(f *testing.F) {
	name := os.Getenv("EMBER_FUZZ_CRASH_OUTPUT")
	if name == "" {
		return
	}
	out, err := os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		f.Fatal(err)
	}
	if err := debug.SetCrashOutput(out, debug.CrashOptions{}); err != nil {
		f.Fatal(err)
	}
	out.Close()
}

// runSequence runs one input of FuzzHypercallSequence.
func runSequence(t *testing.T, data []byte) {
	base := runtime.NumGoroutine()
	s := newSeqState(t)
	watchdog := time.AfterFunc(seqHang, s.hung)
	defer watchdog.Stop()
	for i := 0; i < seqMaxOps && len(data) > 0; i++ {
		n := min(seqRecord, len(data))
		rec := data[:n]
		data = data[n:]
		op := int(rec[0]) % len(seqOps)
		s.op.Store(int32(op))
		seqOps[op].run(s, seqArgs(rec[1:]))
		s.checkStates()
	}
	s.teardown(base)
	s.report()
}

const (
	seqRecord = 16 // bytes per operation: opcode and arguments
	seqMaxOps = 32
	// seqSlowCall is how long a hypercall may take: well under a request's
	// time-out, so that one that waits on a request is caught.
	seqSlowCall = 750 * time.Millisecond
	// seqSlack is what an emulated access may take beyond the time-out.
	seqSlack = 500 * time.Millisecond
	// seqBeat is the period of the heartbeat (seqPulse).
	seqBeat = 10 * time.Millisecond
	// seqHang ends a fuzz worker whose iteration hangs, with every stack.
	seqHang = 30 * time.Second
)

// The operations, in opcode order.
const (
	opCreate = iota
	opRegions
	opIOReqBuffer
	opRegs
	opStart
	opPause
	opReset
	opDestroy
	opNotify
	opWriteProtect
	opIRQLine
	opMSI
	opEmulate
	opPage
	opUpcall
	opSettle
	opIntrMonitor
)

// seqOp is one kind of operation of a sequence.
type seqOp struct {
	name string
	run  func(s *seqState, a seqArgs)
}

var seqOps = [...]seqOp{
	opCreate:       {"HC_CREATE_VM", (*seqState).createVM},
	opRegions:      {"HC_VM_SET_MEMORY_REGIONS", (*seqState).setRegions},
	opIOReqBuffer:  {"HC_SET_IOREQ_BUFFER", (*seqState).setIOReqBuffer},
	opRegs:         {"HC_SET_VCPU_REGS", (*seqState).setRegs},
	opStart:        {"HC_START_VM", lifecycleOp(acrn.HCStartVM, "HC_START_VM", "running")},
	opPause:        {"HC_PAUSE_VM", lifecycleOp(acrn.HCPauseVM, "HC_PAUSE_VM", "paused", "powered-off")},
	opReset:        {"HC_RESET_VM", lifecycleOp(acrn.HCResetVM, "HC_RESET_VM", "created")},
	opDestroy:      {"HC_DESTROY_VM", (*seqState).destroy},
	opNotify:       {"HC_NOTIFY_REQUEST_FINISH", (*seqState).notify},
	opWriteProtect: {"HC_VM_WRITE_PROTECT_PAGE", (*seqState).writeProtect},
	opIRQLine:      {"HC_SET_IRQLINE", (*seqState).irqLine},
	opMSI:          {"HC_INJECT_MSI", (*seqState).injectMSI},
	opEmulate:      {"emulate", (*seqState).emulate},
	opPage:         {"page", (*seqState).page},
	opUpcall:       {"upcall", (*seqState).upcall},
	opSettle:       {"settle", (*seqState).settle},
	opIntrMonitor:  {"HC_VM_INTR_MONITOR", (*seqState).intrMonitor},
}

// seqArgs are an operation's argument bytes; bytes past the end read as 0.
type seqArgs []byte

func (a seqArgs) b(i int) byte {
	if i < len(a) {
		return a[i]
	}
	return 0
}

func (a seqArgs) u16(i int) uint16 { return uint16(a.b(i)) | uint16(a.b(i+1))<<8 }
func (a seqArgs) u32(i int) uint32 { return uint32(a.u16(i)) | uint32(a.u16(i+2))<<16 }
func (a seqArgs) u64(i int) uint64 { return uint64(a.u32(i)) | uint64(a.u32(i+4))<<32 }

// seqReply is how the host, as the Service VM, answers a request.
type seqReply uint8

const (
	replyAnswer    seqReply = iota // claim, fill in a read's value, complete, notify
	replyNoNotify                  // claim and complete, no notify (as Linux's HSM for a polling VM)
	replyUnclaimed                 // store COMPLETE over PENDING, then notify
	replyEarly                     // notify before completing, then answer
	replyTwice                     // answer, then notify twice
	replyClaim                     // claim, never complete
	replyIgnore                    // never look at the page
	replyError                     // the upcall fails
	replyLate                      // answer after a delay
	replyNum
)

// seqErrnos are the errnos acrn defines: a hypercall may fail with these.
var seqErrnos = map[acrn.Errno]bool{
	acrn.EPERM: true, acrn.EIO: true, acrn.ENOMEM: true, acrn.EACCES: true, acrn.EFAULT: true,
	acrn.EBUSY: true, acrn.ENODEV: true, acrn.EINVAL: true, acrn.ETIMEDOUT: true,
}

// seqQuiet is the logger of the fuzzed VMs: failed requests are expected.
var seqQuiet = slog.New(slog.DiscardHandler)

// seqRegion is a region HC_VM_SET_MEMORY_REGIONS added, for later operations
// to aim at.
type seqRegion struct{ gpa, size uint64 }

// seqState is one fuzz iteration: the service, what the sequence made, and
// the host's Service VM side.
type seqState struct {
	t   *testing.T
	h   *Service
	mem *memory.Guest

	ids     []uint16 // VM IDs HC_CREATE_VM returned, without repeats
	regions map[uint16][]seqRegion
	wp      map[uint16][]uint64 // pages write-protected
	// chaos is set once a request buffer overlaps the parameter pages:
	// parameters may then be overwritten, and results are not modelled.
	chaos bool
	op    atomic.Int32 // the operation running, for hung

	emus    sync.WaitGroup // emulated accesses in flight
	servers sync.WaitGroup // the Service VM's goroutines

	mu       sync.Mutex
	pages    map[uint16]uint64   // request buffer GPA per VM, as last set
	replies  map[uint16]seqReply // how the VM's next request is answered
	delays   map[uint16]time.Duration
	log      []string // what was done, for a failure's message
	failures []string
}

// newSeqState returns an iteration on a fresh service whose VMs are
// seqMachines, with the host's upcall handler registered.
func newSeqState(t *testing.T) *seqState {
	h := fakeService(t)
	s := &seqState{t: t, h: h, regions: map[uint16][]seqRegion{}, wp: map[uint16][]uint64{},
		pages: map[uint16]uint64{}, replies: map[uint16]seqReply{}, delays: map[uint16]time.Duration{}}
	h.make = s.maker(h.make)
	mem, err := h.ServiceMemory()
	if err != nil {
		t.Fatal(err)
	}
	s.mem = mem
	h.SetServiceUpcall(s.serviceUpcall)
	return s
}

func (s *seqState) logf(format string, args ...any) {
	s.mu.Lock()
	s.log = append(s.log, fmt.Sprintf(format, args...))
	s.mu.Unlock()
}

// fail records an invariant violation; report fails the test with them all.
func (s *seqState) fail(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	s.mu.Lock()
	s.failures = append(s.failures, msg)
	s.log = append(s.log, "  !! "+msg)
	s.mu.Unlock()
}

func (s *seqState) report() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.failures) > 0 {
		s.t.Fatalf("%d invariant violations:\n%s\nsequence:\n%s",
			len(s.failures), strings.Join(s.failures, "\n"), strings.Join(s.log, "\n"))
	}
}

// hung ends the process when an iteration hangs (a hypercall or the
// teardown blocked), with the sequence and every goroutine's stack.
func (s *seqState) hung() {
	s.mu.Lock()
	log := strings.Join(s.log, "\n")
	s.mu.Unlock()
	panic(fmt.Sprintf("FuzzHypercallSequence: iteration hung for %v in %s (or the teardown after it)\nsequence:\n%s\n\n%s",
		seqHang, seqOps[s.op.Load()].name, log, stacks()))
}

// stacks returns every goroutine's stack.
func stacks() string {
	buf := make([]byte, 1<<20)
	return string(buf[:runtime.Stack(buf, true)])
}

// call makes a hypercall as the host control plane and checks its result:
// 0 or a negative errno acrn defines, returned within seqSlowCall unless it
// was the host that was slow (slowWatch).
func (s *seqState) call(name string, id acrn.ID, p1, p2 uint64) acrn.Errno {
	w := watchSlow()
	r := s.h.Hypercall(id, p1, p2)
	d, blocked := w.stop()
	d -= pulse.lost(w.start, time.Now())
	e, ok := seqErrno(r)
	s.logf("%s(%#x, %#x) = %s", name, p1, p2, errnoString(e))
	if !ok {
		s.fail("%s(%#x, %#x) returned %#x: neither 0 nor a negative errno", name, p1, p2, r)
	}
	switch {
	case d > seqSlowCall && blocked != "":
		s.fail("%s(%#x, %#x) took %v, waiting in Go:\n%s", name, p1, p2, d, blocked)
	case d > seqSlowCall:
		s.logf("%s(%#x, %#x) took %v in the kernel or waiting for a CPU (the host was slow)", name, p1, p2, d)
	}
	return e
}

// slowWatch looks, while a hypercall runs past seqSlowCall, at the
// goroutines making hypercalls. One blocked in Go (on a channel, a lock, a
// timer: a request's time-out, say) makes a slow hypercall a violation;
// one in a system call or waiting for a CPU is the host being slow (on a
// loaded machine a munmap of one page has taken seconds).
type slowWatch struct {
	start time.Time
	timer *time.Timer

	mu      sync.Mutex
	stopped bool
	blocked string // the first such stack seen
}

func watchSlow() *slowWatch {
	w := &slowWatch{start: time.Now()}
	w.timer = time.AfterFunc(seqSlowCall, w.sample)
	return w
}

// sample looks now, and again every 100 ms until stop.
func (w *slowWatch) sample() {
	b := blockedHypercall()
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.stopped {
		return
	}
	if w.blocked == "" {
		w.blocked = b
	}
	w.timer.Reset(100 * time.Millisecond)
}

// stop returns how long the hypercall took and a stack it was blocked on.
func (w *slowWatch) stop() (time.Duration, string) {
	w.timer.Stop()
	w.mu.Lock()
	defer w.mu.Unlock()
	w.stopped = true
	return time.Since(w.start), w.blocked
}

// blockedHypercall returns the stack of a goroutine that is in a hypercall
// and blocked in Go, or "".
func blockedHypercall() string {
	for _, g := range strings.Split(stacks(), "\n\n") {
		i, j := strings.Index(g, "["), strings.Index(g, "]")
		if !strings.Contains(g, "ember/hypercall.(*Service).Hypercall(") || i < 0 || j < i {
			continue
		}
		switch state := g[i+1 : j]; {
		case strings.HasPrefix(state, "running"), strings.HasPrefix(state, "runnable"),
			strings.HasPrefix(state, "syscall"), strings.HasPrefix(state, "preempted"),
			strings.HasPrefix(state, "GC assist"):
		default:
			return g
		}
	}
	return ""
}

// errnoString is e for a log: "0" for success.
func errnoString(e acrn.Errno) string {
	if e == 0 {
		return "0"
	}
	return e.Error()
}

// seqErrno returns the errno of a hypercall's result and whether the result
// is one a hypercall may return.
func seqErrno(r uint64) (acrn.Errno, bool) {
	if r == 0 {
		return 0, true
	}
	var e acrn.Errno
	if !errors.As(acrn.ResultError(r), &e) {
		return 0, false
	}
	return e, e.Result() == r && seqErrnos[e]
}

// vmID picks a target: mostly a VM the sequence created, else one of a few
// IDs that exist or never can (the Service VM, free, out of range, wide).
func (s *seqState) vmID(b byte) uint64 {
	if b < 0xe0 && len(s.ids) > 0 {
		return uint64(s.ids[int(b)%len(s.ids)])
	}
	return [...]uint64{0, 1, 2, MaxVMs - 1, MaxVMs, 0xffff, 1<<16 | 1, 1<<32 | 1}[b%8]
}

func (s *seqState) addID(id uint16) {
	for _, o := range s.ids {
		if o == id {
			return
		}
	}
	s.ids = append(s.ids, id)
}

// expectState checks that VM id is in the table in one of the states want.
func (s *seqState) expectState(op string, id uint16, want ...string) {
	if s.chaos {
		return
	}
	st, ok := s.h.LookupVM(id)
	if !ok {
		s.fail("after %s: VM %d is not in the table", op, id)
		return
	}
	for _, w := range want {
		if st.State == w {
			return
		}
	}
	s.fail("after %s: VM %d is %q, want one of %q", op, id, st.State, want)
}

// checkStates checks every VM the sequence created that is still there.
func (s *seqState) checkStates() {
	for _, id := range s.ids {
		st, ok := s.h.LookupVM(id)
		if !ok {
			continue
		}
		switch st.State {
		case "created", "running", "paused", "powered-off":
		default:
			s.fail("VM %d is in state %q", id, st.State)
		}
		if !st.Hypercall {
			s.fail("VM %d, made by HC_CREATE_VM, is not marked so", id)
		}
	}
}

// createVM is HC_CREATE_VM. a0: vcpu_num mod 18. a1: bit 0 IO completion
// polling, 1 secure world, 2 LAPIC passthrough, 3 known flags a2..a3, 4 the
// unknown flag bit 15+a4%49, 5 cpu_affinity a5; bits 6 and 7 both: the
// structure straddles the end of service memory.
func (s *seqState) createVM(a seqArgs) {
	sel := a.b(1)
	cr := acrn.VMCreation{VCPUNum: uint16(a.b(0) % 18)}
	for bit, flag := range []uint64{acrn.GuestFlagIOCompletionPolling, acrn.GuestFlagSecureWorldEnabled, acrn.GuestFlagLAPICPassthrough} {
		if sel&(1<<bit) != 0 {
			cr.VMFlag |= flag
		}
	}
	if sel&8 != 0 {
		cr.VMFlag |= uint64(a.u16(2)) & knownGuestFlags
	}
	if sel&0x10 != 0 {
		cr.VMFlag |= 1 << (15 + a.b(4)%49)
	}
	if sel&0x20 != 0 {
		cr.CPUAffinity = uint64(a.b(5))
	}
	p := uint64(gpaParam)
	if sel&0xc0 == 0xc0 {
		p = gpaBeyond - 8
	}
	hostWrite(s.t, s.h, gpaParam, &cr)
	if s.call("HC_CREATE_VM", acrn.HCCreateVM, p, 0) != 0 {
		return
	}
	var out acrn.VMCreation
	hostRead(s.t, s.h, gpaParam, &out)
	if s.chaos {
		return
	}
	want := cr.VCPUNum
	if cr.CPUAffinity == 0 && want == 0 {
		want = 1
	}
	if cr.CPUAffinity == 0 && out.VCPUNum != want {
		s.fail("HC_CREATE_VM(vcpu_num %d): %d vCPUs", cr.VCPUNum, out.VCPUNum)
	}
	s.addID(out.VMID)
	s.regions[out.VMID], s.wp[out.VMID] = nil, nil
	s.expectState("HC_CREATE_VM", out.VMID, "created")
}

// seqProts are the prot values a region may get: valid ones, then two
// invalid ones.
var seqProts = [8]uint32{
	acrn.MemAccessRWX | acrn.MemTypeWB, acrn.MemAccessRead | acrn.MemTypeUC,
	acrn.MemAccessRead | acrn.MemAccessWrite | acrn.MemTypeWB, acrn.MemAccessRead | acrn.MemAccessExec | acrn.MemTypeWT,
	0, acrn.MemAccessRead | acrn.MemTypeWP, 0x800, acrn.MemTypeWB | acrn.MemTypeUC,
}

// setRegions is HC_VM_SET_MEMORY_REGIONS. a0: target. a1: mr_num 1+a1%3;
// 0xff: 129; 0xfe: 0; 0xfd: the array beyond service memory. a2..a13: up to
// three regions of four bytes (region).
func (s *seqState) setRegions(a seqArgs) {
	id := s.vmID(a.b(0))
	n := uint32(1 + a.b(1)%3)
	arr := uint64(gpaArray)
	switch a.b(1) {
	case 0xff:
		n = acrn.SetRegionsMaxNum + 1
	case 0xfe:
		n = 0
	case 0xfd:
		arr = gpaBeyond - 32
	}
	var added []seqRegion
	for i := 0; i < int(min(n, 3)); i++ {
		mr := s.region(uint16(id), a[min(len(a), 2+4*i):])
		hostWrite(s.t, s.h, gpaArray+uint64(i)*acrn.VMMemoryRegionSize, &mr)
		if mr.Type == acrn.MRAdd {
			added = append(added, seqRegion{mr.GPA, mr.Size})
		}
	}
	p := hostWrite(s.t, s.h, gpaParam+0x800, &acrn.SetRegions{VMID: uint16(id), MRNum: n, RegionsGPA: arr})
	if s.call("HC_VM_SET_MEMORY_REGIONS", acrn.HCVMSetMemoryRegions, p, 0) == 0 {
		s.regions[uint16(id)] = append(s.regions[uint16(id)], added...)
	}
}

// region decodes one vm_memory_region from c0..c3. c0: bits 0-1 the type
// (add, add, del, modify; 0xf8 and up: type 1), 2-4 the prot (seqProts), 5
// reuse a region added before (number c1), 6 GPA above 4 GiB. c1: GPA in 64
// KiB units (0xff: unaligned). c2: size 1+c2 pages (0xff: 0, 0xfe:
// unaligned, 0xfd: 2^46). c3: Service VM GPA gpaRAM+(c3&0x7f)*64 KiB
// (0xff: the last page of service memory, 0xfe: unaligned).
func (s *seqState) region(id uint16, c seqArgs) acrn.VMMemoryRegion {
	c0, c1, c2, c3 := c.b(0), c.b(1), c.b(2), c.b(3)
	mr := acrn.VMMemoryRegion{
		Type: [4]uint32{acrn.MRAdd, acrn.MRAdd, acrn.MRDel, acrn.MRModify}[c0&3],
		Prot: seqProts[c0>>2&7],
		GPA:  uint64(c1) << 16,
		Size: uint64(1+c2) << 12,
	}
	if c0 >= 0xf8 {
		mr.Type = 1
	}
	switch c1 {
	case 0xff:
		mr.GPA = 0x10010
	}
	switch c2 {
	case 0xff:
		mr.Size = 0
	case 0xfe:
		mr.Size = 0x10
	case 0xfd:
		mr.Size = maxGPA
	}
	if rs := s.regions[id]; c0&0x20 != 0 && len(rs) > 0 {
		r := rs[int(c1)%len(rs)]
		mr.GPA, mr.Size = r.gpa, r.size
	}
	if c0&0x40 != 0 {
		mr.GPA += 1 << 32
	}
	mr.SOSVMGPA = gpaRAM + uint64(c3&0x7f)<<16
	switch c3 {
	case 0xff:
		mr.SOSVMGPA = gpaBeyond - 0x1000
	case 0xfe:
		mr.SOSVMGPA = gpaRAM + 0x800
	}
	return mr
}

// setIOReqBuffer is HC_SET_IOREQ_BUFFER. a0: target. a1: the page,
// gpaIOReq + (a1%8) pages, so VMs may share one; 0xf8: the parameter page;
// 0xf9: unaligned; 0xfa: beyond service memory; 0xfb: straddling its end;
// 0xfc and up: the region array's page. a2: 0xfe, 0xff: param2 outside
// service memory.
func (s *seqState) setIOReqBuffer(a seqArgs) {
	id := s.vmID(a.b(0))
	page := gpaIOReq + uint64(a.b(1)%8)*memory.PageSize
	switch b := a.b(1); {
	case b == 0xf8:
		page = gpaParam
	case b == 0xf9:
		page = gpaIOReq + 0x10
	case b == 0xfa:
		page = gpaBeyond
	case b == 0xfb:
		page = gpaBeyond - 0x800
	case b >= 0xfc:
		page = gpaArray
	}
	p := hostWrite(s.t, s.h, gpaParam, &iorequest.IOReqBuffer{IOReqBuf: page})
	switch a.b(2) {
	case 0xfe:
		p = gpaBeyond
	case 0xff:
		p = gpaBeyond - 4
	}
	if s.call("HC_SET_IOREQ_BUFFER", acrn.HCSetIOReqBuffer, id, p) != 0 {
		return
	}
	if page == gpaParam || page == gpaArray {
		s.chaos = true
	}
	s.mu.Lock()
	s.pages[uint16(id)] = page
	s.mu.Unlock()
}

// setRegs is HC_SET_VCPU_REGS. a0: target. a1: vcpu_id 0, a1&0xf from 0xf0
// on. a2: bit 0 protected mode with CR0 a3..a6. a7 0xff: param2 outside
// service memory. a8..a9: RIP.
func (s *seqState) setRegs(a seqArgs) {
	id := s.vmID(a.b(0))
	regs := acrn.VCPURegs{VCPURegs: acrn.Regs{RIP: uint64(a.u16(8)), CR0: 0x60000010, CSAR: 0x9b, CSLimit: 0xffff, RFlags: 2}}
	if b := a.b(1); b >= 0xf0 {
		regs.VCPUID = uint16(b & 0xf)
	}
	if a.b(2)&1 != 0 {
		regs.VCPURegs.CR0 = uint64(a.u32(3)) | 1
	}
	p := hostWrite(s.t, s.h, gpaParam, &regs)
	if a.b(7) == 0xff {
		p = gpaBeyond
	}
	s.call("HC_SET_VCPU_REGS", acrn.HCSetVCPURegs, id, p)
}

// lifecycleOp returns the operation making hypercall hc on target a0; on
// success the VM must be in one of the states want.
func lifecycleOp(hc acrn.ID, name string, want ...string) func(*seqState, seqArgs) {
	return func(s *seqState, a seqArgs) {
		id := s.vmID(a.b(0))
		if s.call(name, hc, id, 0) == 0 {
			s.expectState(name, uint16(id), want...)
		}
	}
}

// destroy is HC_DESTROY_VM of target a0; on success the VM is gone.
func (s *seqState) destroy(a seqArgs) {
	id := s.vmID(a.b(0))
	if s.call("HC_DESTROY_VM", acrn.HCDestroyVM, id, 0) != 0 {
		return
	}
	if _, ok := s.h.LookupVM(uint16(id)); ok {
		s.fail("VM %d is still in the table after HC_DESTROY_VM", id)
	}
	delete(s.regions, uint16(id))
	delete(s.wp, uint16(id))
}

// notify is HC_NOTIFY_REQUEST_FINISH. a0: target. a1: vCPU 0, a1&0x1f from
// 0x80 on.
func (s *seqState) notify(a seqArgs) {
	vcpu := uint64(0)
	if b := a.b(1); b >= 0x80 {
		vcpu = uint64(b & 0x1f)
	}
	s.call("HC_NOTIFY_REQUEST_FINISH", acrn.HCNotifyRequestFinish, s.vmID(a.b(0)), vcpu)
}

// writeProtect is HC_VM_WRITE_PROTECT_PAGE. a0: target. a1: bit 0 set.
// a2 below 0xc0: page a4 of the VM's region a3 (if it has one); 0xff: GPA
// a5..a12 as it is; else GPA a3<<12|a4<<20. a14 0xff: param2 outside
// service memory.
func (s *seqState) writeProtect(a seqArgs) {
	id := s.vmID(a.b(0))
	wp := acrn.WPData{Set: a.b(1) & 1, GPA: uint64(a.b(3))<<12 | uint64(a.b(4))<<20}
	rs := s.regions[uint16(id)]
	switch {
	case a.b(2) < 0xc0 && len(rs) > 0:
		r := rs[int(a.b(3))%len(rs)]
		wp.GPA = r.gpa + uint64(a.b(4))%(r.size>>12)<<12
	case a.b(2) == 0xff:
		wp.GPA = a.u64(5)
	}
	p := hostWrite(s.t, s.h, gpaParam, &wp)
	if a.b(14) == 0xff {
		p = gpaBeyond
	}
	if s.call("HC_VM_WRITE_PROTECT_PAGE", acrn.HCVMWriteProtectPage, id, p) == 0 && wp.Set != 0 {
		s.wp[uint16(id)] = append(s.wp[uint16(id)], wp.GPA)
	}
}

// irqLine is HC_SET_IRQLINE. a0: target. a1: GSI a1%26. a2: operation a2%5.
// a3 0xff: param2 a4..a11 as it is.
func (s *seqState) irqLine(a seqArgs) {
	p := acrn.IRQLineOps{GSI: uint32(a.b(1) % 26), Op: uint32(a.b(2) % 5)}.Param()
	if a.b(3) == 0xff {
		p = a.u64(4)
	}
	s.call("HC_SET_IRQLINE", acrn.HCSetIRQLine, s.vmID(a.b(0)), p)
}

// injectMSI is HC_INJECT_MSI. a0: target. a1: destination APIC ID. a2: bit
// 0 address a4..a7 as it is, 1 address bits above 32, 2 data above 32
// bits; 0xff: param2 outside service memory. a3: vector.
func (s *seqState) injectMSI(a seqArgs) {
	f := a.b(2)
	m := acrn.MSIEntry{MSIAddr: 0xfee00000 | uint64(a.b(1))<<12, MSIData: uint64(a.b(3))}
	if f&1 != 0 {
		m.MSIAddr = uint64(a.u32(4))
	}
	if f&2 != 0 {
		m.MSIAddr |= 1 << 32
	}
	if f&4 != 0 {
		m.MSIData |= 1 << 32
	}
	p := hostWrite(s.t, s.h, gpaParam, &m)
	if f == 0xff {
		p = gpaBeyond
	}
	s.call("HC_INJECT_MSI", acrn.HCInjectMSI, s.vmID(a.b(0)), p)
}

// emulate makes vCPU 0 of target a0 perform an access, on a goroutine, if
// the VM is in a run, not paused, and vCPU 0 is not busy with an earlier
// one. a1: kind a1%5: port read, port write, MMIO read, MMIO write, write
// to a write-protected page (a2: which). a2..a5: port or address. a6: size.
// a7..a10: value. a11: how the Service VM answers (seqReply, a11%replyNum).
// a12: its delay for replyLate, in 20 µs.
func (s *seqState) emulate(a seqArgs) {
	id := uint16(s.vmID(a.b(0)))
	e := s.h.table.ids.Lookup(uint64(id))
	if e == nil {
		s.logf("emulate on VM %d: no such VM", id)
		return
	}
	m, ok := e.vm.(*seqMachine)
	if !ok {
		return
	}
	req := s.request(id, a)
	if m.Config().CompletionPolling {
		req.CompletionPolling = 1 // as hv's vCPU sets it
	}
	s.mu.Lock()
	s.replies[id] = seqReply(a.b(11) % uint8(replyNum))
	s.delays[id] = time.Duration(a.b(12)) * 20 * time.Microsecond
	s.mu.Unlock()
	started := m.access(&s.emus, func() { s.access(m, id, req) })
	addr, _ := ioreq.Target(&req)
	s.logf("emulate on VM %d: %v %v %#x, reply %d: started %v", id, req.Type, ioreq.Dir(&req), addr, a.b(11)%uint8(replyNum), started)
}

// request builds the access of an emulate operation.
func (s *seqState) request(id uint16, a seqArgs) iorequest.IORequest {
	dir := iorequest.DirRead
	if a.b(1)&1 != 0 {
		dir = iorequest.DirWrite
	}
	switch a.b(1) % 5 {
	case 0, 1:
		return ioreq.PIORequest(dir, a.u16(2), [3]int{1, 2, 4}[a.b(6)%3], a.u32(7))
	case 2, 3:
		return ioreq.MMIORequest(dir, uint64(a.u32(2)), [4]int{1, 2, 4, 8}[a.b(6)%4], uint64(a.u32(7)))
	}
	gpa := uint64(a.u16(2)) << 12
	if ps := s.wp[id]; len(ps) > 0 {
		gpa = ps[int(a.b(2))%len(ps)]
	}
	return ioreq.WPRequest(gpa+uint64(a.b(4)&0xf8), [4]int{1, 2, 4, 8}[a.b(6)%4], uint64(a.u32(7)))
}

// access is one emulated access of vCPU 0 of m, on its own goroutine: it
// must return within the time-out, with all ones for a failed read and 0
// for a write that succeeded. (A request Validate refuses, such as a
// 4-byte access to port 0xffff, fails with Validate's error, not a
// *ioreq.RequestError, and all ones even for a write: the vCPU ignores a
// write's value, so that is not checked.)
func (s *seqState) access(m *seqMachine, id uint16, req iorequest.IORequest) {
	d := m.IORequests()
	start := time.Now()
	v, err := d.Emulate(0, &req)
	took := time.Since(start)
	if took-pulse.lost(start, time.Now()) > d.Timeout()+seqSlack {
		s.fail("VM %d: an access took %v (time-out %v): %v", id, took, d.Timeout(), err)
	}
	_, size := ioreq.Target(&req)
	switch {
	case ioreq.Dir(&req) == iorequest.DirWrite && err == nil && v != 0:
		s.fail("VM %d: a write returned %#x", id, v)
	case ioreq.Dir(&req) == iorequest.DirRead && err != nil && v != ioreq.AllOnes(size):
		s.fail("VM %d: a failed read of %d bytes returned %#x, want all ones", id, size, v)
	}
	s.logf("  access of VM %d returned %#x after %v: %v", id, v, took.Round(time.Microsecond), err)
}

// page acts on a request buffer page as a Service VM may, whatever the
// life cycle says. a0: the page of target a0 (or gpaIOReq+a0%8 pages). a1:
// slot 0, a1&0xf from 0x80 on. a2%7: claim, complete, store COMPLETE, store
// FREE, store PENDING, store a3..a6 as the state, write a3..a6 into the slot
// at offset a7&0xfc.
func (s *seqState) page(a seqArgs) {
	id := uint16(s.vmID(a.b(0)))
	s.mu.Lock()
	gpa, ok := s.pages[id]
	s.mu.Unlock()
	if !ok {
		gpa = gpaIOReq + uint64(a.b(0)%8)*memory.PageSize
	}
	slot := 0
	if b := a.b(1); b >= 0x80 {
		slot = int(b & 0xf)
	}
	buf := s.buffer(gpa)
	if buf == nil {
		return
	}
	store := func(v uint32) { atomic.StoreUint32(slotState(buf.Bytes(), slot), v) }
	action := a.b(2) % 7
	switch action {
	case 0:
		buf.Claim(slot)
	case 1:
		buf.Complete(slot)
	case 2:
		store(uint32(iorequest.StateComplete))
	case 3:
		store(uint32(iorequest.StateFree))
	case 4:
		store(uint32(iorequest.StatePending))
	case 5:
		store(a.u32(3))
	case 6:
		off := iorequest.SlotOffset(slot) + int(a.b(7)&0xfc)
		binary.LittleEndian.PutUint32(buf.Bytes()[off:], a.u32(3))
	}
	s.logf("page %#x slot %d: action %d", gpa, slot, action)
}

// buffer returns the request buffer page at gpa in service memory, or nil.
func (s *seqState) buffer(gpa uint64) *ioreq.Buffer {
	b, err := s.mem.Slice(gpa, iorequest.RequestBufferSize)
	if err != nil {
		return nil
	}
	buf, err := ioreq.NewBufferBytes(b)
	if err != nil {
		return nil
	}
	return buf
}

// upcall registers the host's upcall handler (a0 bit 0 clear) or removes it
// (set), for request buffers set from now on.
func (s *seqState) upcall(a seqArgs) {
	if a.b(0)&1 != 0 {
		s.h.SetServiceUpcall(nil)
		s.logf("upcall handler removed")
		return
	}
	s.h.SetServiceUpcall(s.serviceUpcall)
	s.logf("upcall handler registered")
}

// intrMonitor is HC_VM_INTR_MONITOR. a0: target. a1%3: INTR_CMD_GET_DATA
// with buf_cnt a2%50, INTR_CMD_DELAY_INT by a2%4 ms (a2 0xff: a3..a4 ms),
// or an unknown command.
func (s *seqState) intrMonitor(a seqArgs) {
	m := acrn.IntrMonitor{Cmd: uint32(a.b(1) % 3), BufCnt: uint32(a.b(2) % 50)}
	if m.Cmd == acrn.IntrCmdDelayInt {
		m.Buffer[0] = uint64(a.b(2) % 4)
		if a.b(2) == 0xff {
			m.Buffer[0] = uint64(a.u16(3))
		}
	}
	s.call("HC_VM_INTR_MONITOR", acrn.HCVMIntrMonitor, s.vmID(a.b(0)), hostWrite(s.t, s.h, gpaParam, &m))
}

// settle gives the goroutines (a0%8)*250 µs, or more: the sleep may take
// a millisecond or two.
func (s *seqState) settle(a seqArgs) {
	time.Sleep(time.Duration(a.b(0)%8) * 250 * time.Microsecond)
}

var errSeqUpcall = errors.New("the Service VM refuses the upcall")

// serviceUpcall is the host's upcall handler: it answers the request on a
// goroutine of its own, as the last emulate operation on the VM said.
func (s *seqState) serviceUpcall(vmid uint16, vcpu int) error {
	s.mu.Lock()
	reply, delay := s.replies[vmid], s.delays[vmid]
	gpa, ok := s.pages[vmid]
	s.mu.Unlock()
	if reply == replyError {
		return errSeqUpcall
	}
	if !ok {
		return nil
	}
	s.servers.Add(1)
	go func() {
		defer s.servers.Done()
		s.serve(vmid, vcpu, gpa, reply, delay)
	}()
	return nil
}

// serve answers VM vmid's request of vCPU vcpu in the page at gpa.
func (s *seqState) serve(vmid uint16, vcpu int, gpa uint64, reply seqReply, delay time.Duration) {
	buf := s.buffer(gpa)
	if buf == nil || vcpu < 0 || vcpu >= iorequest.IORequestMax {
		s.fail("upcall for VM %d vCPU %d with page %#x", vmid, vcpu, gpa)
		return
	}
	notify := func() {
		s.call("  HC_NOTIFY_REQUEST_FINISH (Service VM)", acrn.HCNotifyRequestFinish, uint64(vmid), uint64(vcpu))
	}
	switch reply {
	case replyIgnore:
	case replyClaim:
		buf.Claim(vcpu)
	case replyUnclaimed:
		atomic.StoreUint32(slotState(buf.Bytes(), vcpu), uint32(iorequest.StateComplete))
		notify()
	case replyNoNotify:
		s.answer(buf, vcpu)
	case replyEarly:
		notify()
		s.answer(buf, vcpu)
		notify()
	case replyTwice:
		s.answer(buf, vcpu)
		notify()
		notify()
	case replyLate:
		time.Sleep(delay)
		fallthrough
	default:
		s.answer(buf, vcpu)
		notify()
	}
}

// answer claims the request in slot i, puts a read's value in it and
// completes it.
func (s *seqState) answer(buf *ioreq.Buffer, i int) {
	if buf.Claim(i) != nil {
		return
	}
	if req, err := buf.Request(i); err == nil && req.Validate() == nil && ioreq.Dir(&req) == iorequest.DirRead {
		ioreq.SetValue(&req, 0x5eedc0de5eedc0de)
		buf.WriteBody(i, &req)
	}
	buf.Complete(i)
}

// teardown destroys every VM the sequence created and closes the service,
// then checks that nothing is left: no VM in the table, no access blocked,
// no goroutine more than base.
func (s *seqState) teardown(base int) {
	for _, id := range s.ids {
		for _, hc := range []acrn.ID{acrn.HCPauseVM, acrn.HCDestroyVM} {
			if e := s.call(fmt.Sprintf("%v (teardown)", hc), hc, uint64(id), 0); e != 0 && e != acrn.EINVAL {
				s.fail("teardown: %v(%d) = %v", hc, id, e)
			}
		}
	}
	s.h.Close()
	if !waitFor(&s.emus, ioreq.DefaultTimeout+seqSlack) {
		s.fail("an emulated access is still blocked %v after its VM was destroyed:\n%s", ioreq.DefaultTimeout+seqSlack, stacks())
		s.report()
	}
	if !waitFor(&s.servers, seqSlack) {
		s.fail("the Service VM's goroutines are still blocked:\n%s", stacks())
		s.report()
	}
	for id := range uint16(MaxVMs) {
		if st, ok := s.h.LookupVM(id); ok {
			s.fail("VM %d (%+v) is still in the table after the service closed", id, st)
		}
	}
	s.checkGoroutines(base)
	s.mem.Close() // the service keeps its memory for its lifetime
}

// waitFor waits for wg, at most d of the time the process ran (seqPulse);
// it reports whether wg was done.
func waitFor(wg *sync.WaitGroup, d time.Duration) bool {
	done := make(chan struct{})
	go func() {
		wg.Wait()
		close(done)
	}()
	return pulse.await(func() bool {
		select {
		case <-done:
			return true
		default:
			return false
		}
	}, done, d)
}

// checkGoroutines waits up to 2 s (of the time the process ran) for the
// number of goroutines to come back to base.
func (s *seqState) checkGoroutines(base int) {
	back := func() bool { return runtime.NumGoroutine() <= base }
	if !pulse.await(back, nil, 2*time.Second) {
		s.fail("%d goroutines 2 s after teardown, %d before the sequence:\n%s", runtime.NumGoroutine(), base, stacks())
	}
}

// seqPulse notices when the process does not run: a goroutine wakes every
// seqBeat and records each time it woke late. This package's fuzz workers
// have been seen starved for seconds on a loaded host (a runnable goroutine
// not run, a one-page munmap taking 4 s); a deadline is extended by such
// time, so that only what is really stuck fails.
type seqPulse struct {
	stop, done chan struct{}

	mu     sync.Mutex
	stalls []seqStall // the latest, oldest first
}

// seqStall is a time the heartbeat did not run.
type seqStall struct{ from, to time.Time }

// pulse is the heartbeat of the fuzz target's run.
var pulse *seqPulse

func startPulse() *seqPulse {
	p := &seqPulse{stop: make(chan struct{}), done: make(chan struct{})}
	go p.run()
	return p
}

func (p *seqPulse) run() {
	defer close(p.done)
	tick := time.NewTicker(seqBeat)
	defer tick.Stop()
	last := time.Now()
	for {
		select {
		case <-p.stop:
			return
		case <-tick.C:
		}
		now := time.Now()
		if now.Sub(last) > 5*seqBeat {
			p.mu.Lock()
			p.stalls = append(p.stalls, seqStall{last.Add(seqBeat), now})
			if len(p.stalls) > 256 {
				p.stalls = p.stalls[1:]
			}
			p.mu.Unlock()
		}
		last = now
	}
}

// lost returns how much of [from, to] the process spent not running.
func (p *seqPulse) lost(from, to time.Time) time.Duration {
	p.mu.Lock()
	defer p.mu.Unlock()
	var d time.Duration
	for _, st := range p.stalls {
		if a, b := maxTime(st.from, from), minTime(st.to, to); b.After(a) {
			d += b.Sub(a)
		}
	}
	return d
}

// await polls ok until it holds, or until d of the time the process ran
// has passed; it reports whether ok held. It looks again whenever wake is
// ready (nil: never), else after yielding, then every beat. A stall the
// heartbeat has not recorded yet gets a few beats to be.
func (p *seqPulse) await(ok func() bool, wake <-chan struct{}, d time.Duration) bool {
	start := time.Now()
	for n := 0; !ok(); n++ {
		if time.Since(start)-p.lost(start, time.Now()) > d {
			time.Sleep(3 * seqBeat)
			if time.Since(start)-p.lost(start, time.Now()) > d+3*seqBeat {
				return ok()
			}
		}
		if n < 100 {
			runtime.Gosched() // what we wait for is usually a goroutine about to end
			continue
		}
		select {
		case <-wake:
		case <-time.After(seqBeat):
		}
	}
	return true
}

func (p *seqPulse) close() {
	close(p.stop)
	<-p.done
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

// maker wraps the fake machines inner makes into seqMachines with quiet
// dispatchers.
func (s *seqState) maker(inner machineMaker) machineMaker {
	return func(cfg hv.Config) (Machine, error) {
		m, err := inner(cfg)
		if err != nil {
			return nil, err
		}
		fm := m.(*fakeMachine)
		fm.disp = ioreq.NewDispatcher(fm.disp.Buffer(), fm.disp.Router(), ioreq.Config{Logger: seqQuiet})
		return &seqMachine{fakeMachine: fm, s: s}, nil
	}
}

// seqMachine is a fake machine whose vCPU 0 the fuzz target drives. As on
// hv.VM, accesses happen only during a run, and the end of a run fails the
// request its vCPU waits on (Dispatcher.Abort) and waits for the vCPU, so
// that no access outlives the run, nor the request buffer Close unmaps.
type seqMachine struct {
	*fakeMachine
	s *seqState

	mu   sync.Mutex
	run  *sync.WaitGroup // the current run's accesses; nil between runs
	busy bool            // vCPU 0 has an access in flight
}

func (m *seqMachine) Logger() *slog.Logger { return seqQuiet }

// Start begins a run that lasts until it is stopped.
func (m *seqMachine) Start() *hv.Background {
	r := new(sync.WaitGroup)
	m.disp.Reopen()
	m.mu.Lock()
	m.run = r
	m.mu.Unlock()
	return hv.Go(func(ctx context.Context) (hv.Result, error) {
		<-ctx.Done()
		m.endRun(r)
		return hv.Result{Reason: hv.StopHost}, nil
	})
}

// endRun ends run r as hv.VM.Run ends: no access starts from now, the one
// waiting for its client fails at once, and the run is over only when vCPU
// 0 is back.
func (m *seqMachine) endRun(r *sync.WaitGroup) {
	m.mu.Lock()
	if m.run == r {
		m.run = nil
	}
	m.mu.Unlock()
	m.disp.Abort()
	r.Wait()
}

// Close closes the machine; hv.VM.Close refuses (ErrRunning) a VM whose run
// is going, so the service must have stopped it.
func (m *seqMachine) Close() error {
	m.mu.Lock()
	r := m.run
	m.mu.Unlock()
	if r != nil {
		m.s.fail("VM %d closed while its run is going (hv.VM.Close would refuse)", m.cfg.ID)
		m.endRun(r)
	}
	return m.fakeMachine.Close()
}

// access runs f as vCPU 0's access on a goroutine of its own, counted by
// wg, if the VM is in a run, not paused, and vCPU 0 is free; it reports
// whether it did.
func (m *seqMachine) access(wg *sync.WaitGroup, f func()) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.run == nil || m.busy || m.Paused() {
		return false
	}
	m.busy = true
	r := m.run
	r.Add(1)
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer r.Done()
		defer m.idle()
		f()
	}()
	return true
}

func (m *seqMachine) idle() {
	m.mu.Lock()
	m.busy = false
	m.mu.Unlock()
}

// seqRec is one record of a seed: the opcode and its arguments.
func seqRec(op byte, args ...byte) []byte {
	r := make([]byte, seqRecord)
	r[0] = op
	copy(r[1:], args)
	return r
}

// seqSeq joins records into an input.
func seqSeq(recs ...[]byte) []byte {
	var b []byte
	for _, r := range recs {
		b = append(b, r...)
	}
	return b
}

// seqSeeds are the seed inputs: the life cycle with each way of answering,
// completion polling, shared and misplaced pages, write protection, the
// upcall removed, delayed injections, the documented failures, and a full
// VM table.
func seqSeeds() [][]byte {
	// A VM with 1012 KiB at GPA 0 and its own request page (VM n: page n).
	vm := func(n byte, create ...byte) [][]byte {
		return [][]byte{seqRec(opCreate, create...), seqRec(opRegions, n, 0, 0, 0, 0xfc, 0),
			seqRec(opIOReqBuffer, n, n), seqRec(opRegs, n)}
	}
	cat := func(parts ...[][]byte) []byte {
		var all [][]byte
		for _, p := range parts {
			all = append(all, p...)
		}
		return seqSeq(all...)
	}
	read := func(n, reply byte) []byte { return seqRec(opEmulate, n, 0, 0xa0, 0x05, 0, 0, 2, 0, 0, 0, 0, reply, 10) }
	stop := [][]byte{seqRec(opPause), seqRec(opDestroy)}
	var seeds [][]byte
	for reply := range byte(replyNum) {
		seeds = append(seeds, cat(vm(0, 1), [][]byte{seqRec(opStart), read(0, reply), seqRec(opSettle, 4),
			seqRec(opNotify), read(0, 0), seqRec(opDestroy), seqRec(opPause), seqRec(opStart), seqRec(opReset),
			seqRec(opStart), read(0, reply)}, stop))
	}
	seeds = append(seeds,
		// Completion polling, answered without a notify, then a late notify.
		cat(vm(0, 1, 1), [][]byte{seqRec(opStart), read(0, byte(replyNoNotify)), seqRec(opSettle, 4),
			seqRec(opNotify), read(0, byte(replyTwice))}, stop),
		// Two VMs sharing a page; a request left unanswered, then destroyed.
		cat(vm(0, 1), vm(1, 2), [][]byte{seqRec(opIOReqBuffer, 1, 0), seqRec(opStart, 0), seqRec(opStart, 1),
			read(0, byte(replyIgnore)), read(1, 0), seqRec(opSettle, 2), seqRec(opPause, 0), seqRec(opDestroy, 0),
			seqRec(opPause, 1), seqRec(opDestroy, 1)}),
		// The Service VM scribbles on its page while a request waits.
		cat(vm(0, 1), [][]byte{seqRec(opStart), read(0, byte(replyClaim)), seqRec(opPage, 0, 0, 1),
			seqRec(opPage, 0, 0, 5, 7), seqRec(opNotify), seqRec(opPage, 0, 0, 3), read(0, 0),
			seqRec(opIOReqBuffer, 0, 3), read(0, 0), seqRec(opReset), seqRec(opPause), seqRec(opReset),
			seqRec(opStart), read(0, 0)}, stop),
		// Write protection: a protected page, a write to it, unprotected.
		cat(vm(0, 1), [][]byte{seqRec(opWriteProtect, 0, 1, 0, 0, 5), seqRec(opStart),
			seqRec(opEmulate, 0, 4, 0, 0, 0, 0, 2, 0x99), seqRec(opWriteProtect, 0, 0, 0, 0, 5),
			seqRec(opRegions, 0, 0, 0x23, 0, 0, 0), seqRec(opRegions, 0, 0, 0x22, 0, 0, 0)}, stop),
		// No upcall handler: the buffer is only recorded.
		cat([][]byte{seqRec(opUpcall, 1)}, vm(0, 1), [][]byte{seqRec(opStart), read(0, 0), seqRec(opNotify),
			seqRec(opUpcall, 0), seqRec(opIOReqBuffer, 0, 0), read(0, 0)}, stop),
		// Delayed injections, cancelled while some wait, and the VM goes
		// while they still wait (3 ms: a sleep here may take 1 ms or more).
		cat(vm(0, 1), [][]byte{seqRec(opIntrMonitor, 0, 1, 3), seqRec(opIRQLine, 0, 5, 0), seqRec(opIRQLine, 0, 5, 1),
			seqRec(opMSI, 0, 0, 0, 0x30), seqRec(opIntrMonitor, 0, 1, 0), seqRec(opIRQLine, 0, 5, 2),
			seqRec(opIntrMonitor, 0, 0, 48), seqRec(opIntrMonitor, 0, 1, 3), seqRec(opIRQLine, 0, 7, 3)}, stop),
		// Interrupts, and documented failures.
		cat(vm(0, 1), [][]byte{seqRec(opIRQLine, 0, 5, 2), seqRec(opIRQLine, 0, 25, 4), seqRec(opMSI, 0, 0, 0, 0x30),
			seqRec(opMSI, 0, 0, 1), seqRec(opCreate, 17), seqRec(opCreate, 0, 0x10), seqRec(opCreate, 0, 0xc0),
			seqRec(opStart, 0xe0), seqRec(opDestroy, 0xe4), seqRec(opRegions, 0, 0xff), seqRec(opRegions, 0, 0xfd),
			seqRec(opIOReqBuffer, 0, 0xf9), seqRec(opIOReqBuffer, 0, 0xfa), seqRec(opRegs, 0, 0xf1),
			seqRec(opNotify, 0, 0x91), seqRec(opWriteProtect, 0, 1, 0xff), seqRec(opIntrMonitor, 0, 0, 49),
			seqRec(opIntrMonitor, 0, 2), seqRec(opDestroy)}),
	)
	// The table fills up.
	var full [][]byte
	for range MaxVMs {
		full = append(full, seqRec(opCreate, 1))
	}
	return append(seeds, seqSeq(full...))
}

// slotState returns a pointer to the state word of slot i of a request
// buffer, for storing states the life cycle would refuse.
func slotState(buf []byte, i int) *uint32 {
	return (*uint32)(unsafe.Pointer(&buf[iorequest.SlotStateOffset(i)]))
}
