package daemon

import (
	"bytes"
	"context"
	"log/slog"
	"sync"
)

// logHistory is how much of a VM's log the daemon keeps for
// GET /v1/vms/{id}/log.
const logHistory = 64 << 10

// vmLog is a VM's log: the records its VM and devices log go to the
// daemon's logger (with vm=ID), into a history of their own, and, at
// warning level and above, out as device_error events.
type vmLog struct {
	mu   sync.Mutex
	text bytes.Buffer // the history, in slog's text format
	hist slog.Handler // writes into text
}

// newVMLog makes the logger of VM id: records go to parent (with vm=id),
// to the VM's history, and Warn and above to onError.
func newVMLog(parent *slog.Logger, id string, onError func(msg string)) (*vmLog, *slog.Logger) {
	l := &vmLog{}
	l.hist = slog.NewTextHandler(&lockedTail{l}, &slog.HandlerOptions{Level: slog.LevelInfo})
	h := &teeHandler{parent: parent.Handler(), log: l, onError: onError}
	return l, slog.New(h).With("vm", id)
}

// String returns the history.
func (l *vmLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.text.String()
}

// lockedTail appends to the history, keeping its newest logHistory bytes;
// the caller (teeHandler.Handle) holds l.mu.
type lockedTail struct{ l *vmLog }

func (t *lockedTail) Write(p []byte) (int, error) {
	b := &t.l.text
	b.Write(p)
	if over := b.Len() - logHistory; over > 0 {
		rest := append([]byte(nil), b.Bytes()[over:]...)
		if i := bytes.IndexByte(rest, '\n'); i >= 0 {
			rest = rest[i+1:] // start at a whole record
		}
		b.Reset()
		b.Write(rest)
	}
	return len(p), nil
}

// teeHandler sends each record to the daemon's handler and the VM's
// history, and reports warnings and errors.
type teeHandler struct {
	parent  slog.Handler
	log     *vmLog
	hist    slog.Handler // log.hist with this handler's attributes, or nil for log.hist
	onError func(msg string)
}

func (h *teeHandler) Enabled(ctx context.Context, lv slog.Level) bool {
	return lv >= slog.LevelInfo || h.parent.Enabled(ctx, lv)
}

func (h *teeHandler) Handle(ctx context.Context, r slog.Record) error {
	if h.parent.Enabled(ctx, r.Level) {
		h.parent.Handle(ctx, r.Clone())
	}
	if r.Level >= slog.LevelInfo {
		hist := h.hist
		if hist == nil {
			hist = h.log.hist
		}
		h.log.mu.Lock()
		hist.Handle(ctx, r)
		h.log.mu.Unlock()
	}
	if r.Level >= slog.LevelWarn && h.onError != nil {
		h.onError(r.Message)
	}
	return nil
}

func (h *teeHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return h.derive(func(o slog.Handler) slog.Handler { return o.WithAttrs(as) })
}

func (h *teeHandler) WithGroup(name string) slog.Handler {
	return h.derive(func(o slog.Handler) slog.Handler { return o.WithGroup(name) })
}

// derive returns a copy of h whose two handlers are f of h's.
func (h *teeHandler) derive(f func(slog.Handler) slog.Handler) slog.Handler {
	n := *h
	n.parent = f(h.parent)
	base := h.hist
	if base == nil {
		base = h.log.hist
	}
	n.hist = f(base)
	return &n
}
