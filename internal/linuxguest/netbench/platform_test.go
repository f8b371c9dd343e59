package main

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

// The mitigations line names every vulnerability the kernel knows of but
// those it is not affected by, in name order.
func TestMitigationsLeaveOutTheUnaffected(t *testing.T) {
	dir := t.TempDir()
	files := map[string]string{
		"spectre_v2": "Mitigation: Retpolines; IBPB: conditional\n",
		"meltdown":   "Not affected\n",
		"mds":        "Vulnerable: Clear CPU buffers attempted, no microcode\n",
		"l1tf":       "Not affected\n",
		"spectre_v1": "Mitigation: usercopy/swapgs barriers\n",
	}
	for name, state := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(state), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want := []string{
		"mds: Vulnerable: Clear CPU buffers attempted, no microcode",
		"spectre_v1: Mitigation: usercopy/swapgs barriers",
		"spectre_v2: Mitigation: Retpolines; IBPB: conditional",
	}
	if got := mitigations(dir); !reflect.DeepEqual(got, want) {
		t.Errorf("mitigations = %q, want %q", got, want)
	}
}

// The flags are the first flags line's, and nothing without one.
func TestCPUFlags(t *testing.T) {
	tests := []struct {
		name, cpuinfo, want string
	}{
		{"first cpu's line", "processor\t: 0\nflags\t\t: fpu vme sse2\n\nprocessor\t: 1\nflags\t\t: fpu\n", "fpu vme sse2"},
		{"no flags line", "processor\t: 0\nmodel name\t: x\n", ""},
		{"bugs is not flags", "bugs\t\t: spectre_v1\nflags\t: pae\n", "pae"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "cpuinfo")
			if err := os.WriteFile(p, []byte(tt.cpuinfo), 0o644); err != nil {
				t.Fatal(err)
			}
			if got := cpuFlags(p); got != tt.want {
				t.Errorf("cpuFlags = %q, want %q", got, tt.want)
			}
		})
	}
	if got := cpuFlags(filepath.Join(t.TempDir(), "missing")); got != "" {
		t.Errorf("cpuFlags of a missing file = %q, want empty", got)
	}
}
