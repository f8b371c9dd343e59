package ioreq

import (
	"encoding/binary"
	"errors"
	"testing"

	"ember/acrn/iorequest"

	"golang.org/x/sys/unix"
)

var allStates = []iorequest.State{iorequest.StateFree, iorequest.StatePending, iorequest.StateProcessing, iorequest.StateComplete}

func newTestBuffer(t *testing.T) *Buffer {
	t.Helper()
	b, err := NewBuffer()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

// setState forces a slot's state, as another party writing the page could.
func setState(b *Buffer, i int, s iorequest.State) { b.state(i).Store(uint32(s)) }

// TestStateMachineTransitions walks all 16 (from, to) pairs: the four edges
// of FREE -> PENDING -> PROCESSING -> COMPLETE -> FREE succeed from the right
// state, everything else is refused with ErrBadTransition and leaves the slot
// alone.
func TestStateMachineTransitions(t *testing.T) {
	b := newTestBuffer(t)
	legal := map[[2]iorequest.State]bool{
		{iorequest.StateFree, iorequest.StatePending}:        true,
		{iorequest.StatePending, iorequest.StateProcessing}:  true,
		{iorequest.StateProcessing, iorequest.StateComplete}: true,
		{iorequest.StateComplete, iorequest.StateFree}:       true,
	}
	for _, from := range allStates {
		for _, to := range allStates {
			for _, actual := range allStates {
				setState(b, 3, actual)
				err := b.Transition(3, from, to)
				want := legal[[2]iorequest.State{from, to}] && actual == from
				if want {
					if err != nil || b.State(3) != to {
						t.Errorf("%v -> %v from %v: err %v, state %v", from, to, actual, err, b.State(3))
					}
					continue
				}
				var te *TransitionError
				if !errors.Is(err, ErrBadTransition) || !errors.As(err, &te) || te.From != from || te.To != to || te.Actual != actual {
					t.Errorf("%v -> %v from %v: err %v, want a TransitionError", from, to, actual, err)
				}
				if b.State(3) != actual {
					t.Errorf("%v -> %v from %v: refused transition changed state to %v", from, to, actual, b.State(3))
				}
			}
		}
	}
	if Legal(iorequest.State(7), iorequest.StateFree) || Legal(iorequest.StateFree, iorequest.State(9)) {
		t.Error("Legal accepts an undefined state")
	}
}

// TestStateMachineOperations checks each named operation from every state.
func TestStateMachineOperations(t *testing.T) {
	b := newTestBuffer(t)
	req := PIORequest(iorequest.DirRead, 0x3f8, 1, 0)
	ops := []struct {
		name     string
		from, to iorequest.State
		do       func() error
	}{
		{"Issue", iorequest.StateFree, iorequest.StatePending, func() error { return b.Issue(5, &req) }},
		{"Claim", iorequest.StatePending, iorequest.StateProcessing, func() error { return b.Claim(5) }},
		{"Complete", iorequest.StateProcessing, iorequest.StateComplete, func() error { return b.Complete(5) }},
		{"Release", iorequest.StateComplete, iorequest.StateFree, func() error { return b.Release(5) }},
	}
	for _, op := range ops {
		for _, s := range allStates {
			setState(b, 5, s)
			err := op.do()
			if s == op.from {
				if err != nil || b.State(5) != op.to {
					t.Errorf("%s from %v: err %v, state %v, want %v", op.name, s, err, b.State(5), op.to)
				}
			} else if !errors.Is(err, ErrBadTransition) || b.State(5) != s {
				t.Errorf("%s from %v: err %v, state %v; want refused", op.name, s, err, b.State(5))
			}
		}
	}
}

// TestLifeCycle: one request through all four states, body and value intact,
// other slots untouched.
func TestLifeCycle(t *testing.T) {
	b := newTestBuffer(t)
	req := MMIORequest(iorequest.DirRead, 0xfee00020, 4, 0)
	if err := b.Issue(2, &req); err != nil {
		t.Fatal(err)
	}
	if err := b.Issue(2, &req); !errors.Is(err, ErrBadTransition) {
		t.Fatalf("second Issue before FREE: %v, want refused", err)
	}
	if err := b.Claim(2); err != nil {
		t.Fatal(err)
	}
	got, _ := b.Request(2)
	if got.Type != iorequest.ReqMMIO || got.MMIO().Address != 0xfee00020 || got.Processed != iorequest.StateProcessing {
		t.Fatalf("client sees %+v", got.MMIO())
	}
	SetValue(&got, 0x1234567890)
	if err := b.WriteBody(2, &got); err != nil {
		t.Fatal(err)
	}
	if err := b.Complete(2); err != nil {
		t.Fatal(err)
	}
	if v := b.ReadValue(2, &req); v != 0x34567890 {
		t.Errorf("ReadValue = %#x, want the 4-byte 0x34567890", v)
	}
	if err := b.Release(2); err != nil {
		t.Fatal(err)
	}
	for i := range iorequest.IORequestMax {
		if b.State(i) != iorequest.StateFree {
			t.Errorf("slot %d is %v", i, b.State(i))
		}
	}
}

func TestBufferMemfdIsSealed(t *testing.T) {
	b := newTestBuffer(t)
	if err := unix.Ftruncate(b.FD(), 0); err == nil {
		t.Fatal("a client could shrink the request buffer under ember")
	}
}

func TestNewBufferBytes(t *testing.T) {
	page := make([]byte, iorequest.RequestBufferSize+8)
	if _, err := NewBufferBytes(page[:100]); err == nil {
		t.Error("short page accepted")
	}
	if _, err := NewBufferBytes(page[1:]); err == nil {
		t.Error("misaligned page accepted")
	}
	b, err := NewBufferBytes(page)
	if err != nil {
		t.Fatal(err)
	}
	if b.FD() != -1 || b.State(0) != iorequest.StatePending { // zeroed memory reads as PENDING (0)
		t.Errorf("fd %d state %v", b.FD(), b.State(0))
	}
	b.Reset()
	if got := binary.LittleEndian.Uint32(page[iorequest.SlotStateOffset(15):]); got != uint32(iorequest.StateFree) {
		t.Errorf("slot 15 state bytes %d after Reset", got)
	}
	if err := b.Close(); err != nil {
		t.Error(err)
	}
}

// TestCompletionPollingIsTheVCPUs: a client's WriteBody leaves the slot's
// completion_polling as the vCPU set it (SetPolling), so a client that read
// the flag set cannot set it again after the vCPU cleared it to sleep.
func TestCompletionPollingIsTheVCPUs(t *testing.T) {
	b := newTestBuffer(t)
	req := PIORequest(iorequest.DirRead, 0x60, 1, 0)
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(b.Issue(3, &req))
	b.SetPolling(3, true)
	must(b.Claim(3))
	got, err := b.Request(3)
	must(err)
	if got.CompletionPolling != 1 || !b.Polling(3) {
		t.Fatalf("client reads completion_polling %d, Polling %v; want 1, true", got.CompletionPolling, b.Polling(3))
	}
	b.SetPolling(3, false) // the vCPU gives up looking and will sleep
	SetValue(&got, 0x42)
	must(b.WriteBody(3, &got)) // the client's copy still says 1
	must(b.Complete(3))
	if b.Polling(3) {
		t.Error("the client's WriteBody set completion_polling again: its completion would not be signalled")
	}
	if v := b.ReadValue(3, &req); v != 0x42 {
		t.Errorf("value %#x, want 0x42", v)
	}
}
