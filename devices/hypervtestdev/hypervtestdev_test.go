package hypervtestdev

import (
	"encoding/binary"
	"fmt"
	"log/slog"
	"reflect"
	"testing"

	"ember/hyperv"
)

var quiet = slog.New(slog.DiscardHandler)

// fakeSynIC records what the device asks of the host's SynIC side.
type fakeSynIC struct {
	log      []string
	messages map[uint32]hyperv.MessageHandler
	events   map[uint32]hyperv.EventHandler
}

func newFake() *fakeSynIC {
	return &fakeSynIC{messages: map[uint32]hyperv.MessageHandler{}, events: map[uint32]hyperv.EventHandler{}}
}

func (f *fakeSynIC) add(format string, args ...any) {
	f.log = append(f.log, fmt.Sprintf(format, args...))
}

func (f *fakeSynIC) NewSINTRoute(vp, sint uint32, messages bool) (Route, error) {
	f.add("route %d/%d messages=%v", vp, sint, messages)
	return &fakeRoute{f: f, name: fmt.Sprintf("%d/%d", vp, sint)}, nil
}

func (f *fakeSynIC) HandleMessages(conn uint32, h hyperv.MessageHandler) error {
	return handle(f, f.messages, "messages", conn, h, h == nil)
}

func (f *fakeSynIC) HandleEvents(conn uint32, h hyperv.EventHandler) error {
	return handle(f, f.events, "events", conn, h, h == nil)
}

func handle[H any](f *fakeSynIC, m map[uint32]H, kind string, conn uint32, h H, off bool) error {
	if off {
		f.add("%s %#x off", kind, conn)
		delete(m, conn)
		return nil
	}
	f.add("%s %#x on", kind, conn)
	m[conn] = h
	return nil
}

type fakeRoute struct {
	f    *fakeSynIC
	name string
}

func (r *fakeRoute) Signal() error { r.f.add("signal %s", r.name); return nil }
func (r *fakeRoute) Close() error  { r.f.add("close %s", r.name); return nil }
func (r *fakeRoute) SetEventFlag(n uint32) error {
	r.f.add("flag %#x on %s", n, r.name)
	return nil
}
func (r *fakeRoute) Post(m hyperv.Message) hyperv.Status {
	r.f.add("post type %#x %q on %s", m.Type, m.Payload[:m.PayloadSize], r.name)
	return hyperv.StatusInsufficientBuffers
}

// cmd is the register value kvm-unit-tests' synic_ctl writes.
func cmd(c Command, vp, sint, conn uint8) uint32 {
	return uint32(conn)<<24 | uint32(c)<<16 | uint32(vp)<<8 | uint32(sint)
}

func TestDecode(t *testing.T) {
	got := Decode(cmd(MsgConnCreate, 1, 8, 0x11))
	want := Request{Command: MsgConnCreate, VP: 1, SINT: 8, Conn: 0x11}
	if got != want {
		t.Errorf("%+v, want %+v", got, want)
	}
}

