package daemon

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"ember/api"
)

// call makes one request to a daemon's handler and checks the answer
// against the OpenAPI document under pattern.
func call(t testing.TB, h http.Handler, doc *openAPIDoc, pattern, method, path, body string) (int, []byte) {
	t.Helper()
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req := httptest.NewRequest(method, path, r)
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	res := w.Result()
	b, _ := io.ReadAll(res.Body)
	if pattern != "" {
		checkResponse(t, doc, pattern, res.StatusCode, b)
	}
	return res.StatusCode, b
}

// errorCode decodes an error body's code.
func errorCode(b []byte) string {
	var e api.ErrorBody
	json.Unmarshal(b, &e)
	return e.Error.Code
}

// TestHostileRequests: malformed JSON, wrong types, unknown fields, huge
// bodies, trailing data, absurd sizes, bad IDs and bad hypercalls each get
// their documented error, and the daemon answers the next request as
// before. Without a hypervisor the requests that would need one answer
// unavailable after every check that does not.
func TestHostileRequests(t *testing.T) {
	d := New(Config{})
	h, doc := d.Handler(), loadOpenAPI(t)
	huge := `{"config":{"cmdline":"` + strings.Repeat("x", MaxBodySize) + `"}}`
	tests := []struct {
		name, pattern, method, path, body string
		status                            int
		code                              string
	}{
		{"malformed JSON", "POST /v1/vms", "POST", "/v1/vms", `{"config":`, 400, api.CodeBadRequest},
		{"not JSON", "POST /v1/vms", "POST", "/v1/vms", `hello`, 400, api.CodeBadRequest},
		{"empty body", "POST /v1/vms", "POST", "/v1/vms", ``, 400, api.CodeBadRequest},
		{"unknown field", "POST /v1/vms", "POST", "/v1/vms", `{"config":{},"colour":"red"}`, 400, api.CodeBadRequest},
		{"unknown config field", "POST /v1/vms", "POST", "/v1/vms", `{"config":{"cpu":2}}`, 400, api.CodeBadRequest},
		{"wrong type", "POST /v1/vms", "POST", "/v1/vms", `{"config":{"cpus":"many"}}`, 400, api.CodeBadRequest},
		{"trailing data", "POST /v1/vms", "POST", "/v1/vms", `{"config":{}} {}`, 400, api.CodeBadRequest},
		{"huge body", "POST /v1/vms", "POST", "/v1/vms", huge, 413, api.CodeTooLarge},
		{"absurd memory", "POST /v1/vms", "POST", "/v1/vms", `{"config":{"memory":"900T"}}`, 400, api.CodeInvalidConfig},
		{"absurd cpus", "POST /v1/vms", "POST", "/v1/vms", `{"config":{"cpus":1000000}}`, 400, api.CodeInvalidConfig},
		{"negative cpus", "POST /v1/vms", "POST", "/v1/vms", `{"config":{"cpus":-1}}`, 400, api.CodeInvalidConfig},
		{"cpus overflow", "POST /v1/vms", "POST", "/v1/vms", `{"config":{"cpus":99999999999999999999}}`, 400, api.CodeBadRequest},
		{"missing kernel", "POST /v1/vms", "POST", "/v1/vms", `{"config":{"kernel":"/nonexistent"}}`, 400, api.CodeInvalidConfig},
		{"bad id", "POST /v1/vms", "POST", "/v1/vms", `{"id":"../etc","config":{}}`, 400, api.CodeBadRequest},
		{"acrn id", "POST /v1/vms", "POST", "/v1/vms", `{"id":"acrn-1","config":{}}`, 400, api.CodeBadRequest},
		{"no hypervisor", "POST /v1/vms", "POST", "/v1/vms", `{"config":{}}`, 503, api.CodeUnavailable},
		{"no such VM", "GET /v1/vms/{id}", "GET", "/v1/vms/nope", ``, 404, api.CodeNotFound},
		{"no such acrn VM", "GET /v1/vms/{id}", "GET", "/v1/vms/acrn-99999", ``, 404, api.CodeNotFound},
		{"start no such VM", "POST /v1/vms/{id}/start", "POST", "/v1/vms/nope/start", ``, 404, api.CodeNotFound},
		{"start with a body", "POST /v1/vms/{id}/start", "POST", "/v1/vms/nope/start", `{"now":true}`, 400, api.CodeBadRequest},
		{"stop an acrn VM", "POST /v1/vms/{id}/stop", "POST", "/v1/vms/acrn-1/stop", ``, 409, api.CodeConflict},
		{"delete an acrn VM", "DELETE /v1/vms/{id}", "DELETE", "/v1/vms/acrn-1", ``, 409, api.CodeConflict},
		{"restart bad config", "POST /v1/vms/{id}/restart", "POST", "/v1/vms/nope/restart", `{"config":{"cpus":"x"}}`, 400, api.CodeBadRequest},
		{"unknown hypercall", "POST /v1/hypercall", "POST", "/v1/hypercall", `{"hypercall":"HC_MAKE_COFFEE"}`, 400, api.CodeInvalidHypercall},
		{"hypercall bad hex", "POST /v1/hypercall", "POST", "/v1/hypercall", `{"hypercall":"HC_GET_API_VERSION","write":[{"gpa":0,"data":"zz"}]}`, 400, api.CodeInvalidHypercall},
		{"hypercall write outside", "POST /v1/hypercall", "POST", "/v1/hypercall", `{"hypercall":"HC_GET_API_VERSION","write":[{"gpa":16777215,"data":"0000"}]}`, 400, api.CodeInvalidHypercall},
		{"hypercall read wraps", "POST /v1/hypercall", "POST", "/v1/hypercall", `{"hypercall":"HC_GET_API_VERSION","read":[{"gpa":18446744073709551615,"size":2}]}`, 400, api.CodeInvalidHypercall},
		{"hypercall read too big", "POST /v1/hypercall", "POST", "/v1/hypercall", `{"hypercall":"HC_GET_API_VERSION","read":[{"gpa":0,"size":4097}]}`, 400, api.CodeInvalidHypercall},
		{"hypercall negative param", "POST /v1/hypercall", "POST", "/v1/hypercall", `{"hypercall":"HC_GET_API_VERSION","param1":-1}`, 400, api.CodeBadRequest},
		{"hypercall no hypervisor", "POST /v1/hypercall", "POST", "/v1/hypercall", `{"hypercall":"HC_GET_API_VERSION","param1":4096}`, 503, api.CodeUnavailable},
		{"unknown route", "", "GET", "/v2/vms", ``, 404, api.CodeNotFound},
		{"wrong method", "", "PUT", "/v1/vms", `{}`, 405, api.CodeMethodNotAllowed},
	}
	for _, tt := range tests {
		status, body := call(t, h, doc, tt.pattern, tt.method, tt.path, tt.body)
		if status != tt.status || errorCode(body) != tt.code {
			t.Errorf("%s: %d %s, want %d %s", tt.name, status, body, tt.status, tt.code)
		}
		// and the daemon still serves
		if status, _ := call(t, h, doc, "GET /v1/vms", "GET", "/v1/vms", ""); status != 200 {
			t.Fatalf("after %s: GET /v1/vms answered %d", tt.name, status)
		}
	}
}

