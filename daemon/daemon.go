package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"ember/acrn"
	"ember/api"
	"ember/hypercall"
	"ember/machine"
)

// DefaultMaxVMs is how many VMs a daemon holds unless told otherwise.
const DefaultMaxVMs = 4096

// noACRNID is a VM's ACRN ID when it has none (beyond the table).
const noACRNID = acrn.InvalidVMID

// Config configures a Daemon.
type Config struct {
	// Service is the hypercall service (and through it the hypervisor)
	// the daemon's VMs are made on; the daemon does not close it. Nil
	// serves the API without a hypervisor: every request that needs one
	// answers unavailable (for tests of the API itself).
	Service *hypercall.Service
	Logger  *slog.Logger // nil is slog.Default()
	MaxVMs  int          // 0 is DefaultMaxVMs
	Version string       // what GET /v1/info reports
	// KVMBackend is what GET /v1/info reports as the host's KVM.
	KVMBackend string
}

// Daemon holds the VMs made through the API and serves the API (Handler).
// Its methods are safe to call from many goroutines.
type Daemon struct {
	hc     *hypercall.Service
	log    *slog.Logger
	cfg    Config
	events events

	mu      sync.Mutex
	vms     map[string]*vmEntry // by ID; a nil value reserves an ID being built
	nextID  int
	closing bool

	hcMu sync.Mutex // one POST /v1/hypercall at a time uses the Service VM memory
	acrn acrnView   // what the daemon last saw of the hypercall VMs (hypercall.go)
}

// New returns a daemon with no VMs.
func New(cfg Config) *Daemon {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.MaxVMs <= 0 {
		cfg.MaxVMs = DefaultMaxVMs
	}
	return &Daemon{hc: cfg.Service, log: cfg.Logger, cfg: cfg, vms: map[string]*vmEntry{}}
}

// validID is what a VM name may be.
var validID = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

// unavailable is the answer to a request that needs a hypervisor the
// daemon does not have, or that comes while it shuts down.
func unavailable(why string) *api.Error {
	return &api.Error{Status: http.StatusServiceUnavailable, Code: api.CodeUnavailable, Message: why}
}

// prepare checks a configuration for the daemon: machine's checks, and no
// vsock CID or socket another VM holds (except the VM self).
func (d *Daemon) prepare(c machine.Config, self string) (*machine.Prepared, error) {
	p, err := c.Prepare()
	if err != nil {
		return nil, &api.Error{Status: http.StatusBadRequest, Code: api.CodeInvalidConfig, Message: err.Error()}
	}
	if c.Vsock == nil {
		return p, nil
	}
	for _, e := range d.entries() {
		if e.id == self {
			continue
		}
		e.mu.Lock()
		o := e.cfg.Vsock
		e.mu.Unlock()
		if o != nil && (o.CID == c.Vsock.CID || o.Socket == c.Vsock.Socket) {
			return nil, &api.Error{Status: http.StatusConflict, Code: api.CodeConflict,
				Message: fmt.Sprintf("vsock cid %d or socket %s is VM %s's", c.Vsock.CID, c.Vsock.Socket, e.id)}
		}
	}
	return p, nil
}

// Create builds a VM from req and, if asked, starts it.
func (d *Daemon) Create(req api.CreateRequest) (api.VM, error) {
	if req.ID != "" && (!validID.MatchString(req.ID) || strings.HasPrefix(req.ID, acrnPrefix)) {
		return api.VM{}, &api.Error{Status: http.StatusBadRequest, Code: api.CodeBadRequest,
			Message: fmt.Sprintf("id %q: 1 to 64 of A-Z a-z 0-9 . _ -, starting with a letter or digit, not %q...", req.ID, acrnPrefix)}
	}
	p, err := d.prepare(req.Config, "")
	if err != nil {
		return api.VM{}, err
	}
	if d.hc == nil {
		return api.VM{}, unavailable("the daemon has no hypervisor")
	}
	id, err := d.reserve(req.ID)
	if err != nil {
		return api.VM{}, err
	}
	e := &vmEntry{d: d, id: id, created: time.Now().UTC(), cfg: req.Config, prep: p, state: api.StateCreated}
	limit := newRateLimit(deviceErrorRate, deviceErrorBurst)
	e.log, e.logger = newVMLog(d.log, id, func(msg string) {
		if limit.allow(time.Now()) {
			d.events.publish(api.Event{Type: api.EventDeviceError, VM: id, Message: msg})
		}
	})
	if err := e.build(); err != nil {
		d.release(id)
		return api.VM{}, err
	}
	d.mu.Lock()
	d.vms[id] = e
	d.mu.Unlock()
	e.publish(api.EventCreated, nil)
	if req.Start {
		if err := e.Start(); err != nil {
			return e.View(), err
		}
	}
	return e.View(), nil
}

