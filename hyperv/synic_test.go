package hyperv

import (
	"encoding/binary"
	"errors"
	"runtime"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"
)

// Guest pages of the tests: the message page and the event flags page.
const (
	msgPage = ramBase
	evtPage = ramBase + pageSize
)

// enabled is a SynIC with both pages at msgPage and evtPage.
func enabled() *SynIC {
	var s SynIC
	s.Update(pageEnable, evtPage|pageEnable, msgPage|pageEnable)
	return &s
}

func TestSynICPages(t *testing.T) {
	tests := []struct {
		name              string
		control, evt, msg uint64
		msgOK, evtOK      bool
		wantMsg, wantEvt  uint64
	}{
		{"both pages enabled", 1, 0x5000 | 1, 0x6000 | 1, true, true, 0x6000, 0x5000},
		{"the SynIC disabled", 0, 0x5000 | 1, 0x6000 | 1, false, false, 0, 0},
		{"only the message page", 1, 0x5000, 0x6000 | 1, true, false, 0x6000, 0},
		{"reserved bits below the page address", 1, 0x5ff0 | 1, 0x6ff0 | 1, true, true, 0x6000, 0x5000},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var s SynIC
			s.Update(tt.control, tt.evt, tt.msg)
			m, mok := s.MessagePage()
			e, eok := s.EventPage()
			if m != tt.wantMsg || mok != tt.msgOK || e != tt.wantEvt || eok != tt.evtOK {
				t.Errorf("message page %#x %v, event page %#x %v; want %#x %v, %#x %v", m, mok, e, eok, tt.wantMsg, tt.msgOK, tt.wantEvt, tt.evtOK)
			}
		})
	}
}

// header reads the header's first 8 bytes of slot sint of the message page.
func header(mem *ram, sint uint32) (typ uint32, size, flags uint8) {
	b := mem.at(msgPage + uint64(sint)*MessageSize)
	return binary.LittleEndian.Uint32(b), b[4], b[5]
}

func message(typ uint32, payload string) *Message {
	m := &Message{Type: typ, PayloadSize: uint8(len(payload))}
	copy(m.Payload[:], payload)
	return m
}

func TestDeliver(t *testing.T) {
	tests := []struct {
		name     string
		synic    *SynIC
		sint     uint32
		before   [8]byte // the slot's header before
		delivery Delivery
		err      error
		typ      uint32
		flags    uint8
		payload  string
	}{
		{"into a free slot", enabled(), 3, [8]byte{}, Delivered, nil, 0x42, 0, "hello"},
		{"a free slot's stale pending flag is cleared", enabled(), 3, [8]byte{5: 1}, Delivered, nil, 0x42, 0, "hello"},
		{"a busy slot gets the pending flag", enabled(), 3, [8]byte{0: 7, 4: 2}, Busy, nil, 7, 1, ""},
		{"a busy slot with the flag set already", enabled(), 15, [8]byte{0: 7, 5: 1}, Busy, nil, 7, 1, ""},
		{"no SINT 16", enabled(), 16, [8]byte{}, 0, ErrBadSINT, 0, 0, ""},
		{"a disabled SynIC", &SynIC{}, 3, [8]byte{}, 0, ErrNoPage, 0, 0, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mem := newRAM(ramBase, 2)
			if tt.sint < SINTs {
				copy(mem.at(msgPage+uint64(tt.sint)*MessageSize), tt.before[:])
			}
			d, err := Deliver(mem, tt.synic, tt.sint, message(0x42, "hello"))
			if !errors.Is(err, tt.err) || (err == nil && d != tt.delivery) {
				t.Fatalf("got %v, %v; want %v, %v", d, err, tt.delivery, tt.err)
			}
			if err != nil {
				return
			}
			typ, _, flags := header(mem, tt.sint)
			if typ != tt.typ || flags != tt.flags {
				t.Errorf("slot type %#x flags %#x, want %#x %#x", typ, flags, tt.typ, tt.flags)
			}
			slot := mem.at(msgPage + uint64(tt.sint)*MessageSize)
			if got := string(slot[16 : 16+len(tt.payload)]); got != tt.payload {
				t.Errorf("payload %q, want %q", got, tt.payload)
			}
			for i, b := range mem.b {
				inSlot := uint64(i) >= uint64(tt.sint)*MessageSize && uint64(i) < uint64(tt.sint+1)*MessageSize
				if !inSlot && b != 0 {
					t.Fatalf("byte %#x outside the slot written", i)
				}
			}
		})
	}
	t.Run("a message page outside RAM", func(t *testing.T) {
		var s SynIC
		s.Update(pageEnable, 0, 0x100000|pageEnable)
		if _, err := Deliver(newRAM(ramBase, 2), &s, 0, message(1, "")); !errors.Is(err, ErrNotRAM) {
			t.Errorf("%v, want ErrNotRAM", err)
		}
	})
}

