package bootcost

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// writeCounters makes dir/vm with every counter of kvmCounters at v.
func writeCounters(t *testing.T, dir, vm string, v int) {
	t.Helper()
	if err := os.MkdirAll(filepath.Join(dir, vm), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, c := range kvmCounters {
		if err := os.WriteFile(filepath.Join(dir, vm, c), []byte(strconv.Itoa(v)+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// writeStat makes proc/pid/stat a stat line whose guest_time is ticks.
func writeStat(t *testing.T, proc string, pid, ticks int) {
	t.Helper()
	fields := make([]string, 52-2) // from field 3 on
	for i := range fields {
		fields[i] = "7"
	}
	fields[guestTimeField-3] = strconv.Itoa(ticks)
	line := strconv.Itoa(pid) + " (ember vcpu) " + strings.Join(fields, " ") + "\n"
	if err := os.MkdirAll(filepath.Join(proc, strconv.Itoa(pid)), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(proc, strconv.Itoa(pid), "stat"), []byte(line), 0o644); err != nil {
		t.Fatal(err)
	}
}

// A boot's counts are each VM's last reading, kept after its directory went
// (KVM removes it with the VM), summed over the VMs, in thousands; vCPU
// directories and the kernel's totals are not VMs. The guest time is each
// VM process's last reading, kept after the process went, in seconds.
func TestSamplerKeepsAGoneVMsLastReading(t *testing.T) {
	dir, proc := t.TempDir(), t.TempDir()
	writeStat(t, proc, 100, 120)
	writeCounters(t, dir, "100-12", 3000)
	writeCounters(t, dir, "vcpu0", 1e6)
	if err := os.WriteFile(filepath.Join(dir, "exits"), []byte("999999\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	s := startSampler(dir, proc)
	time.Sleep(sampleEvery / 2)
	writeCounters(t, dir, "100-12", 5000)
	writeStat(t, proc, 100, 250)
	writeCounters(t, dir, "200-7", 500)
	writeStat(t, proc, 200, 50)
	time.Sleep(2 * sampleEvery)
	for _, gone := range []string{filepath.Join(dir, "100-12"), filepath.Join(proc, "100")} {
		if err := os.RemoveAll(gone); err != nil {
			t.Fatal(err)
		}
	}
	got := s.Finish()
	if v := got[GuestCPUMeasure]; v != 3 {
		t.Errorf("guest time %v s, want 3 (2.5 from the process that went, 0.5 from the other)", v)
	}
	for _, c := range kvmCounters {
		if v := got[KVMMeasure(c)]; v != 5.5 {
			t.Errorf("%s: %v thousand, want 5.5 (5000 from the VM that went, 500 from the other)", c, v)
		}
	}
}

// TestParseGuestTime: guest_time is field 43 counted past the command
// name, whatever the name holds; a line too short or without a name is an
// error.
func TestParseGuestTime(t *testing.T) {
	tail := func(guest string) string {
		f := make([]string, 50)
		for i := range f {
			f[i] = "1"
		}
		f[guestTimeField-3] = guest
		return strings.Join(f, " ")
	}
	for _, tt := range []struct {
		name, line string
		want       uint64
		wantErr    bool
	}{
		{"plain", "4242 (ember) " + tail("9876") + "\n", 9876, false},
		{"a name with spaces and parentheses", "4242 (a) b (c)) " + tail("12"), 12, false},
		{"too short", "4242 (ember) S 1 2 3", 0, true},
		{"no name", "4242 ember " + tail("5"), 0, true},
		{"not a number", "4242 (ember) " + tail("x"), 0, true},
	} {
		got, err := parseGuestTime([]byte(tt.line))
		if got != tt.want || (err != nil) != tt.wantErr {
			t.Errorf("%s: %d, %v; want %d, error %v", tt.name, got, err, tt.want, tt.wantErr)
		}
	}
}

// TestReadGuestTimeOfThisProcess: the real /proc gives this (non-VMM)
// process a guest time, zero.
func TestReadGuestTimeOfThisProcess(t *testing.T) {
	if got, err := readGuestTime("/proc", os.Getpid()); got != 0 || err != nil {
		t.Errorf("readGuestTime(self) = %d, %v; want 0", got, err)
	}
}

func TestSamplerWithoutVMs(t *testing.T) {
	if got := StartSampler(t.TempDir()).Finish(); got != nil {
		t.Errorf("no VM seen, got %v; want nil (no rows in the table)", got)
	}
}
