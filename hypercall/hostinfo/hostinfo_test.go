package hostinfo

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"
	"unsafe"
)

// fakeTree writes files (path relative to the root -> contents) under a
// temporary directory and returns it.
func fakeTree(t *testing.T, files map[string]string) string {
	t.Helper()
	root := t.TempDir()
	for p, s := range files {
		p = filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

// at points variable v at value for the rest of the test.
func at(t *testing.T, v *string, value string) {
	old := *v
	*v = value
	t.Cleanup(func() { *v = old })
}

func TestPStates(t *testing.T) {
	for _, tt := range []struct {
		name  string
		files map[string]string
		want  []PState
	}{
		{"no cpufreq", nil, []PState{}},
		{"available frequencies, fastest first", map[string]string{
			"cpu0/cpufreq/scaling_available_frequencies": "1200000 2400000 0 1800000\n",
			"cpu0/cpufreq/cpuinfo_transition_latency":    "10000\n",
		}, []PState{{2400000, 10 * time.Microsecond}, {1800000, 10 * time.Microsecond}, {1200000, 10 * time.Microsecond}}},
		{"min and max only", map[string]string{
			"cpu0/cpufreq/cpuinfo_max_freq": "3000000", "cpu0/cpufreq/cpuinfo_min_freq": "800000",
		}, []PState{{3000000, 0}, {800000, 0}}},
		{"min equals max", map[string]string{
			"cpu0/cpufreq/cpuinfo_max_freq": "3000000", "cpu0/cpufreq/cpuinfo_min_freq": "3000000",
		}, []PState{{3000000, 0}}},
		{"another CPU's data", map[string]string{"cpu1/cpufreq/cpuinfo_max_freq": "3000000"}, []PState{}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			at(t, &sysCPU, fakeTree(t, tt.files))
			if got := PStates(0); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("PStates(0) = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestCStates(t *testing.T) {
	for _, tt := range []struct {
		name  string
		files map[string]string
		want  []CState
	}{
		{"no cpuidle", nil, nil},
		{"POLL left out", map[string]string{
			"cpu0/cpuidle/state0/name": "POLL\n", "cpu0/cpuidle/state0/latency": "0",
			"cpu0/cpuidle/state1/name": "C1\n", "cpu0/cpuidle/state1/latency": "2", "cpu0/cpuidle/state1/power": "100",
			"cpu0/cpuidle/state2/name": "C6", "cpu0/cpuidle/state2/latency": "133",
		}, []CState{{"C1", 2 * time.Microsecond, 100}, {"C6", 133 * time.Microsecond, 0}}},
		{"stops at the first gap", map[string]string{
			"cpu0/cpuidle/state0/name": "C1", "cpu0/cpuidle/state2/name": "C3",
		}, []CState{{"C1", 0, 0}}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			at(t, &sysCPU, fakeTree(t, tt.files))
			if got := CStates(0); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("CStates(0) = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestPCIExists(t *testing.T) {
	at(t, &sysPCI, fakeTree(t, map[string]string{"0000:00:1f.3/vendor": "0x8086"}))
	for _, tt := range []struct {
		name string
		bdf  uint16
		want bool
	}{
		{"00:1f.3 is there", 0x1f<<3 | 3, true},
		{"00:1f.2 is not", 0x1f<<3 | 2, false},
		{"01:1f.3 is not", 1<<8 | 0x1f<<3 | 3, false},
	} {
		if got := PCIExists(tt.bdf); got != tt.want {
			t.Errorf("%s: PCIExists(%#x) = %v", tt.name, tt.bdf, got)
		}
	}
}

// TestPhys: a page's frame as pagemap shows it, or ErrNoFrame where the host
// hides it. The fake pagemap holds one entry, at the page's index.
func TestPhys(t *testing.T) {
	b := make([]byte, 2*pageSize)
	page := b[pageSize-uint64(uintptrOf(b))%pageSize:] // the first page boundary in b
	off := uintptrOf(page) / pageSize * 8
	for _, tt := range []struct {
		name  string
		entry uint64 // 0: no pagemap file at all
		want  uint64
		err   error
	}{
		{"present, frame 0x1234", 1<<63 | 0x1234, 0x1234 * pageSize, nil},
		{"frame numbers hidden", 1 << 63, 0, ErrNoFrame},
		{"not present", 0x1234, 0, ErrNoFrame},
		{"no pagemap", 0, 0, ErrNoFrame},
	} {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "pagemap")
			if tt.entry != 0 {
				f, err := os.Create(path)
				if err != nil {
					t.Fatal(err)
				}
				var e [8]byte
				for i := range e {
					e[i] = byte(tt.entry >> (8 * i))
				}
				if _, err := f.WriteAt(e[:], int64(off)); err != nil {
					t.Fatal(err)
				}
				f.Close()
			}
			at(t, &pagemap, path)
			got, err := Phys(page)
			if got != tt.want || !errors.Is(err, tt.err) {
				t.Errorf("Phys = %#x, %v; want %#x, %v", got, err, tt.want, tt.err)
			}
		})
	}
}

func uintptrOf(b []byte) uint64 { return uint64(uintptr(unsafe.Pointer(&b[0]))) }
