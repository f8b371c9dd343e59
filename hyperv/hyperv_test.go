package hyperv

import (
	"encoding/binary"
	"errors"
	"fmt"
	"testing"
)

// ram is guest memory for the tests: size bytes at guest physical address
// base, nothing elsewhere.
type ram struct {
	base uint64
	b    []byte
}

func newRAM(base uint64, pages int) *ram { return &ram{base: base, b: make([]byte, pages*pageSize)} }

func (r *ram) Slice(gpa, n uint64) ([]byte, error) {
	if gpa < r.base || gpa-r.base > uint64(len(r.b)) || n > uint64(len(r.b))-(gpa-r.base) {
		return nil, fmt.Errorf("%#x+%#x is not RAM", gpa, n)
	}
	off := gpa - r.base
	return r.b[off : off+n : off+n], nil
}

func (r *ram) at(gpa uint64) []byte { return r.b[gpa-r.base:] }

// putPostMessage writes an HV_INPUT_POST_MESSAGE at gpa.
func (r *ram) putPostMessage(gpa uint64, conn, typ, size uint32, payload string) {
	b := r.at(gpa)
	binary.LittleEndian.PutUint32(b[0:], conn)
	binary.LittleEndian.PutUint32(b[8:], typ)
	binary.LittleEndian.PutUint32(b[12:], size)
	copy(b[16:16+MessagePayloadSize], payload)
}

const ramBase = 0x10000

func TestReadPostMessage(t *testing.T) {
	mem := newRAM(ramBase, 2)
	mem.putPostMessage(ramBase+0x100, 0x1000010, 0x12345678, 8, "payload!")
	mem.putPostMessage(ramBase+0x400, 0x10, 1, MessagePayloadSize, "full")
	mem.putPostMessage(ramBase+0x800, 0x10, 1, MessagePayloadSize+1, "too long")
	tests := []struct {
		name   string
		gpa    uint64
		fast   bool
		status Status
		conn   uint32
		size   uint32
	}{
		{"an input in RAM", ramBase + 0x100, false, StatusSuccess, 0x1000010, 8},
		{"a full payload", ramBase + 0x400, false, StatusSuccess, 0x10, MessagePayloadSize},
		{"a payload past 240 bytes", ramBase + 0x800, false, StatusInvalidHypercallInput, 0, 0},
		{"a fast call has no input", ramBase + 0x100, true, StatusInvalidHypercallCode, 0, 0},
		{"misaligned", ramBase + 0x104, false, StatusInvalidAlignment, 0, 0},
		{"across a page boundary", ramBase + pageSize - 0x80, false, StatusInvalidAlignment, 0, 0},
		{"outside RAM", ramBase + 2*pageSize, false, StatusInsufficientMemory, 0, 0},
		{"at the top of the address space", 0xffff_ffff_ffff_ff00, false, StatusInsufficientMemory, 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in, st := ReadPostMessage(mem, tt.gpa, tt.fast)
			if st != tt.status {
				t.Fatalf("status %v, want %v", st, tt.status)
			}
			if in.ConnectionID != tt.conn || in.PayloadSize != tt.size {
				t.Errorf("connection %#x size %d, want %#x %d", in.ConnectionID, in.PayloadSize, tt.conn, tt.size)
			}
		})
	}
	in, _ := ReadPostMessage(mem, ramBase+0x100, false)
	if in.MessageType != 0x12345678 || string(in.Payload[:8]) != "payload!" {
		t.Errorf("type %#x payload %q", in.MessageType, in.Payload[:8])
	}
}