// reserve takes id (or a fresh one if empty) for a VM about to be built.
func (d *Daemon) reserve(id string) (string, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	switch {
	case d.closing:
		return "", unavailable("the daemon is shutting down")
	case len(d.vms) >= d.cfg.MaxVMs:
		return "", &api.Error{Status: http.StatusTooManyRequests, Code: api.CodeLimit,
			Message: fmt.Sprintf("the daemon holds its most VMs, %d", d.cfg.MaxVMs)}
	}
	if id == "" {
		for {
			d.nextID++
			id = "vm-" + strconv.Itoa(d.nextID)
			if _, taken := d.vms[id]; !taken {
				break
			}
		}
	} else if _, taken := d.vms[id]; taken {
		return "", &api.Error{Status: http.StatusConflict, Code: api.CodeConflict, Message: fmt.Sprintf("VM %s exists", id)}
	}
	d.vms[id] = nil
	return id, nil
}

// release frees an ID whose build failed.
func (d *Daemon) release(id string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.vms[id] == nil {
		delete(d.vms, id)
	}
}

// entry returns the API VM id, or not_found.
func (d *Daemon) entry(id string) (*vmEntry, error) {
	d.mu.Lock()
	e := d.vms[id]
	d.mu.Unlock()
	if e == nil {
		return nil, &api.Error{Status: http.StatusNotFound, Code: api.CodeNotFound, Message: fmt.Sprintf("no VM %s", id)}
	}
	return e, nil
}

// entries returns the API VMs, oldest first.
func (d *Daemon) entries() []*vmEntry {
	d.mu.Lock()
	es := make([]*vmEntry, 0, len(d.vms))
	for _, e := range d.vms {
		if e != nil {
			es = append(es, e)
		}
	}
	d.mu.Unlock()
	sort.Slice(es, func(i, j int) bool {
		if !es[i].created.Equal(es[j].created) {
			return es[i].created.Before(es[j].created)
		}
		return es[i].id < es[j].id
	})
	return es
}

// List returns every VM: the API's, oldest first, then the hypercall
// service's by ACRN ID.
func (d *Daemon) List() []api.VM {
	es := d.entries()
	out := make([]api.VM, 0, len(es))
	for _, e := range es {
		out = append(out, e.View())
	}
	return append(out, d.acrnVMs()...)
}

// Get returns VM id.
func (d *Daemon) Get(id string) (api.VM, error) {
	if strings.HasPrefix(id, acrnPrefix) {
		return d.acrnVM(id)
	}
	e, err := d.entry(id)
	if err != nil {
		return api.VM{}, err
	}
	return e.View(), nil
}

// Delete stops VM id and releases everything it had.
func (d *Daemon) Delete(id string) error {
	if strings.HasPrefix(id, acrnPrefix) {
		return errHypercallVM(id)
	}
	e, err := d.entry(id)
	if err != nil {
		return err
	}
	e.Delete()
	d.mu.Lock()
	if d.vms[id] == e {
		delete(d.vms, id)
	}
	d.mu.Unlock()
	return nil
}

// Restart rebuilds VM id, from cfg if it is not nil, and starts it.
func (d *Daemon) Restart(id string, cfg *machine.Config) error {
	e, err := d.entry(id)
	if err != nil {
		return err
	}
	var p *machine.Prepared
	if cfg != nil {
		if p, err = d.prepare(*cfg, id); err != nil {
			return err
		}
	}
	return e.Restart(cfg, p)
}

// Shutdown stops every VM, in parallel, and releases them, waiting at most
// until ctx ends; the VMs made by hypercall go with the service's Close,
// which the daemon's owner calls. New VMs are refused from the start.
func (d *Daemon) Shutdown(ctx context.Context) error {
	d.mu.Lock()
	d.closing = true
	d.mu.Unlock()
	done := make(chan struct{})
	go func() {
		var wg sync.WaitGroup
		for _, e := range d.entries() {
			wg.Add(1)
			go func() { defer wg.Done(); d.Delete(e.id) }()
		}
		wg.Wait()
		close(done)
	}()
	defer d.events.closeAll()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("daemon: VMs still stopping at the shutdown time-out: %w", ctx.Err())
	}
}

// counts returns how many VMs are in each state.
func (d *Daemon) counts() map[string]int {
	m := map[string]int{}
	for _, v := range d.List() {
		m[v.State]++
	}
	return m
}

// asAPIError turns any error into an API error: those that are one already
// keep their code.
func asAPIError(err error) *api.Error {
	var ae *api.Error
	if errors.As(err, &ae) {
		return ae
	}
	return &api.Error{Status: http.StatusInternalServerError, Code: api.CodeInternal, Message: err.Error()}
}
