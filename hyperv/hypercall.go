package hyperv

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
)

// Status is a Hyper-V hypercall's result code (HV_STATUS_*), what the guest
// finds in RAX.
type Status uint16

// Hypercall status codes of the Hyper-V TLFS used here.
const (
	StatusSuccess               Status = 0x00
	StatusInvalidHypercallCode  Status = 0x02
	StatusInvalidHypercallInput Status = 0x03
	StatusInvalidAlignment      Status = 0x04
	StatusInsufficientMemory    Status = 0x0b
	StatusInvalidPortID         Status = 0x11
	StatusInvalidConnectionID   Status = 0x12
	StatusInsufficientBuffers   Status = 0x13
)

func (s Status) String() string {
	names := map[Status]string{
		StatusSuccess:               "HV_STATUS_SUCCESS",
		StatusInvalidHypercallCode:  "HV_STATUS_INVALID_HYPERCALL_CODE",
		StatusInvalidHypercallInput: "HV_STATUS_INVALID_HYPERCALL_INPUT",
		StatusInvalidAlignment:      "HV_STATUS_INVALID_ALIGNMENT",
		StatusInsufficientMemory:    "HV_STATUS_INSUFFICIENT_MEMORY",
		StatusInvalidPortID:         "HV_STATUS_INVALID_PORT_ID",
		StatusInvalidConnectionID:   "HV_STATUS_INVALID_CONNECTION_ID",
		StatusInsufficientBuffers:   "HV_STATUS_INSUFFICIENT_BUFFERS",
	}
	if n, ok := names[s]; ok {
		return n
	}
	return fmt.Sprintf("HV_STATUS_%#x", uint16(s))
}

// Hypercall codes (the low 16 bits of the hypercall input value) that reach
// the VMM.
const (
	CallPostMessage = 0x5c // HvPostMessage: a message to a connection
	CallSignalEvent = 0x5d // HvSignalEvent: an event flag of a connection
)

// callFast is the hypercall input bit for a fast call: the input is in
// registers, not in guest memory at the address the register holds.
const callFast = 1 << 16

// ConnectionIDMask is the part of a connection id that names the
// connection; HvSignalEvent's remaining bits must be zero.
const ConnectionIDMask = 0x00ffffff

// PostMessageInput is HvPostMessage's input (HV_INPUT_POST_MESSAGE, 256
// bytes): a message to a connection.
type PostMessageInput struct {
	ConnectionID uint32
	MessageType  uint32
	PayloadSize  uint32 // at most MessagePayloadSize
	Payload      [MessagePayloadSize]byte
}

// postMessageInputSize is the size of HV_INPUT_POST_MESSAGE; it is 8-byte
// aligned.
const postMessageInputSize = 16 + MessagePayloadSize

// Memory is guest RAM as this package reaches it: Slice returns the host
// bytes behind [gpa, gpa+n), all of them RAM, or an error (memory.Guest).
type Memory interface {
	Slice(gpa, n uint64) ([]byte, error)
}

// pageSize is the size of a guest page; hypercall input and SynIC pages do
// not cross one.
const pageSize = 4096

// ReadPostMessage reads and checks HvPostMessage's input at the guest
// physical address gpa. A fast call has no memory input, and QEMU refuses
// it as an unknown call; the input must be 8-byte aligned and, as the TLFS
// asks of every input, inside one page; it must be RAM; its payload size
// must fit the payload.
func ReadPostMessage(mem Memory, gpa uint64, fast bool) (PostMessageInput, Status) {
	var in PostMessageInput
	switch {
	case fast:
		return in, StatusInvalidHypercallCode
	case gpa%8 != 0 || gpa%pageSize+postMessageInputSize > pageSize:
		return in, StatusInvalidAlignment
	}
	b, err := mem.Slice(gpa, postMessageInputSize)
	if err != nil {
		return in, StatusInsufficientMemory
	}
	in.ConnectionID = binary.LittleEndian.Uint32(b[0:])
	in.MessageType = binary.LittleEndian.Uint32(b[8:])
	in.PayloadSize = binary.LittleEndian.Uint32(b[12:])
	if in.PayloadSize > MessagePayloadSize {
		return PostMessageInput{}, StatusInvalidHypercallInput
	}
	copy(in.Payload[:], b[16:])
	return in, StatusSuccess
}

