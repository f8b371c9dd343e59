// Package runstate is the run-state machine of a VM's vCPUs: where each
// vCPU's goroutine is (idle, running, parked, waiting for an I/O client) and
// what the host and the guest ask of them (a pause, a sleep). Package hv's
// vCPU loop, Pause, Resume, Sleep and Wake are built on it; it knows nothing
// of KVM, so its transitions are tested on their own.
package runstate
