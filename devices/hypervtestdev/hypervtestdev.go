// Package hypervtestdev models QEMU's hyperv-testdev, the ISA device
// kvm-unit-tests' Hyper-V SynIC tests (hyperv_synic, hyperv_connections)
// drive the host's side of the SynIC with (QEMU's -device hyperv-testdev).
// It is one write-only 32-bit register at I/O port 0x3000 (Port). A 4-byte
// write of
//
//	conn_id << 24 | command << 16 | vp_index << 8 | sint
//
// runs command (Command) for the SynIC of the vCPU with that VP index and
// one of its SINTs:
//
//   - SINTRouteCreate, SINTRouteDestroy: make or drop a route to
//     (vp_index, sint); SINTRouteSetSINT raises that SINT through it.
//   - MsgConnCreate: a message connection conn_id: what the guest posts to
//     it (HvPostMessage) is posted back, type and payload, into slot sint
//     of the message page of vp_index's SynIC, and the SINT raised; a
//     message that finds the slot busy waits for the guest's EOM, and one
//     more meanwhile is refused. MsgConnDestroy drops connection conn_id.
//   - EvtConnCreate: an event connection conn_id: HvSignalEvent on it sets
//     event flag conn_id in slot sint of vp_index's event flags page and,
//     if the flag was clear, raises the SINT. EvtConnDestroy drops it.
//
// Other sizes, offsets and commands, a SINT past 15, a VP index the VM does
// not have, a second route or connection where one exists and a destroy of
// one that does not are ignored, counted and logged (QEMU asserts on most
// of them). Reads return all ones.
//
// The SynIC itself (KVM's) and what the routes and connections do in guest
// memory are package hv's and package hyperv's; this package decodes the
// commands and keeps the device's routes and connections. It is a test
// device (it lets the guest raise any SINT of any vCPU), so a machine has
// it only when asked for (package pc's Config.HyperVTestDev).
//
// Concurrency: safe for concurrent use.
package hypervtestdev

import (
	"fmt"
	"log/slog"
	"sync"

	"ember/devices"
	"ember/hyperv"
)

// Where QEMU's hyperv-testdev is.
const (
	Port = 0x3000
	Size = 4
)

// Command is what a write to the register asks for.
type Command uint8

// Commands, numbered as kvm-unit-tests' x86/hyperv.c writes them.
const (
	SINTRouteCreate Command = iota + 1
	SINTRouteDestroy
	SINTRouteSetSINT
	MsgConnCreate
	MsgConnDestroy
	EvtConnCreate
	EvtConnDestroy
)

var commandNames = map[Command]string{
	SINTRouteCreate:  "sint-route-create",
	SINTRouteDestroy: "sint-route-destroy",
	SINTRouteSetSINT: "sint-route-set-sint",
	MsgConnCreate:    "msg-conn-create",
	MsgConnDestroy:   "msg-conn-destroy",
	EvtConnCreate:    "evt-conn-create",
	EvtConnDestroy:   "evt-conn-destroy",
}

func (c Command) String() string {
	if n, ok := commandNames[c]; ok {
		return n
	}
	return fmt.Sprintf("command-%d", uint8(c))
}

// Request is one decoded write to the register.
type Request struct {
	Command Command
	VP      uint8 // the VP index (vCPU) whose SynIC it is about
	SINT    uint8
	Conn    uint8 // the connection id of the Msg/EvtConn commands
}

// Decode splits a register value into its fields.
func Decode(v uint32) Request {
	return Request{Command: Command(v >> 16), VP: uint8(v >> 8), SINT: uint8(v), Conn: uint8(v >> 24)}
}

// SynIC is the host's side of the VM's SynICs the device drives (package
// hv's HyperV behind an adapter).
type SynIC interface {
	// NewSINTRoute makes a route to SINT sint of VP vp's SynIC; messages
	// says it will carry messages.
	NewSINTRoute(vp, sint uint32, messages bool) (Route, error)
	// HandleMessages and HandleEvents make h take the HvPostMessage and
	// HvSignalEvent hypercalls to connection conn; nil removes it.
	HandleMessages(conn uint32, h hyperv.MessageHandler) error
	HandleEvents(conn uint32, h hyperv.EventHandler) error
}

// Route raises one SINT, after putting a message or an event flag into the
// SynIC's pages for Post and SetEventFlag.
type Route interface {
	Signal() error
	Post(m hyperv.Message) hyperv.Status
	SetEventFlag(n uint32) error
	Close() error
}

// Device is one hyperv-testdev.
type Device struct {
	synic SynIC
	vps   int

	mu        sync.Mutex
	routes    map[[2]uint8]Route // (vp, sint) -> a plain route
	msgConns  map[uint8]Route    // connection id -> its route
	evtConns  map[uint8]Route
	anomalies *devices.Anomalies
	log       *slog.Logger
}

// New returns a device driving synic for a VM of vps vCPUs; a nil logger
// means slog.Default().
func New(synic SynIC, vps int, log *slog.Logger) *Device {
	if log == nil {
		log = slog.Default()
	}
	return &Device{
		synic: synic, vps: vps, log: log,
		routes:    map[[2]uint8]Route{},
		msgConns:  map[uint8]Route{},
		evtConns:  map[uint8]Route{},
		anomalies: devices.NewAnomalies(log, "hyperv-testdev"),
	}
}

