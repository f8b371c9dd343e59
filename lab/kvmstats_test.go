package main

import (
	"os"
	"os/exec"
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

// A boot's counts are each VM's last reading, kept after its directory went
// (KVM removes it with the VM), summed over the VMs, in thousands; vCPU
// directories and the kernel's totals are not VMs.
func TestKVMSamplerKeepsAGoneVMsLastReading(t *testing.T) {
	dir := t.TempDir()
	writeCounters(t, dir, "100-12", 3000)
	writeCounters(t, dir, "vcpu0", 1e6)
	if err := os.WriteFile(filepath.Join(dir, "exits"), []byte("999999\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	s := startKVMSampler(dir)
	time.Sleep(kvmSampleEvery / 2)
	writeCounters(t, dir, "100-12", 5000)
	writeCounters(t, dir, "200-7", 500)
	time.Sleep(2 * kvmSampleEvery)
	if err := os.RemoveAll(filepath.Join(dir, "100-12")); err != nil {
		t.Fatal(err)
	}
	got := s.finish()
	for _, c := range kvmCounters {
		if v := got[kvmMeasure(c)]; v != 5.5 {
			t.Errorf("%s: %v thousand, want 5.5 (5000 from the VM that went, 500 from the other)", c, v)
		}
	}
}

func TestKVMSamplerWithoutVMs(t *testing.T) {
	if got := startKVMSampler(t.TempDir()).finish(); got != nil {
		t.Errorf("no VM seen, got %v; want nil (no rows in the table)", got)
	}
}

// A boot's usage is its VMM's, counted once the process has been waited for.
func TestChildUsageCountsAnEndedChild(t *testing.T) {
	before := readChildUsage()
	if err := exec.Command("sh", "-c", "i=0; while [ $i -lt 200000 ]; do i=$((i+1)); done").Run(); err != nil {
		t.Fatal(err)
	}
	got := readChildUsage().since(before)
	if cpu := got[usageMeasures[0]]; cpu <= 0 || cpu > 60 {
		t.Errorf("the child's CPU time: %v s; want a count above 0 (it looped 200,000 times)", cpu)
	}
	if sw := got[usageMeasures[1]]; sw < 0 {
		t.Errorf("context switches %v thousand; want none negative", sw)
	}
	line := countsLine(got)
	if !strings.HasPrefix(line, "vmm cpu (s) ") || strings.Contains(line, "kvm") {
		t.Errorf("countsLine = %q; want the usage only, with no KVM counters read", line)
	}
}
