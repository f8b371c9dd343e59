package bootcost

import (
	"math"
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
	for _, c := range append(kvmCounters, pollCounters...) {
		if err := os.WriteFile(filepath.Join(dir, vm, c), []byte(strconv.Itoa(v)+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// writeThread makes proc/pid/task/tid's stat and status files for a
// thread of cpu ticks (user and system, guest included), guest of them in
// the guest, and switches context switches.
func writeThread(t *testing.T, proc string, pid, tid, cpu, guest, switches int) {
	t.Helper()
	fields := make([]string, 52-2) // from field 3 on
	for i := range fields {
		fields[i] = "0"
	}
	// A quarter of the time in the kernel, but no more than what is not
	// the guest's: the kernel counts guest time in utime too.
	stime := min(cpu/4, cpu-guest)
	fields[14-3] = strconv.Itoa(cpu - stime) // utime
	fields[15-3] = strconv.Itoa(stime)       // stime
	fields[43-3] = strconv.Itoa(guest)       // guest_time
	dir := filepath.Join(proc, strconv.Itoa(pid), "task", strconv.Itoa(tid))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	stat := strconv.Itoa(tid) + " (ember vcpu) " + strings.Join(fields, " ") + "\n"
	status := "Name:\tember\nvoluntary_ctxt_switches:\t" + strconv.Itoa(switches-switches/3) +
		"\nnonvoluntary_ctxt_switches:\t" + strconv.Itoa(switches/3) + "\n"
	for name, data := range map[string]string{"stat": stat, "status": status} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// A boot's counts are each VM's last reading, kept after its directory went
// (KVM removes it with the VM), summed over the VMs, in thousands; vCPU
// directories and the kernel's totals are not VMs. The CPU time and
// switches are each VM process's threads' last readings, kept after a
// thread or the process went, split between the threads that ran the
// guest and the others.
func TestSamplerKeepsAGoneVMsLastReading(t *testing.T) {
	dir, proc := t.TempDir(), t.TempDir()
	writeThread(t, proc, 100, 101, 150, 120, 500)
	writeCounters(t, dir, "100-12", 3000)
	writeCounters(t, dir, "vcpu0", 1e6)
	if err := os.WriteFile(filepath.Join(dir, "exits"), []byte("999999\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	s := startSampler(dir, proc)
	time.Sleep(sampleEvery / 2)
	writeCounters(t, dir, "100-12", 5000)
	writeThread(t, proc, 100, 101, 300, 250, 2000)
	writeThread(t, proc, 100, 102, 50, 0, 3000)
	writeThread(t, proc, 100, 103, 1, 0, 30)
	writeCounters(t, dir, "200-7", 500)
	writeThread(t, proc, 200, 201, 60, 50, 1000)
	time.Sleep(2 * sampleEvery)
	for _, gone := range []string{filepath.Join(dir, "100-12"), filepath.Join(proc, "100")} {
		if err := os.RemoveAll(gone); err != nil {
			t.Fatal(err)
		}
	}
	got := s.Finish()
	for m, want := range map[string]float64{
		GuestCPUMeasure:      3,   // 2.5 s from the process that went, 0.5 from the other
		VCPUOwnCPUMeasure:    0.6, // 0.5 + 0.1
		VCPUSystemCPUMeasure: 0.6, // all of it in the kernel, as writeThread makes it
		OtherCPUMeasure:      0.51,
		VCPUSwitchesMeasure:  3, // thousands
		OtherSwitchesMeasure: 3.03,
		// Process 100's one other thread (process 200 has none).
		BusiestCPUMeasure:      0.5,
		BusiestSwitchesMeasure: 3,
	} {
		if v := got[m]; math.Abs(v-want) > 1e-9 {
			t.Errorf("%s = %v, want %v", m, v, want)
		}
	}
	for _, c := range kvmCounters {
		if v := got[KVMMeasure(c)]; v != 5.5 {
			t.Errorf("%s: %v thousand, want 5.5 (5000 from the VM that went, 500 from the other)", c, v)
		}
	}
}

func TestSamplerWithoutVMs(t *testing.T) {
	if got := StartSampler(t.TempDir()).Finish(); got != nil {
		t.Errorf("no VM seen, got %v; want nil (no rows in the table)", got)
	}
}

// A VM whose kernel has no halt-polling counters still has its exits read;
// only the polling counts none. Without any of the exit counters, the VM
// went while it was read and is left out.
func TestReadVMsWithoutPollCounters(t *testing.T) {
	dir := t.TempDir()
	writeCounters(t, dir, "100-12", 7)
	for _, c := range pollCounters {
		if err := os.Remove(filepath.Join(dir, "100-12", c)); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.MkdirAll(filepath.Join(dir, "200-13"), 0o755); err != nil {
		t.Fatal(err)
	}
	vms := readVMs(dir)
	if len(vms) != 1 {
		t.Fatalf("read %d VMs (%v), want the one with its exit counters", len(vms), vms)
	}
	vals := vms["100-12"]
	if vals["exits"] != 7 || len(vals) != len(kvmCounters) {
		t.Errorf("counters %v, want each of %v at 7 and no polling", vals, kvmCounters)
	}
}
