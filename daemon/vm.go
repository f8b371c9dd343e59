package daemon

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"ember/api"
	"ember/hv"
	"ember/machine"
)

// vmEntry is a VM made through the API: its configuration, the machine
// built from it, the current run, and its console and log, which outlive
// the machine's rebuilds. Its lifecycle operations hold mu, so two
// conflicting requests are served one after the other and the second sees
// the first's outcome (and gets conflict if its transition no longer
// applies).
type vmEntry struct {
	d       *Daemon
	id      string
	created time.Time
	console console
	log     *vmLog
	logger  *slog.Logger

	mu      sync.Mutex
	cfg     machine.Config
	prep    *machine.Prepared
	m       *machine.Machine // nil once deleted
	run     *hv.Background   // the current run, or nil
	state   string
	boots   int
	last    *api.StopInfo
	deleted bool
}

// errState is a transition the VM's state does not allow.
func errState(id, state, op string) *api.Error {
	return &api.Error{Status: http.StatusConflict, Code: api.CodeConflict,
		Message: fmt.Sprintf("VM %s is %s: it cannot %s", id, state, op)}
}

// build makes a fresh machine from e.prep; the caller holds e.mu and has
// closed the previous machine.
func (e *vmEntry) build() error {
	m, err := machine.Build(e.d.hc, e.prep, machine.Options{Console: &e.console, Logger: e.logger})
	if err != nil {
		return &api.Error{Status: http.StatusUnprocessableEntity, Code: api.CodeBuildFailed, Message: err.Error()}
	}
	e.m = m
	return nil
}

// startLocked starts a run of the current machine and watches it.
func (e *vmEntry) startLocked() {
	run := e.m.VM.Start()
	e.run, e.state = run, api.StateRunning
	e.boots++
	go e.watch(run)
}

// watch waits for a run to end by itself and records how; a run that
// stop, restart or delete ended is theirs to record. A guest reboot under
// reboot=restart builds the machine afresh and starts it again.
func (e *vmEntry) watch(run *hv.Background) {
	res, err := run.Wait()
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.run != run {
		return
	}
	e.stoppedLocked(res, err)
	if res.Reason == hv.StopReset && e.cfg.Reboot == machine.RebootRestart && !e.deleted {
		if err := e.rebuildLocked(); err != nil {
			e.logger.Error("reboot: rebuilding the machine failed", "err", err)
			return
		}
		e.startLocked()
		e.publish(api.EventRestarted, nil)
	}
}

// stoppedLocked records the end of the current run.
func (e *vmEntry) stoppedLocked(res hv.Result, err error) {
	e.run, e.state = nil, api.StateStopped
	e.last = stopInfo(res, err)
	e.publish(api.EventStopped, e.last)
}

// stopInfo turns a run's end into its API form.
func stopInfo(res hv.Result, err error) *api.StopInfo {
	s := &api.StopInfo{Reason: stopReason(res.Reason), Status: res.Status, At: time.Now().UTC()}
	switch {
	case err != nil:
		s.Reason, s.Error = "error", err.Error()
	case res.Err != nil:
		s.Error = res.Err.Error()
	}
	return s
}

// stopReason is the API's name of a stop reason.
func stopReason(r hv.StopReason) string {
	switch r {
	case hv.StopExit:
		return "exit"
	case hv.StopShutdown:
		return "shutdown"
	case hv.StopHalted:
		return "halted"
	case hv.StopReset:
		return "reset"
	case hv.StopHost:
		return "host"
	case hv.StopPowerOff:
		return "poweroff"
	}
	return "error"
}

// publish sends an event about the VM.
func (e *vmEntry) publish(typ string, stop *api.StopInfo) {
	e.d.events.publish(api.Event{Type: typ, VM: e.id, State: e.state, Stop: stop})
}

// endRunLocked stops the current run, if any, and records it.
func (e *vmEntry) endRunLocked() {
	if run := e.run; run != nil {
		run.Stop()
		res, err := run.Wait()
		e.stoppedLocked(res, err)
	}
}

// rebuildLocked closes the machine and builds it afresh from e.prep.
func (e *vmEntry) rebuildLocked() error {
	if e.m != nil {
		e.m.Close()
		e.m = nil
	}
	return e.build()
}

// Start runs a created or stopped VM; a stopped one boots a fresh machine,
// as a power cycle would.
func (e *vmEntry) Start() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	switch {
	case e.deleted:
		return errGone(e.id)
	case e.state == api.StateStopped:
		if err := e.rebuildLocked(); err != nil {
			return err
		}
	case e.state != api.StateCreated:
		return errState(e.id, e.state, "start")
	}
	e.startLocked()
	e.publish(api.EventStarted, nil)
	return nil
}

