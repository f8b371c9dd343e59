// Package console is the virtio console device (virtio 1.2, §5.3) with one
// port, the guest's /dev/hvc0 under Linux's virtio_console driver: what the
// guest writes to its transmitq goes to an io.Writer on the host, and what an
// io.Reader on the host yields goes to the guest through its receiveq. It
// offers VIRTIO_CONSOLE_F_SIZE (the console's columns and rows, changed with
// Resize) and VIRTIO_CONSOLE_F_EMERG_WRITE (one character written to the
// configuration space, usable before the driver has set the device up), and
// not VIRTIO_CONSOLE_F_MULTIPORT: with one port there are no control queues.
//
// Each queue is served on a goroutine of the device's own, as virtio/blk and
// virtio/rng do. Everything the driver puts in the queues is hostile input:
// a malformed chain is logged and returned with nothing written, and the
// device never touches guest memory outside the chains Queue.Pop checked.
package console

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"

	"ember/memory"
	"ember/virtio"
)

// Feature bits of the console device (§5.3.3).
const (
	// FeatureSize is VIRTIO_CONSOLE_F_SIZE: cols and rows in the
	// configuration space are valid.
	FeatureSize = 1 << 0
	// FeatureMultiport is VIRTIO_CONSOLE_F_MULTIPORT, which the device does
	// not offer: it has one port and no control queues.
	FeatureMultiport = 1 << 1
	// FeatureEmergWrite is VIRTIO_CONSOLE_F_EMERG_WRITE: a write to emerg_wr
	// outputs one character.
	FeatureEmergWrite = 1 << 2
)

// The device's queues (§5.3.2): port 0's receiveq and transmitq. The control
// queues that would follow exist only with VIRTIO_CONSOLE_F_MULTIPORT.
const (
	ReceiveQueue  = 0 // host to guest: the driver posts device-writable buffers
	TransmitQueue = 1 // guest to host: the driver posts device-readable buffers
)

// QueueSize is the maximum size of each of the two queues.
const QueueSize = 128

// Config describes a console.
type Config struct {
	// Output receives what the guest writes to the console, in order:
	// os.Stdout, a log file. It is written from the transmit goroutine and,
	// for emergency writes, from the vCPU thread that made them, never from
	// two at once. A slow Output holds the guest, since Linux's hvc driver
	// waits, spinning, for the device to take each write, and a Reset, which
	// waits for the Write in progress. Required.
	Output io.Writer
	// Input, if not nil, is what the guest reads from the console. One
	// goroutine reads it for the Device's whole life, from New to Close,
	// whatever the driver does in between (see Close for how it ends), so a
	// reader that blocks, such as a terminal's stdin, costs one goroutine per
	// Device and not one per activation. Bytes it yields wait, in order, until
	// the driver posts receive buffers; while they wait it is not read
	// further, so a guest that reads nothing holds the input back rather
	// than the host buffering it without bound. Nothing read is dropped by
	// a device reset: it goes to the next activation.
	Input io.Reader
	// Cols and Rows are the console's size, reported with
	// VIRTIO_CONSOLE_F_SIZE; 0 means unknown, as for a tty nobody sized.
	// Resize changes them.
	Cols, Rows uint16
	// Logger gets malformed chains and I/O errors; nil is slog.Default().
	Logger *slog.Logger
}

// Device is a virtio console with one port: a virtio.Device. Create it with
// New and end it with Close.
type Device struct {
	log    *slog.Logger
	out    io.Writer
	outMu  sync.Mutex // one writer of Output at a time: transmit and emergency writes
	outOff bool       // Close ran: Output is written no more (guarded by outMu)

	size         atomic.Uint32          // cols | rows<<16, read whole by ReadConfig
	configNotify atomic.Pointer[func()] // SetConfigNotify's function, nil until set
	in           *inputReader           // nil without Config.Input
	pending      []byte                 // input taken from in, not yet in the guest: owned by the receive worker while one runs
	mu           sync.Mutex             // guards what follows, against Activate, Notify, Reset and Close
	workers      [2]*worker             // while active: one per enabled queue
	active       bool                   // Activate succeeded and Reset has not run
	closed       bool                   // Close ran
}

var _ virtio.Device = (*Device)(nil)

// New returns an inactive console. With cfg.Input it starts the goroutine
// that reads it, which Close ends.
func New(cfg Config) (*Device, error) {
	if cfg.Output == nil {
		return nil, errors.New("virtio-console: Config.Output is nil")
	}
	d := &Device{log: cfg.Logger, out: cfg.Output}
	if d.log == nil {
		d.log = slog.Default()
	}
	d.size.Store(packSize(cfg.Cols, cfg.Rows))
	if cfg.Input != nil {
		d.in = startInput(cfg.Input, d.log)
	}
	return d, nil
}

