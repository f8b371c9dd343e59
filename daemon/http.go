package daemon

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"ember/api"
	"ember/machine"
)

// MaxBodySize bounds every request body: the largest, a machine
// configuration, is a few hundred bytes; a hypercall's writes at most 16
// ranges of hex.
const MaxBodySize = 256 << 10

// ConsoleUpgrade is the protocol name a client asks for, with
// "Connection: Upgrade", to turn GET /v1/vms/{id}/console into the
// console's raw byte stream both ways.
const ConsoleUpgrade = api.ConsoleUpgrade

// Handler returns the API's HTTP handler.
func (d *Daemon) Handler() http.Handler {
	mux := http.NewServeMux()
	for _, r := range d.routes() {
		mux.HandleFunc(r.pattern, r.h)
	}
	return muxErrors(mux)
}

// route is one of the API's routes.
type route struct {
	pattern string // a ServeMux pattern: "METHOD /path"
	h       http.HandlerFunc
}

// routes lists every route; TestRoutesMatchOpenAPI checks them against
// api/openapi.json.
func (d *Daemon) routes() []route {
	return []route{
		{"GET /v1/openapi.json", d.serveOpenAPI},
		{"GET /v1/info", d.serveInfo},
		{"GET /v1/vms", d.serveList},
		{"POST /v1/vms", d.serveCreate},
		{"GET /v1/vms/{id}", d.serveGet},
		{"DELETE /v1/vms/{id}", d.serveDelete},
		{"POST /v1/vms/{id}/start", d.action((*vmEntry).Start)},
		{"POST /v1/vms/{id}/pause", d.action((*vmEntry).Pause)},
		{"POST /v1/vms/{id}/resume", d.action((*vmEntry).Resume)},
		{"POST /v1/vms/{id}/wake", d.action((*vmEntry).Wake)},
		{"POST /v1/vms/{id}/stop", d.action((*vmEntry).Stop)},
		{"POST /v1/vms/{id}/restart", d.serveRestart},
		{"GET /v1/vms/{id}/console", d.serveConsole},
		{"GET /v1/vms/{id}/log", d.serveLog},
		{"GET /v1/vms/{id}/state", d.serveState},
		{"GET /v1/vms/{id}/balloon", d.serveBalloon},
		{"PUT /v1/vms/{id}/balloon", d.serveSetBalloon},
		{"GET /v1/events", d.serveEvents},
		{"POST /v1/hypercall", d.serveHypercall},
		{"GET /metrics", d.serveMetrics},
	}
}

// muxErrors turns ServeMux's own plain-text 404 (no route) and 405 (wrong
// method) into the API's JSON errors.
func muxErrors(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		next.ServeHTTP(&muxErrorWriter{ResponseWriter: w, route: r.Method + " " + r.URL.Path}, r)
	})
}

// muxErrorWriter rewrites a 404 or 405 that ServeMux writes; the API's
// handlers write theirs as JSON, which passes.
type muxErrorWriter struct {
	http.ResponseWriter
	route   string
	swallow bool
}

func (m *muxErrorWriter) WriteHeader(code int) {
	if m.Header().Get("Content-Type") != "application/json" {
		switch code {
		case http.StatusMethodNotAllowed:
			m.swallow = true
			writeError(m.ResponseWriter, &api.Error{Status: code, Code: api.CodeMethodNotAllowed,
				Message: "method not allowed; allowed: " + m.Header().Get("Allow")})
			return
		case http.StatusNotFound:
			m.swallow = true
			writeError(m.ResponseWriter, &api.Error{Status: code, Code: api.CodeNotFound, Message: "no route " + m.route})
			return
		}
	}
	m.ResponseWriter.WriteHeader(code)
}

func (m *muxErrorWriter) Write(b []byte) (int, error) {
	if m.swallow {
		return len(b), nil
	}
	return m.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the connection (the console's
// upgrade hijacks it; the event stream flushes).
func (m *muxErrorWriter) Unwrap() http.ResponseWriter { return m.ResponseWriter }

// writeJSON answers v with status.
func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}

// writeError answers err as the API's error body.
func writeError(w http.ResponseWriter, err error) {
	e := asAPIError(err)
	writeJSON(w, e.Status, api.ErrorBody{Error: *e})
}

// decode reads a request's JSON body into v: at most MaxBodySize bytes,
// no unknown field, nothing after the value. An empty body is allowed
// where optional says so (v keeps its zero value).
func decode(w http.ResponseWriter, r *http.Request, v any, optional bool) error {
	r.Body = http.MaxBytesReader(w, r.Body, MaxBodySize)
	if optional && r.ContentLength == 0 {
		return nil
	}
	err := machine.DecodeStrict(r.Body, v)
	var tooBig *http.MaxBytesError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &tooBig):
		return &api.Error{Status: http.StatusRequestEntityTooLarge, Code: api.CodeTooLarge,
			Message: fmt.Sprintf("the body is over %d bytes", MaxBodySize)}
	case optional && errors.Is(err, io.EOF):
		return nil
	}
	return &api.Error{Status: http.StatusBadRequest, Code: api.CodeBadRequest, Message: "body: " + err.Error()}
}

