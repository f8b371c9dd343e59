package daemon

import (
	"testing"
)

// FuzzRequestDecoding sends arbitrary bodies to every route that decodes
// one: the daemon (without a hypervisor, so nothing is built) must answer
// each with a status the OpenAPI document lists and a body that fits its
// schema, never panic, and keep serving.
func FuzzRequestDecoding(f *testing.F) {
	for _, s := range []string{
		`{"config":{}}`, `{"id":"a","config":{"cpus":2,"memory":"4M"},"start":true}`,
		`{"config":{"disks":[{"path":"/x","cache":"none"}],"vsock":{"cid":3,"socket":"/s"}}}`,
		`{"hypercall":"HC_CREATE_VM","param1":4096,"write":[{"gpa":4096,"data":"00ff"}],"read":[{"gpa":4096,"size":8}]}`,
		`{"config":{"kernel":"/k","boot":"pvh"}}`, `{}`, `[]`, `null`, `{"config":{"memory":"1T"}}`,
	} {
		f.Add(uint8(0), s)
		f.Add(uint8(1), s)
		f.Add(uint8(2), s)
	}
	d := New(Config{})
	h, doc := d.Handler(), loadOpenAPI(f)
	routes := []struct{ pattern, path string }{
		{"POST /v1/vms", "/v1/vms"},
		{"POST /v1/hypercall", "/v1/hypercall"},
		{"POST /v1/vms/{id}/restart", "/v1/vms/vm-1/restart"},
	}
	f.Fuzz(func(t *testing.T, which uint8, body string) {
		r := routes[int(which)%len(routes)]
		call(t, h, doc, r.pattern, "POST", r.path, body)
	})
}
