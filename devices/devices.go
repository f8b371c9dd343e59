// Package devices holds what every ember device model shares: the interrupt
// line a device drives and the register-level port interface the I/O bus
// calls. The device models themselves (devices/uart, devices/i8042,
// devices/rtc, ...) know nothing of KVM or of how an access reaches them, so
// each is tested with no VM at all.
//
// # Concurrency and lock order
//
// Every device guards its state with one mutex of its own. vCPU goroutines
// (port accesses) and host goroutines (console input, key presses) may call a
// device at the same time. While holding that mutex a device may call out to
// exactly two kinds of things: the IRQLine it was given and, for the UART, the
// output io.Writer. The lock order is therefore
//
//	device mutex -> IRQLine / io.Writer internals
//
// and implementations of IRQLine and of the output writer must never call back
// into the device that called them (directly or by waiting on a goroutine that
// does), or they deadlock. Callbacks that may do heavy work, such as the
// i8042's CPU-reset callback, are called after the device mutex is released.
package devices

import (
	"context"
	"encoding/binary"
	"log/slog"
)

// IRQLine is an interrupt request line a device drives, modelled as a level:
// SetLevel(true) asserts it, SetLevel(false) deasserts it. The owner maps it to
// whatever delivers interrupts (a KVM_IRQ_LINE ioctl, an irqfd, a test fake).
// A device that needs an edge, as the ISA 8259 PIC sees edges, pulses it
// (false then true). Devices call SetLevel only when the level changes or when
// they pulse, so an implementation may forward every call as is.
//
// SetLevel is called with the device's mutex held: it must not call back into
// the device.
type IRQLine interface {
	SetLevel(high bool)
}

// IRQFunc adapts an ordinary function to IRQLine, e.g.
// devices.IRQFunc(func(high bool) { vm.SetIRQLine(4, high) }).
type IRQFunc func(high bool)

// SetLevel calls f(high).
func (f IRQFunc) SetLevel(high bool) { f(high) }

// NoIRQ is an IRQLine connected to nothing, for devices whose interrupt the
// owner does not wire (or tests that do not care).
type NoIRQ struct{}

// SetLevel does nothing.
func (NoIRQ) SetLevel(bool) {}

// Device is the one shape every register-level device model has, port-mapped
// or memory-mapped, so every device plugs onto a VM's buses (hv.Bus) and the
// I/O request path (ioreq.DeviceHandler) the same way. offset is relative to
// the base of the device's range; len(data) is the access size (1, 2 or 4
// bytes for ports, up to 8 for MMIO).
//
// Read fills all of data; Write consumes all of data. Neither ever panics,
// whatever the offset, size or value: each device documents what it does with
// offsets and sizes it does not implement (the convention is that reads return
// all-ones, as an undriven ISA bus does, writes are ignored, and both are
// counted and logged).
type Device interface {
	Read(offset uint64, data []byte)
	Write(offset uint64, data []byte)
}

// Anomalies counts and logs the things a guest does that a device cannot
// honour (bad access sizes, writes to read-only registers, invalid values). A
// guest controls how often that happens, so only the first occurrence of each
// kind is logged at Warn level; repeats go to Debug and are only counted.
//
// Anomalies is not safe for concurrent use on its own: a device keeps one
// inside the state its mutex guards.
type Anomalies struct {
	logger *slog.Logger
	device string
	counts map[string]uint64
}

// NewAnomalies returns an Anomalies that logs through logger (slog.Default()
// if nil) with a "device" attribute of device.
func NewAnomalies(logger *slog.Logger, device string) *Anomalies {
	if logger == nil {
		logger = slog.Default()
	}
	return &Anomalies{logger: logger, device: device, counts: map[string]uint64{}}
}

// Report records one occurrence of kind (a short constant phrase such as
// "unsupported access size") with optional detail attributes.
func (a *Anomalies) Report(kind string, args ...any) {
	a.counts[kind]++
	level := slog.LevelWarn
	if a.counts[kind] > 1 {
		level = slog.LevelDebug
	}
	a.logger.Log(context.Background(), level, kind, append([]any{"device", a.device, "count", a.counts[kind]}, args...)...)
}

// Counts returns a copy of the number of occurrences of each kind so far.
func (a *Anomalies) Counts() map[string]uint64 {
	m := make(map[string]uint64, len(a.counts))
	for k, v := range a.counts {
		m[k] = v
	}
	return m
}

// Uint returns the value of an access's data: up to 8 bytes, little-endian,
// as x86 puts a register's value on the bus.
func Uint(data []byte) uint64 {
	var b [8]byte
	copy(b[:], data)
	return binary.LittleEndian.Uint64(b[:])
}

// PutUint stores the low len(data) bytes of v in data, little-endian: a
// read's value on its way back to the vCPU.
func PutUint(data []byte, v uint64) {
	var b [8]byte
	binary.LittleEndian.PutUint64(b[:], v)
	copy(data, b[:])
}

// FillOnes sets every byte of data to 0xff: what a read of an unimplemented
// port or an unsupported access size returns.
func FillOnes(data []byte) {
	for i := range data {
		data[i] = 0xff
	}
}
