package runstate

import (
	"fmt"
	"strings"
)

// Describe names where each vCPU is, for a report: "vCPU 0 running, vCPU 1
// parked".
func (r *Control) Describe() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	parts := make([]string, len(r.states))
	for i, s := range r.states {
		parts[i] = fmt.Sprintf("vCPU %d %s", i, s)
	}
	return strings.Join(parts, ", ")
}

// stateNames are the run states' names in a report.
var stateNames = [...]string{
	Idle: "idle", Running: "running", Parked: "parked", Waiting: "waiting for an I/O client",
}

// String names the run state.
func (s State) String() string {
	if s >= 0 && int(s) < len(stateNames) {
		return stateNames[s]
	}
	return fmt.Sprintf("State(%d)", int(s))
}
