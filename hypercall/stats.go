package hypercall

import (
	"sort"
	"sync"

	"ember/acrn"
	"ember/acrn/permission"
)

// callKey is one row of the hypercall counts: an ID and how it ended.
type callKey struct {
	id     acrn.ID
	result string
}

// callCounts counts hypercalls by ID and outcome, for metrics. A hypercall
// costs tens of microseconds of exits, so one mutex here costs nothing.
type callCounts struct {
	mu sync.Mutex
	n  map[callKey]uint64
}

// add counts one hypercall that ended as result.
func (c *callCounts) add(id acrn.ID, result string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.n == nil {
		c.n = map[callKey]uint64{}
	}
	c.n[callKey{id, result}]++
}

// CallCount is how many hypercalls of one ID ended one way.
type CallCount struct {
	ID acrn.ID
	// Result is "ok", an errno's name ("EINVAL") for a call answered with
	// an error, or "#GP" / "#UD" for a call refused with an exception.
	Result string
	N      uint64
}

// Counts returns how many hypercalls the service has handled, by ID and
// result, in a stable order (by ID, then result).
func (h *Service) Counts() []CallCount {
	c := &h.counts
	c.mu.Lock()
	out := make([]CallCount, 0, len(c.n))
	for k, n := range c.n {
		out = append(out, CallCount{k.id, k.result, n})
	}
	c.mu.Unlock()
	sort.Slice(out, func(i, j int) bool {
		if out[i].ID != out[j].ID {
			return out[i].ID < out[j].ID
		}
		return out[i].Result < out[j].Result
	})
	return out
}

// outcome names how a call ended, for Counts.
func outcome(v permission.Verdict, rax uint64) string {
	switch v {
	case permission.InjectGP, permission.InjectUD:
		return v.String()
	}
	if v := int32(rax); v < 0 {
		return acrn.Errno(-int64(v)).Name()
	}
	return "ok"
}

// VMs returns the status of every VM in the table, by VM ID.
func (h *Service) VMs() []VMStatus {
	var out []VMStatus
	for _, e := range h.table.ids.All() {
		if s, ok := h.LookupVM(e.id); ok {
			out = append(out, s)
		}
	}
	return out
}
