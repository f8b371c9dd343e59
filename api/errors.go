package api

import "fmt"

// Error codes: stable names a program can switch on; the HTTP status
// says the class and Message the detail.
const (
	CodeBadRequest       = "bad_request"        // 400: malformed JSON, a wrong type, an unknown field
	CodeInvalidConfig    = "invalid_config"     // 400: a machine configuration refused
	CodeInvalidHypercall = "invalid_hypercall"  // 400: an unknown hypercall, a bad memory range
	CodeForbidden        = "forbidden"          // 403: a peer the daemon does not serve
	CodeNotFound         = "not_found"          // 404: no such VM or route
	CodeMethodNotAllowed = "method_not_allowed" // 405
	CodeConflict         = "conflict"           // 409: the VM's state forbids it, or the ID is taken
	CodeTooLarge         = "too_large"          // 413: a body over the limit
	CodeBuildFailed      = "build_failed"       // 422: the machine could not be built (a file, a TAP)
	CodeLimit            = "limit"              // 429: the daemon holds its most VMs
	CodeInternal         = "internal"           // 500
	CodeUnavailable      = "unavailable"        // 503: no hypervisor, or shutting down
)

// Error is the body of every answer that is not a success:
// {"error": {"code": ..., "message": ...}}.
type Error struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	// Status is the HTTP status it came with (not in the body).
	Status int `json:"-"`
}

// ErrorBody is Error's envelope on the wire.
type ErrorBody struct {
	Error Error `json:"error"`
}

func (e *Error) Error() string { return fmt.Sprintf("%s: %s", e.Code, e.Message) }
