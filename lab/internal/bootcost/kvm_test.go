package bootcost

import (
	"os"
	"path/filepath"
	"strconv"
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
func TestSamplerKeepsAGoneVMsLastReading(t *testing.T) {
	dir := t.TempDir()
	writeCounters(t, dir, "100-12", 3000)
	writeCounters(t, dir, "vcpu0", 1e6)
	if err := os.WriteFile(filepath.Join(dir, "exits"), []byte("999999\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	s := StartSampler(dir)
	time.Sleep(sampleEvery / 2)
	writeCounters(t, dir, "100-12", 5000)
	writeCounters(t, dir, "200-7", 500)
	time.Sleep(2 * sampleEvery)
	if err := os.RemoveAll(filepath.Join(dir, "100-12")); err != nil {
		t.Fatal(err)
	}
	got := s.Finish()
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
