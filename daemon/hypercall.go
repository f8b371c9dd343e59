package daemon

import (
	"encoding/hex"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"ember/acrn"
	"ember/api"
	"ember/hypercall"
)

// acrnPrefix begins the API ID of a VM made by HC_CREATE_VM: "acrn-3" is
// ACRN VM 3.
const acrnPrefix = "acrn-"

// errHypercallVM answers a lifecycle request for a VM that hypercalls own.
func errHypercallVM(id string) *api.Error {
	return &api.Error{Status: http.StatusConflict, Code: api.CodeConflict,
		Message: fmt.Sprintf("VM %s was made by HC_CREATE_VM: drive it with POST /v1/hypercall (HC_START_VM, HC_PAUSE_VM, HC_DESTROY_VM...)", id)}
}

// Hypercall makes one ACRN hypercall as the Service VM: it writes req's
// structures into the Service VM memory, makes the call and reads back
// what req asks. The VMs the call creates, starts or destroys show in the
// VM list and on the event stream.
func (d *Daemon) Hypercall(req api.HypercallRequest) (api.HypercallResponse, error) {
	id, err := lookupHypercall(req.Hypercall)
	if err != nil {
		return api.HypercallResponse{}, err
	}
	if len(req.Write) > api.MaxHypercallRanges || len(req.Read) > api.MaxHypercallRanges {
		return api.HypercallResponse{}, badHypercall("at most %d write and %d read ranges", api.MaxHypercallRanges, api.MaxHypercallRanges)
	}
	writes := make([][]byte, len(req.Write))
	for i, w := range req.Write {
		b, err := hex.DecodeString(strings.ReplaceAll(w.Data, "_", ""))
		if err != nil {
			return api.HypercallResponse{}, badHypercall("write %d: data is not hex: %v", i, err)
		}
		if !inService(w.GPA, uint64(len(b))) {
			return api.HypercallResponse{}, badHypercall("write %d: [%#x, +%d) is outside the Service VM memory (%d bytes)", i, w.GPA, len(b), hypercall.ServiceMemorySize)
		}
		writes[i] = b
	}
	for i, r := range req.Read {
		if r.Size == 0 || r.Size > api.MaxHypercallRead || !inService(r.GPA, r.Size) {
			return api.HypercallResponse{}, badHypercall("read %d: 1 to %d bytes inside the Service VM memory (%d bytes)", i, api.MaxHypercallRead, hypercall.ServiceMemorySize)
		}
	}
	if d.hc == nil {
		return api.HypercallResponse{}, unavailable("the daemon has no hypervisor")
	}
	mem, err := d.hc.ServiceMemory()
	if err != nil {
		return api.HypercallResponse{}, asAPIError(err)
	}
	d.hcMu.Lock()
	defer d.hcMu.Unlock()
	for i, w := range req.Write {
		if _, err := mem.WriteAt(writes[i], int64(w.GPA)); err != nil {
			return api.HypercallResponse{}, asAPIError(err)
		}
	}
	rax := d.hc.Hypercall(id, req.Param1, req.Param2)
	resp := api.HypercallResponse{Hypercall: id.String(), Result: int64(int32(rax))}
	if resp.Result < 0 {
		resp.Errno = acrn.Errno(-resp.Result).Name()
	}
	for _, r := range req.Read {
		b := make([]byte, r.Size)
		if _, err := mem.ReadAt(b, int64(r.GPA)); err != nil {
			return api.HypercallResponse{}, asAPIError(err)
		}
		resp.Read = append(resp.Read, api.MemoryBytes{GPA: r.GPA, Data: hex.EncodeToString(b)})
	}
	d.acrn.update(d)
	return resp, nil
}

// lookupHypercall reads a hypercall's name or number.
func lookupHypercall(s string) (acrn.ID, error) {
	if id, ok := acrn.LookupID(strings.ToUpper(s)); ok {
		return id, nil
	}
	n, err := strconv.ParseUint(s, 0, 64)
	if err != nil {
		return 0, badHypercall("unknown hypercall %q: a name such as HC_CREATE_VM or a number", s)
	}
	return acrn.ID(n), nil
}