// ReadSignalEvent reads HvSignalEvent's input, the connection id: param
// itself for a fast call, else the 8 bytes at guest physical address param
// (aligned, inside one page, RAM). The event flag number in bits 32-47 must
// be zero (KVM and QEMU have no use for it and report no such port), and so
// must the reserved bits.
func ReadSignalEvent(mem Memory, param uint64, fast bool) (uint32, Status) {
	if !fast {
		if param%8 != 0 || param%pageSize+8 > pageSize {
			return 0, StatusInvalidAlignment
		}
		b, err := mem.Slice(param, 8)
		if err != nil {
			return 0, StatusInvalidAlignment
		}
		param = binary.LittleEndian.Uint64(b)
	}
	switch {
	case param&0xffff_0000_0000 != 0:
		return 0, StatusInvalidPortID
	case param&^ConnectionIDMask != 0:
		return 0, StatusInvalidHypercallInput
	}
	return uint32(param), StatusSuccess
}

// MessageHandler takes a message the guest posted to a connection and
// answers the hypercall.
type MessageHandler func(PostMessageInput) Status

// EventHandler takes an event the guest signalled on a connection and
// answers the hypercall.
type EventHandler func() Status

// Connections are the host-side connections a guest's HvPostMessage and
// HvSignalEvent reach, by connection id. Its methods are safe for
// concurrent use: vCPUs call Hypercall while a device adds and removes
// connections.
type Connections struct {
	mu       sync.RWMutex
	messages map[uint32]MessageHandler
	events   map[uint32]EventHandler
}

// ErrConnectionInUse is returned for a connection id that already has a
// handler of the kind asked for.
var ErrConnectionInUse = errors.New("hyperv: connection id in use")

// HandleMessages makes h take the messages posted to connection id conn;
// a nil h removes the handler.
func (c *Connections) HandleMessages(conn uint32, h MessageHandler) error {
	return setHandler(&c.mu, &c.messages, "message", conn, h, h == nil)
}

// HandleEvents makes h take the events signalled on connection id conn; a
// nil h removes the handler.
func (c *Connections) HandleEvents(conn uint32, h EventHandler) error {
	return setHandler(&c.mu, &c.events, "event", conn, h, h == nil)
}

// setHandler adds h to the table *m under mu, or with remove drops conn's.
func setHandler[H any](mu *sync.RWMutex, m *map[uint32]H, kind string, conn uint32, h H, remove bool) error {
	conn &= ConnectionIDMask
	mu.Lock()
	defer mu.Unlock()
	if remove {
		delete(*m, conn)
		return nil
	}
	if _, ok := (*m)[conn]; ok {
		return fmt.Errorf("%w: %s connection %#x", ErrConnectionInUse, kind, conn)
	}
	if *m == nil {
		*m = map[uint32]H{}
	}
	(*m)[conn] = h
	return nil
}

// Hypercall answers a hypercall KVM left to the VMM: input is the
// hypercall input value (the call code in its low 16 bits, the fast bit),
// param the input parameter (a guest physical address, or for a fast call
// the value). HvPostMessage and HvSignalEvent go to the connection they
// name, or fail with its not-found status; any other call is unknown.
func (c *Connections) Hypercall(mem Memory, input, param uint64) Status {
	fast := input&callFast != 0
	switch uint16(input) {
	case CallPostMessage:
		in, st := ReadPostMessage(mem, param, fast)
		if st != StatusSuccess {
			return st
		}
		c.mu.RLock()
		h := c.messages[in.ConnectionID&ConnectionIDMask]
		c.mu.RUnlock()
		if h == nil {
			return StatusInvalidConnectionID
		}
		return h(in)
	case CallSignalEvent:
		conn, st := ReadSignalEvent(mem, param, fast)
		if st != StatusSuccess {
			return st
		}
		c.mu.RLock()
		h := c.events[conn]
		c.mu.RUnlock()
		if h == nil {
			return StatusInvalidPortID
		}
		return h()
	}
	return StatusInvalidHypercallCode
}