func TestReadSignalEvent(t *testing.T) {
	mem := newRAM(ramBase, 1)
	binary.LittleEndian.PutUint64(mem.at(ramBase+0x10), 0x21)
	binary.LittleEndian.PutUint64(mem.at(ramBase+0x18), 1<<32|0x21)
	tests := []struct {
		name   string
		param  uint64
		fast   bool
		status Status
		conn   uint32
	}{
		{"a fast call's connection id", 0x20, true, StatusSuccess, 0x20},
		{"the largest connection id", ConnectionIDMask, true, StatusSuccess, ConnectionIDMask},
		{"a flag number", 1<<32 | 0x20, true, StatusInvalidPortID, 0},
		{"reserved bits 24-31", 1<<24 | 0x20, true, StatusInvalidHypercallInput, 0},
		{"reserved bits 48-63", 1<<48 | 0x20, true, StatusInvalidHypercallInput, 0},
		{"the id in memory", ramBase + 0x10, false, StatusSuccess, 0x21},
		{"a flag number in memory", ramBase + 0x18, false, StatusInvalidPortID, 0},
		{"misaligned", ramBase + 0x14, false, StatusInvalidAlignment, 0},
		{"outside RAM", ramBase + pageSize, false, StatusInvalidAlignment, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			conn, st := ReadSignalEvent(mem, tt.param, tt.fast)
			if st != tt.status || conn != tt.conn {
				t.Errorf("got %#x %v, want %#x %v", conn, st, tt.conn, tt.status)
			}
		})
	}
}

func TestConnectionsHypercall(t *testing.T) {
	mem := newRAM(ramBase, 1)
	mem.putPostMessage(ramBase, 0x7000010, 5, 3, "abc") // bits past the id's 24 are ignored
	mem.putPostMessage(ramBase+0x200, 0x11, 5, 3, "abc")
	var c Connections
	var got []string
	if err := c.HandleMessages(0x10, func(in PostMessageInput) Status {
		got = append(got, fmt.Sprintf("message %#x %q", in.ConnectionID, in.Payload[:in.PayloadSize]))
		return StatusInsufficientBuffers
	}); err != nil {
		t.Fatal(err)
	}
	if err := c.HandleEvents(0x20, func() Status { got = append(got, "event 0x20"); return StatusSuccess }); err != nil {
		t.Fatal(err)
	}
	if err := c.HandleEvents(0x20, func() Status { return StatusSuccess }); !errors.Is(err, ErrConnectionInUse) {
		t.Errorf("a second event handler for 0x20: %v, want ErrConnectionInUse", err)
	}
	tests := []struct {
		name         string
		input, param uint64
		status       Status
		handled      string
	}{
		{"a message to a connection gets its handler's answer", CallPostMessage, ramBase, StatusInsufficientBuffers, `message 0x7000010 "abc"`},
		{"a message to no connection", CallPostMessage, ramBase + 0x200, StatusInvalidConnectionID, ""},
		{"a bad message input", CallPostMessage, ramBase + 4, StatusInvalidAlignment, ""},
		{"an event on a connection", CallSignalEvent | callFast, 0x20, StatusSuccess, "event 0x20"},
		{"an event on no connection", CallSignalEvent | callFast, 0x1234, StatusInvalidPortID, ""},
		{"an unknown call", 0x5e, 0, StatusInvalidHypercallCode, ""},
		{"the high bits of the input are not the code", 1<<32 | 0x99, 0, StatusInvalidHypercallCode, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got = nil
			if st := c.Hypercall(mem, tt.input, tt.param); st != tt.status {
				t.Errorf("status %v, want %v", st, tt.status)
			}
			if h := fmt.Sprint(got); (tt.handled == "" && len(got) != 0) || (tt.handled != "" && h != "["+tt.handled+"]") {
				t.Errorf("handled %v, want %q", got, tt.handled)
			}
		})
	}
	if err := c.HandleEvents(0x20, nil); err != nil {
		t.Fatal(err)
	}
	if st := c.Hypercall(mem, CallSignalEvent|callFast, 0x20); st != StatusInvalidPortID {
		t.Errorf("an event on a removed connection: %v, want %v", st, StatusInvalidPortID)
	}
}

func TestStatusString(t *testing.T) {
	for st, want := range map[Status]string{StatusSuccess: "HV_STATUS_SUCCESS", StatusInvalidPortID: "HV_STATUS_INVALID_PORT_ID", 0x77: "HV_STATUS_0x77"} {
		if got := st.String(); got != want {
			t.Errorf("%d: %q, want %q", uint16(st), got, want)
		}
	}
}
