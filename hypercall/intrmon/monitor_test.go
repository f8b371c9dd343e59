package intrmon

import (
	"errors"
	"reflect"
	"sync"
	"testing"
	"time"
)

// recorder records the order injections ran in.
type recorder struct {
	mu  sync.Mutex
	ran []int
}

func (r *recorder) inject(i int) func() error {
	return func() error {
		r.mu.Lock()
		defer r.mu.Unlock()
		r.ran = append(r.ran, i)
		return nil
	}
}

func (r *recorder) wait(t *testing.T, n int) []int {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(time.Millisecond) {
		r.mu.Lock()
		got := append([]int(nil), r.ran...)
		r.mu.Unlock()
		if len(got) >= n || time.Now().After(deadline) {
			return got
		}
	}
}

func TestCounts(t *testing.T) {
	var m Monitor
	for _, s := range []uint32{5, 0x10030, 5, 1, 5} {
		m.Count(s)
	}
	want := []SourceCount{{1, 1}, {5, 3}, {0x10030, 1}}
	if got := m.Counts(); !reflect.DeepEqual(got, want) {
		t.Errorf("Counts = %v, want %v", got, want)
	}
}

// TestInject: without a delay an injection runs at once with its error;
// with one it is queued, in order, and injections after the delay is
// cancelled wait for those queued before.
func TestInject(t *testing.T) {
	var m Monitor
	defer m.Close()
	var r recorder
	boom := errors.New("boom")
	if err := m.Inject(func() error { return boom }); err != boom {
		t.Fatalf("undelayed injection: %v, want its own error", err)
	}
	m.SetDelay(2 * time.Millisecond)
	for i := range 100 {
		if err := m.Inject(r.inject(i)); err != nil {
			t.Fatal(err)
		}
	}
	m.SetDelay(0)
	if err := m.Inject(r.inject(100)); err != nil {
		t.Fatal(err)
	}
	got := r.wait(t, 101)
	for i, v := range got {
		if v != i {
			t.Fatalf("injections ran in the order %v", got)
		}
	}
	if len(got) != 101 {
		t.Fatalf("%d of 101 injections ran", len(got))
	}
}

// TestQueueBound: at most MaxPending injections wait; a closed monitor
// takes none and drops what waited.
func TestQueueBound(t *testing.T) {
	var m Monitor
	var r recorder
	m.SetDelay(time.Hour)
	for i := range MaxPending {
		if err := m.Inject(r.inject(i)); err != nil {
			t.Fatalf("injection %d: %v", i, err)
		}
	}
	if err := m.Inject(r.inject(-1)); !errors.Is(err, ErrQueueFull) {
		t.Fatalf("injection past the bound: %v, want ErrQueueFull", err)
	}
	m.Close()
	if err := m.Inject(r.inject(-2)); !errors.Is(err, ErrQueueFull) {
		t.Errorf("injection after Close: %v, want ErrQueueFull", err)
	}
	if got := r.wait(t, 0); len(got) != 0 {
		t.Errorf("dropped injections ran: %v", got)
	}
	m.Close() // twice is fine
}
