package hypercall

import (
	"errors"

	"ember/acrn"
	"ember/acrn/iorequest"
	"ember/ioreq"
	"ember/memory"
)

// ioreqSlice returns the 4 KiB request buffer at gpa in mem: -EINVAL unless
// page-aligned, -EFAULT unless wholly in RAM.
func ioreqSlice(mem *memory.Guest, gpa uint64) ([]byte, acrn.Errno) {
	if gpa%memory.PageSize != 0 {
		return nil, acrn.EINVAL
	}
	b, err := mem.Slice(gpa, iorequest.RequestBufferSize)
	if err != nil {
		return nil, acrn.EFAULT
	}
	return b, 0
}

// setIOReq records the request buffer, marks every slot FREE, as ACRN
// does, and makes the page the Service VM's side of the VM's requests
// (attachServiceVM, upcall.go). The caller holds e.mu and has checked the
// buffer.
func (e *hcVM) setIOReq(mem *memory.Guest, gpa uint64) {
	e.ioreqMem, e.ioreqGPA, e.ioreqSet = mem, gpa, true
	e.resetIOReq()
	buf, _ := ioreqSlice(mem, gpa)
	e.attachServiceVM(mem, buf)
}

// resetIOReq marks every slot of the request buffer FREE, if one is set, for
// HC_RESET_VM: whatever a Service VM left in its page from the last run is
// void. The run has ended, so no request is in flight. The caller holds e.mu.
func (e *hcVM) resetIOReq() {
	if page := e.ioreqPage(); page != nil {
		page.Reset()
	}
}

// ioreqPage returns the request buffer HC_SET_IOREQ_BUFFER set, or nil if
// none is set or the Service VM has unmapped its page since (the call
// checked it once).
func (e *hcVM) ioreqPage() *ioreq.Buffer {
	if !e.ioreqSet {
		return nil
	}
	buf, _ := ioreqSlice(e.ioreqMem, e.ioreqGPA)
	page, err := ioreq.NewBufferBytes(buf)
	if err != nil {
		return nil
	}
	return page
}

// hcSetIOReqBuffer is HC_SET_IOREQ_BUFFER: param1 is the target VM ID,
// param2 the GPA, in the caller's memory, of an iorequest.IOReqBuffer holding the
// GPA of the page with the VM's sixteen 256-byte I/O request slots. The
// indirection is seed 000's ("this gpa points to buffer address"), ACRN
// v2.6's (it copies a u64 from param2) and Linux's HSM's (it passes the
// physical address of its struct acrn_ioreq_buffer). An unreadable param2 is
// -EFAULT; a page that is not aligned (-EINVAL) or not wholly in RAM
// (-EFAULT) is refused, where ACRN answers -1 for both. Every slot is set
// FREE; the VM may then be started. From then on every access of the VM
// that no in-process device claims is a request in that page, announced by
// an upcall (upcall.go).
func hcSetIOReqBuffer(c *call, e *hcVM) acrn.Errno {
	var b iorequest.IOReqBuffer
	if r := c.read(c.p2, &b); r != 0 {
		return r
	}
	if _, r := ioreqSlice(c.mem, b.IOReqBuf); r != 0 {
		return r
	}
	e.setIOReq(c.mem, b.IOReqBuf)
	return 0
}

// hcNotifyRequestFinish is HC_NOTIFY_REQUEST_FINISH: param1 is the target VM
// ID, param2 the vCPU whose request is done. The vCPU must exist and the
// buffer be set (-EINVAL, -EPERM). With a Service VM client (upcall.go) the
// vCPU's request must be in flight and its slot in the page COMPLETE: the
// value of a read is copied to the vCPU, the page's slot goes FREE and the
// vCPU resumes; anything else is -EINVAL and leaves the request waiting.
// For a VM with GUEST_FLAG_IO_COMPLETION_POLLING, the Service VM need not
// call it (Linux's HSM does not): the vCPU watches the page, and a call
// that finds the request already finished succeeds, as in ACRN.
// Without one (a host caller with no ServiceUpcall) a slot in COMPLETE goes
// back to FREE and one in another state is left alone.
func hcNotifyRequestFinish(c *call, e *hcVM) acrn.Errno {
	if c.p2 >= uint64(e.vm.NumVCPUs()) || c.p2 >= iorequest.IORequestMax {
		return acrn.EINVAL
	}
	if !e.ioreqSet {
		return acrn.EPERM
	}
	if e.serviceClient != nil {
		err := e.serviceClient.Finish(int(c.p2))
		if errors.Is(err, ioreq.ErrNoRequest) && e.flags&acrn.GuestFlagIOCompletionPolling != 0 {
			// The polling vCPU saw COMPLETE first and finished the request
			// itself (ServiceVMClient.Poll); ACRN ignores the call then.
			return 0
		}
		return finishErrno(err)
	}
	page := e.ioreqPage()
	if page == nil {
		return acrn.EFAULT
	}
	page.Release(int(c.p2)) // COMPLETE -> FREE, or left alone
	return 0
}

// asyncIOValid checks an acrn_asyncio_info.
func asyncIOValid(a *acrn.AsyncIOInfo) bool {
	switch a.Type {
	case acrn.AsyncIOPIO:
		return a.Addr <= 0xffff
	case acrn.AsyncIOMMIO:
		return true
	}
	return false
}

// hcAsyncIOAssign is HC_ASYNCIO_ASSIGN: param1 is the target VM ID, param2
// the GPA of an acrn_asyncio_info. The range is recorded (a second identical
// one is -EINVAL). Matching writes are not queued on an asynchronous buffer:
// they take the ordinary request path.
func hcAsyncIOAssign(c *call, e *hcVM) acrn.Errno {
	a, i, r := e.lookupAsyncIO(c)
	switch {
	case r != 0:
		return r
	case i >= 0 || !asyncIOValid(&a):
		return acrn.EINVAL
	}
	e.asyncIOs = append(e.asyncIOs, a)
	return 0
}

// hcAsyncIODeassign is HC_ASYNCIO_DEASSIGN: it removes a range
// HC_ASYNCIO_ASSIGN recorded (-EINVAL if there is none).
func hcAsyncIODeassign(c *call, e *hcVM) acrn.Errno {
	_, i, r := e.lookupAsyncIO(c)
	switch {
	case r != 0:
		return r
	case i < 0:
		return acrn.EINVAL
	}
	e.asyncIOs = append(e.asyncIOs[:i], e.asyncIOs[i+1:]...)
	return 0
}

// lookupAsyncIO reads the acrn_asyncio_info at param2 and returns it with
// the index of the identical range already recorded, or -1.
func (e *hcVM) lookupAsyncIO(c *call) (acrn.AsyncIOInfo, int, acrn.Errno) {
	var a acrn.AsyncIOInfo
	if r := c.read(c.p2, &a); r != 0 {
		return a, -1, r
	}
	for i, o := range e.asyncIOs {
		if o.Type == a.Type && o.Addr == a.Addr && o.MatchData == a.MatchData && o.Data == a.Data {
			return a, i, 0
		}
	}
	return a, -1, 0
}
