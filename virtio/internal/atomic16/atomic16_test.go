package atomic16

import (
	"errors"
	"testing"

	"ember/memory"
)

// TestLoadAndStore: a store changes its two bytes only, whichever half of
// the word they are, and a load reads them back; odd addresses and fields
// outside RAM are errors.
func TestLoadAndStore(t *testing.T) {
	mem, err := memory.New([]memory.Range{{GPA: 0, Size: memory.PageSize}})
	if err != nil {
		t.Fatal(err)
	}
	defer mem.Close()
	host := mem.Regions()[0].Host
	for i := range 8 {
		host[i] = 0xee
	}
	tests := []struct {
		name string
		gpa  uint64
		want error
	}{
		{"low half of a word", 0, nil},
		{"high half of a word", 6, nil},
		{"the last field of RAM", memory.PageSize - 2, nil},
		{"odd address", 3, ErrUnaligned},
		{"outside RAM", memory.PageSize, memory.ErrOutOfRange},
	}
	for _, tt := range tests {
		err := Store(mem, tt.gpa, 0x1234)
		v, lerr := Load(mem, tt.gpa)
		if !errors.Is(err, tt.want) || !errors.Is(lerr, tt.want) || tt.want == nil && v != 0x1234 {
			t.Errorf("%s: Store = %v, Load = %#x, %v; want %v", tt.name, err, v, lerr, tt.want)
		}
	}
	want := []byte{0x34, 0x12, 0xee, 0xee, 0xee, 0xee, 0x34, 0x12}
	if got := host[:8]; string(got) != string(want) {
		t.Errorf("bytes % x, want % x", got, want)
	}
}