func TestSetEventFlag(t *testing.T) {
	mem := newRAM(ramBase, 2)
	s := enabled()
	steps := []struct {
		name  string
		sint  uint32
		flag  uint32
		newly bool
		err   error
	}{
		{"a clear flag", 9, 0x21, true, nil},
		{"the same flag again", 9, 0x21, false, nil},
		{"another flag in the same word", 9, 0x22, true, nil},
		{"the last flag", 9, 2047, true, nil},
		{"past the last flag", 9, 2048, false, ErrBadFlag},
		{"no SINT 16", 16, 1, false, ErrBadSINT},
	}
	for _, st := range steps {
		newly, err := SetEventFlag(mem, s, st.sint, st.flag)
		if newly != st.newly || !errors.Is(err, st.err) {
			t.Errorf("%s: got %v, %v; want %v, %v", st.name, newly, err, st.newly, st.err)
		}
	}
	slot := mem.at(evtPage + 9*256)
	if w := binary.LittleEndian.Uint64(slot[0:]); w != 1<<0x21|1<<0x22 {
		t.Errorf("flags word 0 is %#x", w)
	}
	if w := binary.LittleEndian.Uint64(slot[248:]); w != 1<<63 {
		t.Errorf("flags word 31 is %#x", w)
	}
	if _, err := SetEventFlag(mem, &SynIC{}, 9, 1); !errors.Is(err, ErrNoPage) {
		t.Errorf("a disabled SynIC: %v, want ErrNoPage", err)
	}
}

// TestOutbox follows kvm-unit-tests' hyperv_connections through one
// connection: a message, one that finds the slot busy, one refused while
// that one waits, and the waiting one delivered when the guest frees the
// slot and acknowledges it.
func TestOutbox(t *testing.T) {
	mem := newRAM(ramBase, 2)
	s := enabled()
	const sint = 8
	var raised int
	deliver := func(m *Message) (Delivery, error) {
		d, err := Deliver(mem, s, sint, m)
		if err == nil && d == Delivered {
			raised++
		}
		return d, err
	}
	free := func() { binary.LittleEndian.PutUint32(mem.at(msgPage+sint*MessageSize), 0) }
	var o Outbox
	steps := []struct {
		name    string
		do      func() Status
		status  Status
		waiting bool
		raised  int
		payload string // in the slot after
		flags   uint8
	}{
		{"post into the free slot", func() Status { return o.Post(*message(1, "one"), deliver) }, StatusSuccess, false, 1, "one", 0},
		{"post to the busy slot waits", func() Status { return o.Post(*message(1, "two"), deliver) }, StatusSuccess, true, 1, "one", 1},
		{"a third is refused while one waits", func() Status { return o.Post(*message(1, "three"), deliver) }, StatusInsufficientBuffers, true, 1, "one", 1},
		{"an acknowledgement with the slot still busy", func() Status { o.Retry(deliver); return StatusSuccess }, StatusSuccess, true, 1, "one", 1},
		{"the guest frees the slot and acknowledges", func() Status { free(); o.Retry(deliver); return StatusSuccess }, StatusSuccess, false, 2, "two", 0},
		{"an acknowledgement with nothing waiting", func() Status { free(); o.Retry(deliver); return StatusSuccess }, StatusSuccess, false, 2, "two", 0},
	}
	for _, st := range steps {
		if got := st.do(); got != st.status {
			t.Errorf("%s: status %v, want %v", st.name, got, st.status)
		}
		_, _, flags := header(mem, sint)
		payload := string(mem.at(msgPage + sint*MessageSize + 16)[:len(st.payload)])
		if o.Waiting() != st.waiting || raised != st.raised || payload != st.payload || flags != st.flags {
			t.Errorf("%s: waiting %v raised %d payload %q flags %d; want %v %d %q %d", st.name, o.Waiting(), raised, payload, flags, st.waiting, st.raised, st.payload, st.flags)
		}
	}
	broken := func(*Message) (Delivery, error) { return 0, ErrNoPage }
	if got := o.Post(*message(1, "x"), broken); got != StatusInvalidHypercallInput || o.Waiting() {
		t.Errorf("a message that cannot be delivered: %v waiting %v", got, o.Waiting())
	}
}

// TestDeliverRacesTheGuest: a guest that consumes its slot while the host
// posts (it clears the type, then writes EOM if it sees the pending flag, as
// Linux's vmbus driver does) gets every message, in order: the pending
// flag the host sets is never lost between the guest's two steps.
func TestDeliverRacesTheGuest(t *testing.T) {
	mem := newRAM(ramBase, 2)
	s := enabled()
	const sint, messages = 4, 2000
	slot := mem.at(msgPage + sint*MessageSize)
	hdr, err := word(slot, 0)
	if err != nil {
		t.Fatal(err)
	}
	var o Outbox
	deliver := func(m *Message) (Delivery, error) { return Deliver(mem, s, sint, m) }
	eom := make(chan struct{}, 1)
	go func() { // the host's acknowledgement goroutine
		for range eom {
			o.Retry(deliver)
		}
	}()
	defer close(eom)
	go func() { // the host's sender
		for i := 1; i <= messages; i++ {
			m := Message{Type: 1, PayloadSize: 4}
			binary.LittleEndian.PutUint32(m.Payload[:], uint32(i))
			for o.Post(m, deliver) == StatusInsufficientBuffers {
				runtime.Gosched()
			}
		}
	}()
	deadline := time.Now().Add(20 * time.Second)
	for want := uint32(1); want <= messages; {
		if time.Now().After(deadline) {
			t.Fatalf("message %d never arrived (a lost pending flag?)", want)
		}
		h := atomic.LoadUint64(hdr)
		if uint32(h) == 0 {
			runtime.Gosched()
			continue
		}
		if got := binary.LittleEndian.Uint32(slot[16:]); got != want {
			t.Fatalf("got message %d, want %d", got, want)
		}
		want++
		atomic.StoreUint32((*uint32)(unsafe.Pointer(hdr)), 0)
		if atomic.LoadUint64(hdr)&messagePending != 0 {
			select {
			case eom <- struct{}{}:
			default:
			}
		}
	}
}
