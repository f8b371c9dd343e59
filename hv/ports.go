package hv

import (
	"io"
	"sync"

	"ember/devices"
)

// Ports of ember's guest ABI (docs/abi.md). The console and exit ports follow
// the conventions of QEMU's debugcon (0xe9) and isa-debug-exit (0xf4).
const (
	PortConsole = 0xe9 // each byte written is console output
	PortExit    = 0xf4 // a write of 1, 2 or 4 bytes ends the VM with that status
)

// consolePort writes every byte the guest outputs to w.
type consolePort struct {
	mu sync.Mutex
	w  io.Writer
}

func (c *consolePort) Read(_ uint64, data []byte) { devices.FillOnes(data) }

func (c *consolePort) Write(_ uint64, data []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.w.Write(data) // a console that fails to print must not stop the guest
}

// exitPort ends the VM with the status the guest writes.
type exitPort struct {
	stop func(Result)
}

func (e *exitPort) Read(_ uint64, data []byte) { devices.FillOnes(data) }

func (e *exitPort) Write(_ uint64, data []byte) {
	e.stop(Result{Reason: StopExit, Status: int(devices.Uint(data))})
}