// inService reports whether [gpa, gpa+n) is inside the Service VM memory.
func inService(gpa, n uint64) bool {
	return gpa < hypercall.ServiceMemorySize && n <= hypercall.ServiceMemorySize-gpa
}

// badHypercall is an invalid_hypercall answer.
func badHypercall(format string, args ...any) *api.Error {
	return &api.Error{Status: http.StatusBadRequest, Code: api.CodeInvalidHypercall, Message: fmt.Sprintf(format, args...)}
}

// acrnView is what the daemon last saw of the VMs made by HC_CREATE_VM, so
// that a hypercall that creates, starts, pauses or destroys one becomes an
// event.
type acrnView struct {
	mu    sync.Mutex
	state map[uint16]string
	seen  map[uint16]time.Time // when the daemon first saw each, for created_at
}

// createdAt returns when VM id was first seen.
func (v *acrnView) createdAt(id uint16) time.Time {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.seen[id]
}

// update compares the table with the last view and publishes the changes.
func (v *acrnView) update(d *Daemon) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if d.hc == nil {
		return
	}
	if v.seen == nil {
		v.seen = map[uint16]time.Time{}
	}
	now := map[uint16]string{}
	for _, s := range d.hc.VMs() {
		if s.Hypercall {
			now[s.ID] = s.State
		}
	}
	for id, st := range now {
		old, seen := v.state[id]
		switch {
		case !seen:
			v.seen[id] = time.Now().UTC()
			d.events.publish(api.Event{Type: api.EventCreated, VM: acrnName(id), State: st})
		case old != st:
			d.events.publish(api.Event{Type: acrnEvent(st), VM: acrnName(id), State: st})
		}
	}
	for id := range v.state {
		if _, ok := now[id]; !ok {
			delete(v.seen, id)
			d.events.publish(api.Event{Type: api.EventDeleted, VM: acrnName(id)})
		}
	}
	v.state = now
}

// acrnEvent is the event of a hypercall VM entering ACRN state st.
func acrnEvent(st string) string {
	switch st {
	case api.StateRunning:
		return api.EventStarted
	case api.StatePaused:
		return api.EventPaused
	case api.StatePoweredOff:
		return api.EventStopped
	}
	return api.EventRestarted // created again: HC_RESET_VM
}

// acrnName is the API ID of ACRN VM id.
func acrnName(id uint16) string { return acrnPrefix + strconv.Itoa(int(id)) }

// acrnVMs returns the VMs made by HC_CREATE_VM, by ACRN ID.
func (d *Daemon) acrnVMs() []api.VM {
	if d.hc == nil {
		return nil
	}
	var out []api.VM
	for _, s := range d.hc.VMs() {
		if s.Hypercall {
			out = append(out, acrnVMView(s, d.acrn.createdAt(s.ID)))
		}
	}
	return out
}

// acrnVM returns the VM named "acrn-N".
func (d *Daemon) acrnVM(name string) (api.VM, error) {
	n, err := strconv.ParseUint(strings.TrimPrefix(name, acrnPrefix), 10, 16)
	if d.hc != nil && err == nil {
		if s, ok := d.hc.LookupVM(uint16(n)); ok && s.Hypercall {
			return acrnVMView(s, d.acrn.createdAt(s.ID)), nil
		}
	}
	return api.VM{}, &api.Error{Status: http.StatusNotFound, Code: api.CodeNotFound, Message: fmt.Sprintf("no VM %s", name)}
}

// acrnVMView is a hypercall VM as the API shows it.
func acrnVMView(s hypercall.VMStatus, created time.Time) api.VM {
	id := s.ID
	v := api.VM{ID: acrnName(s.ID), Origin: api.OriginHypercall, State: s.State, ACRNID: &id, CreatedAt: created}
	if s.VM != nil {
		v.Counters = counters(s.VM)
	}
	if s.Result.Reason != 0 {
		v.LastStop = &api.StopInfo{Reason: stopReason(s.Result.Reason), Status: s.Result.Status}
		if s.Result.Err != nil {
			v.LastStop.Error = s.Result.Err.Error()
		}
	}
	return v
}