func (d *Daemon) serveOpenAPI(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	w.Write(api.OpenAPI)
}

func (d *Daemon) serveInfo(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, api.Info{Version: d.cfg.Version, KVMBackend: d.cfg.KVMBackend, VMs: d.counts(), MaxVMs: d.cfg.MaxVMs})
}

func (d *Daemon) serveList(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, api.VMList{VMs: d.List()})
}

func (d *Daemon) serveCreate(w http.ResponseWriter, r *http.Request) {
	var req api.CreateRequest
	if err := decode(w, r, &req, false); err != nil {
		writeError(w, err)
		return
	}
	v, err := d.Create(req)
	if err != nil {
		writeError(w, err)
		return
	}
	w.Header().Set("Location", "/v1/vms/"+v.ID)
	writeJSON(w, http.StatusCreated, v)
}

func (d *Daemon) serveGet(w http.ResponseWriter, r *http.Request) {
	v, err := d.Get(r.PathValue("id"))
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, v)
}

func (d *Daemon) serveDelete(w http.ResponseWriter, r *http.Request) {
	if err := d.Delete(r.PathValue("id")); err != nil {
		writeError(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// action serves a lifecycle transition without a body; it answers the VM
// as it is after it.
func (d *Daemon) action(op func(*vmEntry) error) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		id := r.PathValue("id")
		if strings.HasPrefix(id, acrnPrefix) {
			writeError(w, errHypercallVM(id))
			return
		}
		var none struct{}
		if err := decode(w, r, &none, true); err != nil {
			writeError(w, err)
			return
		}
		e, err := d.entry(id)
		if err == nil {
			err = op(e)
		}
		if err != nil {
			writeError(w, err)
			return
		}
		writeJSON(w, http.StatusOK, e.View())
	}
}

func (d *Daemon) serveRestart(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if strings.HasPrefix(id, acrnPrefix) {
		writeError(w, errHypercallVM(id))
		return
	}
	var req api.RestartRequest
	if err := decode(w, r, &req, true); err != nil {
		writeError(w, err)
		return
	}
	if err := d.Restart(id, req.Config); err != nil {
		writeError(w, err)
		return
	}
	d.serveGet(w, r)
}

func (d *Daemon) serveLog(w http.ResponseWriter, r *http.Request) {
	e, err := d.entry(r.PathValue("id"))
	if err != nil {
		writeError(w, err)
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	io.WriteString(w, e.log.String())
}

func (d *Daemon) serveMetrics(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
	d.writeMetrics(w)
}

func (d *Daemon) serveHypercall(w http.ResponseWriter, r *http.Request) {
	var req api.HypercallRequest
	if err := decode(w, r, &req, false); err != nil {
		writeError(w, err)
		return
	}
	resp, err := d.Hypercall(req)
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, resp)
}

// serveEvents streams events as JSON lines, one per event, until the
// client goes or the daemon shuts down; ?vm=ID keeps one VM's.
func (d *Daemon) serveEvents(w http.ResponseWriter, r *http.Request) {
	only := r.URL.Query().Get("vm")
	ch, cancel := d.events.subscribe()
	defer cancel()
	rc := http.NewResponseController(w)
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.WriteHeader(http.StatusOK)
	rc.Flush()
	enc := json.NewEncoder(w)
	keepalive := time.NewTicker(15 * time.Second)
	defer keepalive.Stop()
	for {
		select {
		case <-r.Context().Done():
			return
		case <-keepalive.C:
			io.WriteString(w, "\n") // an empty line: readers skip it
		case e, ok := <-ch:
			if !ok {
				return
			}
			if only != "" && e.VM != only {
				continue
			}
			if enc.Encode(e) != nil {
				return
			}
		}
		if rc.Flush() != nil {
			return
		}
	}
}

// serveConsole answers the console's history, or, asked to upgrade to
// ConsoleUpgrade, turns the connection into the console: the history and
// then the output as it comes, and what the client sends goes to the
// guest's console input.
func (d *Daemon) serveConsole(w http.ResponseWriter, r *http.Request) {
	e, err := d.entry(r.PathValue("id"))
	if err != nil {
		writeError(w, err)
		return
	}
	if !strings.EqualFold(r.Header.Get("Upgrade"), ConsoleUpgrade) {
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Write(e.console.History())
		return
	}
	conn, brw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		writeError(w, fmt.Errorf("console: %w", err))
		return
	}
	defer conn.Close()
	io.WriteString(conn, "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: "+ConsoleUpgrade+"\r\n\r\n")
	hist, out, detach := e.console.attach()
	defer detach()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { // the client's keys: to the guest until the client hangs up
		defer cancel()
		buf := make([]byte, 1024)
		for {
			n, err := brw.Read(buf)
			if n > 0 && e.Input(ctx, buf[:n]) != nil {
				return
			}
			if err != nil {
				return
			}
		}
	}()
	e.console.pump(ctx, conn, hist, out, consoleWriteTimeout)
}