// Read returns all ones: the register is write-only.
func (d *Device) Read(_ uint64, data []byte) {
	for i := range data {
		data[i] = 0xff
	}
}

// Write runs the command a 4-byte write at offset 0 carries.
func (d *Device) Write(off uint64, data []byte) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if off != 0 || len(data) != Size {
		d.anomalies.Report("unsupported access", "offset", off, "size", len(data))
		return
	}
	r := Decode(uint32(devices.Uint(data)))
	if err := d.run(r); err != nil {
		d.anomalies.Report("refused command", "command", r.Command, "vp", r.VP, "sint", r.SINT, "conn", r.Conn, "err", err)
	}
}

func (d *Device) run(r Request) error {
	switch r.Command {
	case SINTRouteCreate, SINTRouteDestroy, SINTRouteSetSINT, MsgConnCreate, EvtConnCreate:
		if int(r.VP) >= d.vps || r.SINT >= hyperv.SINTs {
			return fmt.Errorf("no SINT %d of VP %d in a VM of %d vCPUs", r.SINT, r.VP, d.vps)
		}
	case MsgConnDestroy, EvtConnDestroy:
	default:
		return fmt.Errorf("unknown command")
	}
	key := [2]uint8{r.VP, r.SINT}
	switch r.Command {
	case SINTRouteCreate:
		if d.routes[key] != nil {
			return fmt.Errorf("the route exists")
		}
		rt, err := d.synic.NewSINTRoute(uint32(r.VP), uint32(r.SINT), false)
		if err != nil {
			return err
		}
		d.routes[key] = rt
	case SINTRouteDestroy:
		rt := d.routes[key]
		if rt == nil {
			return fmt.Errorf("no such route")
		}
		delete(d.routes, key)
		return rt.Close()
	case SINTRouteSetSINT:
		rt := d.routes[key]
		if rt == nil {
			return fmt.Errorf("no such route")
		}
		return rt.Signal()
	case MsgConnCreate:
		return d.createMsgConn(r)
	case EvtConnCreate:
		return d.createEvtConn(r)
	case MsgConnDestroy:
		return d.destroyConn(d.msgConns, r.Conn, func() error { return d.synic.HandleMessages(uint32(r.Conn), nil) })
	case EvtConnDestroy:
		return d.destroyConn(d.evtConns, r.Conn, func() error { return d.synic.HandleEvents(uint32(r.Conn), nil) })
	}
	return nil
}

// createMsgConn makes message connection r.Conn: each message posted to it
// is posted back, its type and payload, to (r.VP, r.SINT).
func (d *Device) createMsgConn(r Request) error {
	if d.msgConns[r.Conn] != nil {
		return fmt.Errorf("the message connection exists")
	}
	rt, err := d.synic.NewSINTRoute(uint32(r.VP), uint32(r.SINT), true)
	if err != nil {
		return err
	}
	echo := func(in hyperv.PostMessageInput) hyperv.Status {
		m := hyperv.Message{Type: in.MessageType, PayloadSize: uint8(in.PayloadSize)}
		copy(m.Payload[:], in.Payload[:min(in.PayloadSize, hyperv.MessagePayloadSize)])
		return rt.Post(m)
	}
	if err := d.synic.HandleMessages(uint32(r.Conn), echo); err != nil {
		rt.Close()
		return err
	}
	d.msgConns[r.Conn] = rt
	return nil
}

// createEvtConn makes event connection r.Conn: an event signalled on it
// sets flag r.Conn of (r.VP, r.SINT). The hypercall succeeds whatever
// becomes of the flag, as QEMU's does (it sets the flag later).
func (d *Device) createEvtConn(r Request) error {
	if d.evtConns[r.Conn] != nil {
		return fmt.Errorf("the event connection exists")
	}
	rt, err := d.synic.NewSINTRoute(uint32(r.VP), uint32(r.SINT), false)
	if err != nil {
		return err
	}
	flag := uint32(r.Conn)
	signal := func() hyperv.Status {
		if err := rt.SetEventFlag(flag); err != nil {
			d.log.Debug("hyperv-testdev: event not delivered", "conn", flag, "err", err)
		}
		return hyperv.StatusSuccess
	}
	if err := d.synic.HandleEvents(uint32(r.Conn), signal); err != nil {
		rt.Close()
		return err
	}
	d.evtConns[r.Conn] = rt
	return nil
}

// destroyConn removes a connection's handler (unhandle), then closes its
// route.
func (d *Device) destroyConn(conns map[uint8]Route, conn uint8, unhandle func() error) error {
	rt := conns[conn]
	if rt == nil {
		return fmt.Errorf("no such connection")
	}
	delete(conns, conn)
	if err := unhandle(); err != nil {
		return err
	}
	return rt.Close()
}

// Close drops every route and connection the guest left.
func (d *Device) Close() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	var first error
	keep := func(err error) {
		if first == nil {
			first = err
		}
	}
	for k, rt := range d.routes {
		keep(rt.Close())
		delete(d.routes, k)
	}
	for c, rt := range d.msgConns {
		keep(d.synic.HandleMessages(uint32(c), nil))
		keep(rt.Close())
		delete(d.msgConns, c)
	}
	for c, rt := range d.evtConns {
		keep(d.synic.HandleEvents(uint32(c), nil))
		keep(rt.Close())
		delete(d.evtConns, c)
	}
	return first
}
