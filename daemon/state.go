package daemon

import (
	"bytes"
	"io"
	"net/http"
)

// serveState answers GET /v1/vms/{id}/state: what the VM's machine is doing
// now (machine.Report: every vCPU's registers, pending events and LAPIC, the
// interrupt controllers, COM1 and the virtio queues), as text, for a person
// finding out why a guest seems stuck. A running VM is paused for the moment
// it takes.
func (d *Daemon) serveState(w http.ResponseWriter, r *http.Request) {
	e, err := d.entry(r.PathValue("id"))
	if err != nil {
		writeError(w, err)
		return
	}
	var b bytes.Buffer
	if err := e.Report(&b); err != nil {
		writeError(w, err)
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Write(b.Bytes())
}

// Report writes the machine's state (machine.Report). It holds the entry's
// lock meanwhile, so no pause, resume or stop of the API interleaves with
// the moment Report pauses the VM.
func (e *vmEntry) Report(w io.Writer) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.deleted {
		return errGone(e.id)
	}
	return e.m.Report(w)
}
