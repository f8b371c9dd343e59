package vmid

import (
	"errors"
	"sync"
	"testing"
)

// TestTable walks a table of four IDs through the cases of each method.
func TestTable(t *testing.T) {
	tb := New[string](4)
	a, b, s := "a", "b", "service"
	steps := []struct {
		name string
		do   func() error
	}{
		{"the first VM gets ID 1", func() error { return want(tb.Reserve(false))(1, nil) }},
		{"a reserved ID is not seen", func() error { return wantEntry(tb.Lookup(1), nil) }},
		{"filled, it is", func() error { tb.Fill(1, &a); return wantEntry(tb.Lookup(1), &a) }},
		{"the Service VM gets 0", func() error { return want(tb.Reserve(true))(ServiceVM, nil) }},
		{"a second Service VM does not, while the first is built", func() error { return want(tb.Reserve(true))(0, ErrServiceTaken) }},
		{"nor once it is there", func() error { tb.Fill(0, &s); return want(tb.Reserve(true))(0, ErrServiceTaken) }},
		{"the next VM gets 2", func() error { return want(tb.Reserve(false))(2, nil) }},
		{"a build that failed frees its ID", func() error { tb.Fill(2, nil); return want(tb.Reserve(false))(2, nil) }},
		{"then 3", func() error { tb.Fill(2, &b); return want(tb.Reserve(false))(3, nil) }},
		{"then none", func() error { return want(tb.Reserve(false))(0, ErrFull) }},
		{"Fill of an ID not reserved does nothing", func() error { tb.Fill(1, &b); return wantEntry(tb.Lookup(1), &a) }},
		{"Remove of another entry does nothing", func() error { tb.Remove(1, &b); return wantEntry(tb.Lookup(1), &a) }},
		{"Remove frees the ID, the lowest free comes first", func() error {
			tb.Remove(1, &a)
			tb.Fill(3, nil)
			return want(tb.Reserve(false))(1, nil)
		}},
		{"All lists the filled ones by ID", func() error {
			got := tb.All()
			if len(got) != 2 || got[0] != &s || got[1] != &b {
				return errors.New("wrong entries")
			}
			return nil
		}},
		{"IDs beyond the table", func() error {
			tb.Fill(9, &a)
			tb.Remove(9, &a)
			return wantEntry(tb.Lookup(1<<40), nil)
		}},
	}
	for _, st := range steps {
		if err := st.do(); err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
	}
}

func want(id uint16, err error) func(uint16, error) error {
	return func(wid uint16, werr error) error {
		if id != wid || !errors.Is(err, werr) {
			return errors.Join(errors.New("unexpected Reserve"), err)
		}
		return nil
	}
}

func wantEntry(got, w *string) error {
	if got != w {
		return errors.New("unexpected entry")
	}
	return nil
}

// TestConcurrentReserve: IDs reserved at once are all different.
func TestConcurrentReserve(t *testing.T) {
	tb := New[int](64)
	var mu sync.Mutex
	seen := map[uint16]bool{}
	var wg sync.WaitGroup
	for range 63 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			id, err := tb.Reserve(false)
			mu.Lock()
			defer mu.Unlock()
			if err != nil || seen[id] {
				t.Errorf("Reserve = %d, %v (seen %v)", id, err, seen[id])
			}
			seen[id] = true
		}()
	}
	wg.Wait()
}