// expect says, with e.mu held, why op cannot be done unless the VM is still
// registered and in state want.
func (e *vmEntry) expect(want, op string) error {
	if e.deleted {
		return errGone(e.id)
	}
	if e.state != want {
		return errState(e.id, e.state, op)
	}
	return nil
}

// Pause parks a running VM's vCPUs.
func (e *vmEntry) Pause() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if err := e.expect(api.StateRunning, "pause"); err != nil {
		return err
	}
	e.m.VM.Pause()
	e.state = api.StatePaused
	e.publish(api.EventPaused, nil)
	return nil
}

// Resume lets a paused VM's vCPUs run again.
func (e *vmEntry) Resume() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if err := e.expect(api.StatePaused, "resume"); err != nil {
		return err
	}
	e.m.VM.Resume()
	e.state = api.StateRunning
	e.publish(api.EventResumed, nil)
	return nil
}

// Wake wakes a running VM's guest from ACPI S3, as a press of its power
// button would (QEMU's system_wakeup): ember resumes it at its waking
// vector. A guest that is not asleep is a conflict.
func (e *vmEntry) Wake() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if err := e.expect(api.StateRunning, "wake"); err != nil {
		return err
	}
	if !e.m.Platform.Wake() {
		return &api.Error{Status: http.StatusConflict, Code: api.CodeConflict,
			Message: fmt.Sprintf("VM %s is not asleep: there is nothing to wake", e.id)}
	}
	return nil
}

// Stop ends a running or paused VM's run, as pulling the plug would; its
// disks are flushed when the machine is next rebuilt or deleted.
func (e *vmEntry) Stop() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.deleted {
		return errGone(e.id)
	}
	if e.state != api.StateRunning && e.state != api.StatePaused {
		return errState(e.id, e.state, "stop")
	}
	e.endRunLocked()
	return nil
}

// Restart stops the VM if it runs, builds its machine afresh (from cfg
// when it is not nil, after the daemon's checks) and starts it.
func (e *vmEntry) Restart(cfg *machine.Config, prep *machine.Prepared) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.deleted {
		return errGone(e.id)
	}
	e.endRunLocked()
	if prep != nil {
		e.cfg, e.prep = *cfg, prep
	}
	if err := e.rebuildLocked(); err != nil {
		e.state = api.StateStopped
		return err
	}
	e.startLocked()
	e.publish(api.EventRestarted, nil)
	return nil
}

// Delete stops the VM and releases its machine: every fd, mapping and
// goroutine it had.
func (e *vmEntry) Delete() {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.deleted {
		return
	}
	e.endRunLocked()
	e.deleted = true
	e.console.end()
	if e.m != nil {
		e.m.Close()
		e.m = nil
	}
	e.publish(api.EventDeleted, nil)
}

// Input feeds the VM's console; it fails when there is no machine.
func (e *vmEntry) Input(ctx context.Context, p []byte) error {
	e.mu.Lock()
	m := e.m
	e.mu.Unlock()
	if m == nil {
		return errGone(e.id)
	}
	return m.Input(ctx, p)
}

// errGone is an operation on a VM deleted meanwhile.
func errGone(id string) *api.Error {
	return &api.Error{Status: http.StatusNotFound, Code: api.CodeNotFound, Message: fmt.Sprintf("VM %s was deleted", id)}
}

// View returns the VM as the API shows it.
func (e *vmEntry) View() api.VM {
	e.mu.Lock()
	defer e.mu.Unlock()
	cfg := e.cfg
	v := api.VM{ID: e.id, Origin: api.OriginAPI, State: e.state, Config: &cfg, CreatedAt: e.created,
		Boots: e.boots, LastStop: e.last}
	if e.m != nil {
		v.Counters = counters(e.m.VM)
		v.Counters.Disks, v.Counters.Nets = deviceCounters(e.m, &cfg)
		v.Asleep = e.m.VM.Sleeping()
		if id := e.d.hc.VMID(e.m.VM); id != noACRNID {
			v.ACRNID = &id
		}
	}
	return v
}

// counters reads a VM's running totals.
func counters(vm *hv.VM) api.Counters {
	c := api.Counters{Exits: vm.Exits(), ExitsByReason: map[string]uint64{},
		IORequests: vm.IORequests().Router().Requests(), GuestTimeSeconds: vm.GuestTime().Seconds()}
	for r, n := range vm.ExitsByReason() {
		c.ExitsByReason[r.String()] = n
	}
	return c
}
