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

// The clock lines of a kernel log are the ones that say how the guest
// keeps time, in the log's order; the rest are left out.
func TestClockLogPicksTheClockLines(t *testing.T) {
	log := "<6>[    0.000000] Linux version 6.1.0\n" +
		"<6>[    0.000000] kvm-clock: Using msrs 4b564d01 and 4b564d00\n" +
		"<6>[    0.001268] tsc: Detected 2096.036 MHz processor\n" +
		"<6>[    5.000000] virtio-pci 0000:00:01.0: enabling device\n" +
		"<4>[   11.006501] Unstable clock detected, switching default tracing clock to \"global\"\n" +
		"<6>[   11.100000] clocksource: Switched to clocksource kvm-clock\n"
	want := []string{
		"<6>[    0.000000] kvm-clock: Using msrs 4b564d01 and 4b564d00",
		"<6>[    0.001268] tsc: Detected 2096.036 MHz processor",
		"<4>[   11.006501] Unstable clock detected, switching default tracing clock to \"global\"",
		"<6>[   11.100000] clocksource: Switched to clocksource kvm-clock",
	}
	if got := clockLog(log); !reflect.DeepEqual(got, want) {
		t.Errorf("clockLog = %q, want %q", got, want)
	}
	if got := clockLog(""); got != nil {
		t.Errorf("clockLog of an empty log = %q, want none", got)
	}
}
