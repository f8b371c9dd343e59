package bootcost

import (
	"math"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"ember/internal/threadstat"
)

// writeProcStat makes proc/stat with the CPUs' total line of the given
// ticks: user (a guest's time included), system, idle, softirq.
func writeProcStat(t *testing.T, proc string, user, system, idle, softirq int) {
	t.Helper()
	line := "cpu  " + strconv.Itoa(user) + " 0 " + strconv.Itoa(system) + " " + strconv.Itoa(idle) + " 0 0 " + strconv.Itoa(softirq) + " 0 0 0\ncpu0 1 2 3 4 5 6 7 8 9 10\n"
	if err := os.WriteFile(filepath.Join(proc, "stat"), []byte(line), 0o644); err != nil {
		t.Fatal(err)
	}
}

// A phase's cost is the difference of two snapshots, per megabyte: the
// lab's busy time split between the VMM's guest time, its vCPU threads'
// own work, its other threads and the rest of the lab; its idle share; and
// the VM's exits by kind; the TAP's packets each way, and those it dropped
// on the way to the VMM; the vCPU threads' switches, and of them those
// forced on them. A thread that started in the phase counts from zero;
// one that ended in it is left out; one that ran the guest before the
// phase but not in it (a vCPU moved away) is one of the VMM's other
// threads.
func TestPhaseCost(t *testing.T) {
	dir, proc, netStats := t.TempDir(), t.TempDir(), t.TempDir()
	writeTAP := func(in, out, dropped int) {
		for name, v := range map[string]int{"rx_packets": in, "tx_packets": out, "tx_dropped": dropped} {
			if err := os.WriteFile(filepath.Join(netStats, name), []byte(strconv.Itoa(v)+"\n"), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	writeTAP(7000, 900, 4)
	writeProcStat(t, proc, 1000, 500, 2000, 100)
	writeCounters(t, dir, "100-12", 3000)
	writeThread(t, proc, 100, 106, 150, 120, 500) // a vCPU
	writeThread(t, proc, 100, 102, 40, 0, 300)    // the device's thread
	writeThread(t, proc, 100, 104, 10, 0, 10)     // a thread that ends in the phase
	writeThread(t, proc, 100, 105, 30, 20, 50)    // ran the guest once, serves a device in the phase
	before := takeSnapshot(dir, proc, netStats, nil)

	writeTAP(7150, 930, 9)
	writeProcStat(t, proc, 1300, 600, 2100, 100) // 400 ticks busy, 100 idle: 4 s, 1 s
	writeCounters(t, dir, "100-12", 5000)
	writeThread(t, proc, 100, 106, 350, 270, 900) // 2 s: 1.5 s of guest, 0.5 s own
	writeThread(t, proc, 100, 102, 80, 0, 500)    // 0.4 s, 200 switches
	writeThread(t, proc, 100, 103, 20, 0, 100)    // new: 0.2 s, 100 switches
	writeThread(t, proc, 100, 105, 40, 20, 60)    // 0.1 s, no guest: the device's, 10 switches
	if err := os.RemoveAll(filepath.Join(proc, "100", "task", "104")); err != nil {
		t.Fatal(err)
	}
	got := takeSnapshot(dir, proc, netStats, nil).Cost(before, 10)
	for m, want := range map[string]float64{
		PhaseLabIdle:                      20,
		PhaseGuestCPU:                     150, // ms per MB
		PhaseVCPUOwnCPU:                   50,
		PhaseOtherCPU:                     70,
		PhaseRestCPU:                      130, // 4 s busy less the VMM's 2.7 s
		PhaseOtherSwitches:                31,
		PhaseBusiestCPU:                   40, // the device's thread, not the new one's 0.2 s
		PhaseBusiestSwitches:              20,
		PhaseFirstSwitches:                20,   // thread 102, the first after the main one
		PhaseVCPUSwitches:                 40,   // thread 106: 400
		PhaseVCPUPreempted:                13.4, // of them involuntary: 300 less 166 (writeThread's third)
		PhaseTAPIn:                        15,
		PhaseTAPOut:                       3,
		PhaseTAPDropped:                   0.5,
		KVMPhaseMeasure("exits"):          200,
		KVMPhaseMeasure("irq_injections"): 200,
		KVMPhaseMeasure("halt_exits"):     200,
		PhaseHaltPoll:                     0.0004, // 2 × 2000 ns a counter, in ms, over 10 MB
	} {
		if v, ok := got[m]; !ok || math.Abs(v-want) > 1e-9 {
			t.Errorf("%s = %v (present %v), want %v", m, v, ok, want)
		}
	}
	if len(got) != len(PhaseMeasures) {
		t.Errorf("%d measures, want %d: %v", len(got), len(PhaseMeasures), got)
	}
	if c := before.Cost(before, 0); c != nil {
		t.Errorf("a phase that moved nothing: %v, want no measures", c)
	}
}

func TestParseCPULineRefusesOtherLines(t *testing.T) {
	for _, stat := range []string{"", "cpu0 1 2 3 4 5 6 7 8\n", "cpu 1 2 3\n", "cpu 1 2 x 4 5 6 7 8\n"} {
		if _, _, err := parseCPUTime([]byte(stat), nil); err == nil {
			t.Errorf("parseCPUTime(%q) took it", stat)
		}
	}
}

// TestPhaseCostOfAVMMadeOffTheMainThread: KVM names a VM's directory after
// the thread that created it; the phase still counts the whole process's
// threads, and its first thread after the main one is the lowest other id,
// not the main thread itself.
func TestPhaseCostOfAVMMadeOffTheMainThread(t *testing.T) {
	dir, proc, netStats := t.TempDir(), t.TempDir(), t.TempDir()
	writeProcStat(t, proc, 1000, 500, 2000, 100)
	writeCounters(t, dir, "103-12", 3000)        // made by thread 103 of process 100
	writeThread(t, proc, 100, 100, 5, 0, 40)     // the main thread
	writeThread(t, proc, 100, 101, 5, 0, 10)     // sysmon
	writeThread(t, proc, 100, 103, 150, 120, 50) // a vCPU, which made the VM
	// As in /proc, the thread's own directory has its status and lists
	// its whole process's threads.
	if err := os.MkdirAll(filepath.Join(proc, "103"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(proc, "103", "status"), []byte("Name:\tember\nTgid:\t100\nPid:\t103\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(proc, "100", "task"), filepath.Join(proc, "103", "task")); err != nil {
		t.Fatal(err)
	}
	before := takeSnapshot(dir, proc, netStats, nil)

	writeProcStat(t, proc, 1300, 600, 2100, 100)
	writeCounters(t, dir, "103-12", 5000)
	writeThread(t, proc, 100, 100, 5, 0, 40)      // parked
	writeThread(t, proc, 100, 101, 10, 0, 510)    // 500 switches
	writeThread(t, proc, 100, 103, 350, 270, 150) // 100 switches
	got := takeSnapshot(dir, proc, netStats, nil).Cost(before, 10)
	for m, want := range map[string]float64{
		PhaseFirstSwitches: 50, // sysmon's 500, not the main thread's 0
		PhaseOtherSwitches: 50,
		PhaseVCPUSwitches:  10,
		PhaseGuestCPU:      150,
	} {
		if v := got[m]; math.Abs(v-want) > 1e-9 {
			t.Errorf("%s = %v, want %v", m, v, want)
		}
	}
}

// TestParseCPUTimeOfTheJobsCPUs: with the CPUs picked, the lab's time is
// the sum of their lines, not the total's, and a pick that names no CPU
// there is refused.
func TestParseCPUTimeOfTheJobsCPUs(t *testing.T) {
	stat := []byte("cpu  600 0 300 9000 0 0 0 0 0 0\n" +
		"cpu0 100 0 100 5000 0 0 0 0 0 0\n" +
		"cpu1 200 0 100 2000 0 0 0 0 0 0\n" +
		"cpu2 300 0 100 2000 0 0 0 0 0 0\n" +
		"intr 12345\n")
	tick := func(n uint64) time.Duration { return threadstat.Ticks(n) }
	for _, tc := range []struct {
		name       string
		on         func(int) bool
		busy, idle time.Duration
	}{
		{"all", nil, tick(900), tick(9000)},
		{"all but CPU 0", func(c int) bool { return c != 0 }, tick(700), tick(4000)},
		{"CPU 2", func(c int) bool { return c == 2 }, tick(400), tick(2000)},
	} {
		busy, idle, err := parseCPUTime(stat, tc.on)
		if err != nil || busy != tc.busy || idle != tc.idle {
			t.Errorf("%s: parseCPUTime = %v, %v, %v; want %v, %v", tc.name, busy, idle, err, tc.busy, tc.idle)
		}
	}
	if _, _, err := parseCPUTime(stat, func(c int) bool { return c == 7 }); err == nil {
		t.Error("parseCPUTime took a pick of no CPU there")
	}
}