// Close resets the device, so it serves no queue, and ends the input
// goroutine: at once when it is waiting to hand bytes to the guest, and when
// Input has SetReadDeadline (an *os.File on a pipe or socket, a net.Conn)
// by setting a deadline in the past, which ends a Read in progress; Close
// waits for it then. No Go code can end a Read that has no deadline, such
// as one on a terminal's stdin: that goroutine returns, keeping nothing it
// read, when the Read does (the next keystroke, or EOF). Once Close has
// returned, Output is not written again (emergency writes are ignored), so
// the caller may close it. Close is idempotent and returns nil; the Device
// cannot be activated afterwards.
func (d *Device) Close() error {
	d.mu.Lock()
	already := d.closed
	d.closed = true // first: no Activate can start workers past the Reset
	d.mu.Unlock()
	d.Reset()
	d.outMu.Lock()
	d.outOff = true
	d.outMu.Unlock()
	if !already && d.in != nil {
		d.in.close()
	}
	return nil
}

// Type returns virtio.IDConsole.
func (d *Device) Type() uint16 { return virtio.IDConsole }

// Features returns VIRTIO_CONSOLE_F_SIZE and VIRTIO_CONSOLE_F_EMERG_WRITE.
func (d *Device) Features() uint64 { return FeatureSize | FeatureEmergWrite }

// QueueSizes returns the sizes of the receiveq and the transmitq.
func (d *Device) QueueSizes() []uint16 { return []uint16{QueueSize, QueueSize} }

// Activate starts one goroutine for each queue the driver enabled: the
// transmit one writes the guest's output, the receive one hands it input.
// A disabled queue is not served.
func (d *Device) Activate(mem *memory.Guest, features uint64, queues []*virtio.Queue, interrupt func(queue int)) error {
	if len(queues) != 2 {
		return fmt.Errorf("virtio-console: activated with %d queues, want 2", len(queues))
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	switch {
	case d.closed:
		return errors.New("virtio-console: activated after Close")
	case d.active:
		return errors.New("virtio-console: activated twice without a reset")
	}
	d.active = true
	for i, q := range queues {
		if q == nil {
			d.log.Debug("virtio-console: the driver left a queue disabled", "queue", i)
			continue
		}
		w := newWorker(d, mem, q, i, interrupt)
		d.workers[i] = w
		if i == ReceiveQueue {
			go w.serveReceive()
		} else {
			go w.serveTransmit()
		}
	}
	return nil
}

// Notify wakes the worker of queue: the driver posted buffers. A kick that
// arrives while one is pending merges with it; a worker drains its queue for
// each.
func (d *Device) Notify(queue int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if queue < 0 || queue >= len(d.workers) || d.workers[queue] == nil {
		return
	}
	d.workers[queue].kick.Send()
}

// Reset stops the workers and waits until their goroutines have returned.
// Input the receive worker held stays with the device for the next
// activation. The device can be activated again.
func (d *Device) Reset() {
	d.mu.Lock()
	ws := d.workers
	d.workers = [2]*worker{}
	d.active = false
	d.mu.Unlock()
	for _, w := range ws {
		if w != nil {
			close(w.stop)
			<-w.done
		}
	}
}

// Resize sets the console's size, as a host terminal reports a change
// (SIGWINCH). ReadConfig returns the new size at once. Linux reads it when
// the device sends a configuration change notification, which the
// transport does through the function SetConfigNotify gave, if any.
func (d *Device) Resize(cols, rows uint16) {
	if d.size.Swap(packSize(cols, rows)) == packSize(cols, rows) {
		return
	}
	if notify := d.configNotify.Load(); notify != nil {
		(*notify)()
	}
}

// SetConfigNotify gives the device the function it calls after its
// configuration space changed on its own (Resize): the transport's, which
// bumps config_generation and sends the configuration change notification.
// virtio.Device has no such callback; a transport that knows this method
// (an optional interface) calls it once, before the device is used.
func (d *Device) SetConfigNotify(notify func()) {
	if notify == nil {
		d.configNotify.Store(nil)
		return
	}
	d.configNotify.Store(&notify)
}

// packSize packs cols and rows for Device.size.
func packSize(cols, rows uint16) uint32 { return uint32(cols) | uint32(rows)<<16 }

// write writes p to Output, one writer at a time, unless Close ran.
func (d *Device) write(p []byte) error {
	d.outMu.Lock()
	defer d.outMu.Unlock()
	if d.outOff {
		return nil
	}
	_, err := d.out.Write(p)
	return err
}

// SetEvents is virtio.EventSource: a resize becomes the transport's
// configuration change notification.
func (d *Device) SetEvents(e virtio.Events) { d.SetConfigNotify(e.ConfigChanged) }