// TestCommands: each row is a write sequence as kvm-unit-tests' SynIC tests
// make them, and what the host's side was asked to do.
func TestCommands(t *testing.T) {
	tests := []struct {
		name   string
		writes []uint32
		want   []string
		bad    int // writes refused
	}{
		{"a route is made, raised and dropped",
			[]uint32{cmd(SINTRouteCreate, 1, 5, 0), cmd(SINTRouteSetSINT, 1, 5, 0), cmd(SINTRouteDestroy, 1, 5, 0)},
			[]string{"route 1/5 messages=false", "signal 1/5", "close 1/5"}, 0},
		{"a message connection",
			[]uint32{cmd(MsgConnCreate, 0, 8, 0x10), cmd(MsgConnDestroy, 0, 0, 0x10)},
			[]string{"route 0/8 messages=true", "messages 0x10 on", "messages 0x10 off", "close 0/8"}, 0},
		{"an event connection",
			[]uint32{cmd(EvtConnCreate, 1, 9, 0x21), cmd(EvtConnDestroy, 0, 0, 0x21)},
			[]string{"route 1/9 messages=false", "events 0x21 on", "events 0x21 off", "close 1/9"}, 0},
		{"a second route to one SINT is refused",
			[]uint32{cmd(SINTRouteCreate, 0, 1, 0), cmd(SINTRouteCreate, 0, 1, 0)}, []string{"route 0/1 messages=false"}, 1},
		{"raising or dropping a route that does not exist",
			[]uint32{cmd(SINTRouteSetSINT, 0, 1, 0), cmd(SINTRouteDestroy, 0, 1, 0)}, nil, 2},
		{"a VP index the VM does not have", []uint32{cmd(SINTRouteCreate, 2, 1, 0)}, nil, 1},
		{"SINT 16", []uint32{cmd(MsgConnCreate, 0, 16, 1)}, nil, 1},
		{"a second connection with one id",
			[]uint32{cmd(EvtConnCreate, 0, 9, 0x20), cmd(EvtConnCreate, 1, 9, 0x20)},
			[]string{"route 0/9 messages=false", "events 0x20 on"}, 1},
		{"dropping a connection that does not exist", []uint32{cmd(MsgConnDestroy, 0, 0, 7)}, nil, 1},
		{"an unknown command", []uint32{cmd(0, 0, 0, 0), cmd(8, 0, 0, 0)}, nil, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFake()
			d := New(f, 2, quiet)
			for _, w := range tt.writes {
				var b [4]byte
				binary.LittleEndian.PutUint32(b[:], w)
				d.Write(0, b[:])
			}
			if !reflect.DeepEqual(f.log, tt.want) {
				t.Errorf("host side asked for %q, want %q", f.log, tt.want)
			}
			if n := d.anomalies.Counts()["refused command"]; n != uint64(tt.bad) {
				t.Errorf("%d writes refused, want %d", n, tt.bad)
			}
		})
	}
}

// TestConnectionsEcho: a message posted to a connection goes back, type
// and payload, through its route, with the route's answer; an event
// signalled on one sets the flag of its id and succeeds.
func TestConnectionsEcho(t *testing.T) {
	f := newFake()
	d := New(f, 2, quiet)
	for _, w := range []uint32{cmd(MsgConnCreate, 1, 8, 0x11), cmd(EvtConnCreate, 0, 9, 0x20)} {
		var b [4]byte
		binary.LittleEndian.PutUint32(b[:], w)
		d.Write(0, b[:])
	}
	f.log = nil
	in := hyperv.PostMessageInput{ConnectionID: 0x11, MessageType: 0x12345678, PayloadSize: 3}
	copy(in.Payload[:], "abcdef")
	if st := f.messages[0x11](in); st != hyperv.StatusInsufficientBuffers {
		t.Errorf("the message's status %v, want the route's", st)
	}
	if st := f.events[0x20](); st != hyperv.StatusSuccess {
		t.Errorf("the event's status %v", st)
	}
	want := []string{`post type 0x12345678 "abc" on 1/8`, "flag 0x20 on 0/9"}
	if !reflect.DeepEqual(f.log, want) {
		t.Errorf("host side asked for %q, want %q", f.log, want)
	}
	f.log = nil
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	if len(f.messages) != 0 || len(f.events) != 0 || len(f.log) != 4 {
		t.Errorf("after Close: %d message and %d event handlers left; asked for %q", len(f.messages), len(f.events), f.log)
	}
}

// TestOtherAccesses: reads are all ones, and writes of other sizes or
// offsets do nothing.
func TestOtherAccesses(t *testing.T) {
	f := newFake()
	d := New(f, 2, quiet)
	b := []byte{1, 2, 3, 4}
	d.Read(0, b)
	if !reflect.DeepEqual(b, []byte{0xff, 0xff, 0xff, 0xff}) {
		t.Errorf("read %x", b)
	}
	d.Write(0, []byte{0, 5, 1})
	d.Write(0, []byte{0, 5})
	d.Write(1, []byte{0, 5, 1, 0})
	if len(f.log) != 0 || d.anomalies.Counts()["unsupported access"] != 3 {
		t.Errorf("host side asked for %q; %v", f.log, d.anomalies.Counts())
	}
}
