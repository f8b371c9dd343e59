// Package debugexit models QEMU's isa-debug-exit device: a port a test
// guest writes a value to, ending the VM with the status (value << 1) | 1.
// kvm-unit-tests and many hobby-OS test harnesses end a run this way (QEMU
// with -device isa-debug-exit,iobase=0xf4,iosize=0x4), and read their
// verdict from the status: an odd status is always the guest's, so a VMM
// that crashes or is killed (status 0 or a signal) is never taken for a
// passing test.
//
// A write of 1, 2 or 4 bytes at any offset of the device's range ends the
// run; reads return zeros, as QEMU's do. Accesses of other sizes are
// ignored and logged. The port and its size are the caller's (Config of
// package pc): DefaultPort and DefaultSize are what kvm-unit-tests uses, not
// QEMU's own defaults (0x501, 2 bytes).
//
// Concurrency: safe for concurrent use; Exit may be called by several vCPUs
// at once, and the VM keeps the first.
package debugexit

import (
	"log/slog"
	"sync"

	"ember/devices"
)

// The placement kvm-unit-tests gives QEMU's device.
const (
	DefaultPort = 0xf4
	DefaultSize = 4
)

// Status is the exit status a write of v asks for: (v << 1) | 1.
func Status(v uint64) int { return int(v<<1 | 1) }

// Config configures a Port.
type Config struct {
	// Exit ends the VM with status; it must not call back into the device.
	Exit func(status int)
	// Logger receives unsupported accesses; nil means slog.Default().
	Logger *slog.Logger
}

// Port is one isa-debug-exit port.
type Port struct {
	exit func(int)

	mu        sync.Mutex
	anomalies *devices.Anomalies
}

// New returns a port that calls cfg.Exit on a write.
func New(cfg Config) *Port {
	return &Port{exit: cfg.Exit, anomalies: devices.NewAnomalies(cfg.Logger, "isa-debug-exit")}
}

// Read reads zeros.
func (p *Port) Read(_ uint64, data []byte) { clear(data) }

// Write of 1, 2 or 4 bytes (little endian) ends the VM with Status(value).
func (p *Port) Write(_ uint64, data []byte) {
	switch len(data) {
	case 1, 2, 4:
	default:
		p.mu.Lock()
		p.anomalies.Report("unsupported access size", "size", len(data))
		p.mu.Unlock()
		return
	}
	if p.exit != nil {
		p.exit(Status(devices.Uint(data)))
	}
}
