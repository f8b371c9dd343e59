package hv

import (
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"ember/guest"
	"ember/x86"
)

// TestSysmonLeavesABusyVCPUAlone: a vCPU that exits all the time does not
// keep Go's sysmon waking every 20 µs to take its P (vcputhread.NewYield, internal/sysmon). sysmon
// sleeps in usleep between its looks, a voluntary context switch each: the
// process's threads together switch some 450–720 times a second in the lab
// when sysmon backs off (most of them the vCPU's own yields, one every 8 ms
// since 2026-12-02, every 5 ms before: the higher figure) and, without
// the yields, 1,700–2,100 times in the lab (where an emulated usleep(20)
// takes half a millisecond) and tens of thousands on a host.
func TestSysmonLeavesABusyVCPUAlone(t *testing.T) {
	h := openHV(t)
	vm, err := h.NewVM(Config{MemorySize: 1 << 20, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer vm.Close()
	// mov $0x4f0, %dx; out %al, (%dx); jmp back to the out: a port no
	// device claims, answered in the vCPU loop.
	if err := vm.LoadImage([]byte{0xba, 0xf0, 0x04, 0xee, 0xeb, 0xfd}, guest.LoadAddr); err != nil {
		t.Fatal(err)
	}
	if err := vm.SetEntry(0, x86.Entry{Mode: x86.RealMode, RIP: guest.LoadAddr}); err != nil {
		t.Fatal(err)
	}
	run := vm.Start()
	time.Sleep(100 * time.Millisecond) // past sysmon's first 10 ms
	before, start := contextSwitches(t), time.Now()
	time.Sleep(500 * time.Millisecond)
	n, d := contextSwitches(t)-before, time.Since(start)
	exits := vm.Exits()
	run.Stop()
	if res, err := run.Wait(); err != nil || res.Reason != StopHost {
		t.Fatalf("run ended %v %v, want StopHost", res, err)
	}
	perSec := float64(n) / d.Seconds()
	t.Logf("%d voluntary context switches in %v (%.0f/s); %d exits", n, d.Round(time.Millisecond), perSec, exits)
	if exits == 0 {
		t.Fatal("the guest made no exits")
	}
	if perSec > 1200 {
		t.Errorf("%.0f voluntary context switches a second while a vCPU exits: sysmon is not backing off", perSec)
	}
}

// contextSwitches sums voluntary_ctxt_switches over this process's threads.
func contextSwitches(t *testing.T) uint64 {
	t.Helper()
	paths, err := filepath.Glob("/proc/self/task/*/status")
	if err != nil {
		t.Fatal(err)
	}
	var sum uint64
	for _, p := range paths {
		n, err := switchesIn(p, "voluntary_ctxt_switches")
		if err != nil {
			continue // the thread ended
		}
		sum += n
	}
	return sum
}

// switchesIn sums the fields named keys (context-switch counts) of the
// /proc status file at path.
func switchesIn(path string, keys ...string) (uint64, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	var sum uint64
	for _, line := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if ok && slices.Contains(keys, k) {
			n, _ := strconv.ParseUint(strings.TrimSpace(v), 10, 64)
			sum += n
		}
	}
	return sum, nil
}