// TestReadOnlyRoutes: the document, the info, the empty list and the
// metrics answer as documented on a daemon without VMs.
func TestReadOnlyRoutes(t *testing.T) {
	d := New(Config{Version: "test", KVMBackend: "none"})
	h, doc := d.Handler(), loadOpenAPI(t)
	if status, b := call(t, h, doc, "GET /v1/openapi.json", "GET", "/v1/openapi.json", ""); status != 200 || !bytes.Equal(b, api.OpenAPI) {
		t.Errorf("openapi.json: %d, %d bytes", status, len(b))
	}
	var info api.Info
	status, b := call(t, h, doc, "GET /v1/info", "GET", "/v1/info", "")
	if json.Unmarshal(b, &info); status != 200 || info.Version != "test" || info.MaxVMs != DefaultMaxVMs {
		t.Errorf("info: %d %s", status, b)
	}
	var list api.VMList
	status, b = call(t, h, doc, "GET /v1/vms", "GET", "/v1/vms", "")
	if json.Unmarshal(b, &list); status != 200 || list.VMs == nil || len(list.VMs) != 0 {
		t.Errorf("list: %d %s", status, b)
	}
	status, b = call(t, h, doc, "GET /metrics", "GET", "/metrics", "")
	if status != 200 || !strings.Contains(string(b), "# TYPE ember_vms gauge") || !strings.Contains(string(b), `ember_vms{state="running"} 0`) {
		t.Errorf("metrics: %d\n%s", status, b)
	}
}

// TestEventsReachSubscribers: a subscriber gets events in order with
// increasing sequence numbers; one that stops reading is cut off rather
// than holding the publisher.
func TestEventsReachSubscribers(t *testing.T) {
	var h events
	fast, cancelFast := h.subscribe()
	defer cancelFast()
	slow, cancelSlow := h.subscribe()
	defer cancelSlow()
	var wg sync.WaitGroup
	wg.Add(1)
	var got []api.Event
	go func() {
		defer wg.Done()
		for e := range fast {
			got = append(got, e)
			if len(got) == 2*eventQueue {
				return
			}
		}
	}()
	for i := range 2 * eventQueue {
		h.publish(api.Event{Type: api.EventCreated, VM: "vm-" + string(rune('a'+i%26))})
	}
	wg.Wait()
	for i, e := range got {
		if e.Seq != uint64(i+1) {
			t.Fatalf("event %d has seq %d", i, e.Seq)
		}
	}
	n := 0
	for range slow {
		n++
	}
	if n != eventQueue {
		t.Errorf("the slow subscriber got %d events before it was cut off, want %d", n, eventQueue)
	}
}

// TestConsoleKeepsItsTail: the history keeps the newest bytes, and a
// stream attached mid-way sees the history and then every later write,
// without a gap or a repeat.
func TestConsoleKeepsItsTail(t *testing.T) {
	var c console
	c.Write(bytes.Repeat([]byte{'a'}, consoleHistory))
	c.Write([]byte("tail"))
	h := c.History()
	if len(h) != consoleHistory || !bytes.HasSuffix(h, []byte("aatail")) {
		t.Errorf("history: %d bytes ending %q", len(h), h[len(h)-8:])
	}
	hist, out, detach := c.attach()
	defer detach()
	c.Write([]byte("next"))
	if !bytes.Equal(hist, h) || string(<-out) != "next" {
		t.Errorf("attach: history %d bytes, then a different stream", len(hist))
	}
}

// TestRateLimit: a burst passes, then one event per 1/rate, and a quiet
// period refills the bucket only up to the burst.
func TestRateLimit(t *testing.T) {
	l := newRateLimit(10, 3)
	t0 := time.Unix(1000, 0)
	got := []bool{}
	for _, at := range []time.Duration{0, 0, 0, 0, 50 * time.Millisecond, 100 * time.Millisecond, 10 * time.Second, 10 * time.Second, 10 * time.Second, 10 * time.Second} {
		got = append(got, l.allow(t0.Add(at)))
	}
	want := []bool{true, true, true, false, false, true, true, true, true, false}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("allow #%d = %v, want %v (all: %v)", i, got[i], want[i], got)
		}
	}
}
