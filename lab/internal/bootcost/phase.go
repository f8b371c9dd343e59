package bootcost

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"golang.org/x/sys/unix"

	"ember/internal/threadstat"
)

// What one phase of a boot (a benchmark's stream) cost the lab, per
// megabyte the phase moved, beside its rate: how busy the lab's CPUs were,
// how that CPU time split between the guest, the VMM's vCPU threads' own
// work, the VMM's other threads and everything else in the lab (the
// benchmark's lab end, the kernel's network stack outside the VMM's system
// calls), and what KVM did. A VMM that moves a megabyte with less of the
// lab's CPU is cheaper; one whose lab sits idle while it streams is waiting,
// not working. The keys of Snapshot.Cost's map.
const (
	PhaseLabIdle    = "lab idle (%)"
	PhaseGuestCPU   = "guest cpu (ms/MB)"
	PhaseVCPUOwnCPU = "vcpu threads' own cpu (ms/MB)"
	PhaseOtherCPU   = "vmm other threads' cpu (ms/MB)"
	// The other thread that used most CPU in the phase: a device's thread
	// or QEMU's main loop, apart from the runtime's and workers.
	PhaseBusiestCPU      = "vmm busiest other thread's cpu (ms/MB)"
	PhaseBusiestSwitches = "vmm busiest other thread's switches (/MB)"
	PhaseRestCPU         = "rest of the lab's cpu (ms/MB)"
	PhaseOtherSwitches   = "vmm other threads' switches (/MB)"
	// The vCPU threads' context switches, and of them those the scheduler
	// forced on them (another thread took the CPU): each costs a vCPU a
	// world switch, KVM's vcpu_put and vcpu_load, and the guest the time
	// it waits. The rest are halts and the VMM's own sleeps.
	PhaseVCPUSwitches  = "vcpu threads' switches (/MB)"
	PhaseVCPUPreempted = "vcpu threads' preemptions (/MB)"
	// The switches of the first thread the VMM's process started after
	// its main one: Go's sysmon in ember (the runtime starts it before any
	// package is initialized), QEMU's RCU thread. Of the other threads'.
	PhaseFirstSwitches = "vmm first thread's switches (/MB)"
	// The packets the VMM wrote into the benchmark's TAP and those the lab
	// queued to it, per megabyte: a stream of big GSO packets costs less a
	// byte than one of small ones.
	PhaseTAPIn  = "tap packets from the vmm (/MB)"
	PhaseTAPOut = "tap packets to the vmm (/MB)"
	// The packets the lab sent towards the VMM that the TAP dropped (its
	// tx_dropped), per megabyte: a TAP's queue holds as many packets as its
	// txqueuelen and drops what comes while it is full, so a VMM that
	// reads its TAP late loses the sender's packets, and TCP shrinks its
	// window for each loss.
	PhaseTAPDropped = "tap packets dropped on the way to the vmm (/MB)"
	// The vCPU threads' time polling after a halt (pollCounters), part of
	// their own CPU: a poll that waits for an interrupt in a lab with no
	// idle CPU takes that CPU from the guest and the VMM's other threads.
	PhaseHaltPoll = "kvm halt polling (ms/MB)"
)

// phaseCounters are the KVM counters a phase reports per megabyte
// (KVMPhaseMeasure names them): every exit, port I/O (a virtio
// notification through a port among them), halts, host interrupts,
// interrupt windows and the interrupts injected.
var phaseCounters = []string{"exits", "io_exits", "halt_exits", "irq_exits", "irq_window_exits", "irq_injections"}

// KVMPhaseMeasure is the name of KVM counter c in a phase's cost.
func KVMPhaseMeasure(c string) string { return "kvm " + c + " (/MB)" }

// PhaseMeasures are Snapshot.Cost's measures in the order a table shows
// them.
var PhaseMeasures = func() []string {
	m := []string{PhaseLabIdle, PhaseGuestCPU, PhaseVCPUOwnCPU, PhaseOtherCPU, PhaseBusiestCPU, PhaseRestCPU,
		PhaseOtherSwitches, PhaseBusiestSwitches, PhaseFirstSwitches, PhaseVCPUSwitches, PhaseVCPUPreempted, PhaseTAPIn, PhaseTAPOut, PhaseTAPDropped}
	for _, c := range phaseCounters {
		m = append(m, KVMPhaseMeasure(c))
	}
	return append(m, PhaseHaltPoll)
}()

// Snapshot is one reading of everything a phase's cost is the difference
// of: the lab's CPU time, every VM's KVM counters and the times of the
// threads of each VM's process. Take one as a phase starts and one as it
// ends (TakeSnapshot), then Cost.
type Snapshot struct {
	busy, idle time.Duration                    // the lab's, over all its CPUs
	tapIn      uint64                           // packets the VMM wrote into the TAP (its rx_packets)
	tapOut     uint64                           // packets the lab queued to the VMM (its tx_packets)
	tapDropped uint64                           // packets to the VMM the TAP dropped (its tx_dropped)
	kvm        map[string]uint64                // summed over the VMs
	threads    map[int]map[int]threadstat.Times // by VMM process, by thread
}

// TakeSnapshot reads the lab's /proc/stat, the counters of network
// interface tap, Debugfs and each VM process's threads now. What it cannot
// read counts as zero: in a lab without debugfs, where the VMM's process
// is found through its VM's directory, a phase's lab idle share, TAP
// packets and rest of the lab's CPU (all of it) stand, and the VMM's and
// KVM's rows are zero.
//
// The lab's CPU time is that of the CPUs the calling thread may run on,
// the job's: the lab's init keeps the job off its CPU 0 (lab/labinit,
// keepOffCPU0), whose idle time would otherwise count in the idle share.
func TakeSnapshot(tap string) Snapshot {
	return takeSnapshot(Debugfs, "/proc", filepath.Join("/sys/class/net", tap, "statistics"), jobCPUs())
}

// jobCPUs says which CPUs' time is the lab's: those of the calling thread's
// affinity, or nil (all, the total line) where it has CPU 0 or cannot be
// read.
func jobCPUs() func(int) bool {
	var set unix.CPUSet
	if err := unix.SchedGetaffinity(0, &set); err != nil || set.IsSet(0) {
		return nil
	}
	return set.IsSet
}

// takeSnapshot is TakeSnapshot under a test's directories; netStats is
// the TAP's statistics directory; on picks the CPUs counted (nil: all).
func takeSnapshot(dir, proc, netStats string, on func(int) bool) Snapshot {
	s := Snapshot{kvm: map[string]uint64{}, threads: map[int]map[int]threadstat.Times{}}
	if b, err := os.ReadFile(filepath.Join(proc, "stat")); err == nil {
		s.busy, s.idle, _ = parseCPUTime(b, on)
	}
	// An interface that is not there counts nothing.
	s.tapIn, _ = readUint(filepath.Join(netStats, "rx_packets"))
	s.tapOut, _ = readUint(filepath.Join(netStats, "tx_packets"))
	s.tapDropped, _ = readUint(filepath.Join(netStats, "tx_dropped"))
	for vm, vals := range readVMs(dir) {
		for c, v := range vals {
			s.kvm[c] += v
		}
		if pid, ok := vmPID(proc, vm); ok {
			if t, err := threadstat.ReadProcess(proc, pid); err == nil {
				s.threads[pid] = t
			}
		}
	}
	return s
}

// Cost is what happened between before and s, a phase that moved mb
// megabytes, as PhaseMeasures name it. A thread that started during the
// phase counts from zero; one that ended during it is left out, with what
// it did before it ended. A vCPU thread is one that ran the guest during
// the phase: a VMM that moved a vCPU to another thread may leave a thread
// that ran the guest before serving a device in the phase, and that work
// is the device's (a trial build of ember's did, 2026-12-05).
func (s Snapshot) Cost(before Snapshot, mb float64) map[string]float64 {
	if mb <= 0 {
		return nil
	}
	perMB := func(d time.Duration) float64 { return float64(d.Milliseconds()) / mb }
	count := func(now, then uint64) float64 { return float64(now-then) / mb }
	var guest, own, other time.Duration
	var switches, first, vcpuSwitches, vcpuPreempted uint64
	var busiest threadstat.Times
	for pid, byTID := range s.threads {
		firstTID := threadstat.FirstThread(pid, byTID)
		for tid, t := range byTID {
			b := before.threads[pid][tid]
			d := threadstat.Times{CPU: t.CPU - b.CPU, Guest: t.Guest - b.Guest,
				Switches: t.Switches - b.Switches, Preempted: t.Preempted - b.Preempted}
			if d.Guest > 0 {
				guest += d.Guest
				own += d.CPU - d.Guest
				vcpuSwitches += d.Switches
				vcpuPreempted += d.Preempted
				continue
			}
			other += d.CPU
			switches += d.Switches
			if tid == firstTID {
				first += d.Switches
			}
			if d.CPU > busiest.CPU {
				busiest = d
			}
		}
	}
	busy, idle := s.busy-before.busy, s.idle-before.idle
	m := map[string]float64{
		PhaseGuestCPU:        perMB(guest),
		PhaseVCPUOwnCPU:      perMB(own),
		PhaseOtherCPU:        perMB(other),
		PhaseBusiestCPU:      perMB(busiest.CPU),
		PhaseRestCPU:         perMB(max(busy-guest-own-other, 0)),
		PhaseOtherSwitches:   float64(switches) / mb,
		PhaseBusiestSwitches: float64(busiest.Switches) / mb,
		PhaseFirstSwitches:   float64(first) / mb,
		PhaseVCPUSwitches:    float64(vcpuSwitches) / mb,
		PhaseVCPUPreempted:   float64(vcpuPreempted) / mb,
		PhaseTAPIn:           count(s.tapIn, before.tapIn),
		PhaseTAPOut:          count(s.tapOut, before.tapOut),
		PhaseTAPDropped:      count(s.tapDropped, before.tapDropped),
	}
	for _, c := range phaseCounters {
		m[KVMPhaseMeasure(c)] = count(s.kvm[c], before.kvm[c])
	}
	var poll uint64
	for _, c := range pollCounters {
		poll += s.kvm[c] - before.kvm[c]
	}
	m[PhaseHaltPoll] = float64(poll) / 1e6 / mb
	if busy+idle > 0 {
		m[PhaseLabIdle] = 100 * float64(idle) / float64(busy+idle)
	}
	return m
}

// parseCPUTime reads the lab's CPU time from /proc/stat: busy (user,
// nice, system, irq, softirq, steal; a guest's time is in user) and idle
// (idle, iowait), from its first line, the total over all CPUs, or, with
// on, summed over the lines of the CPUs on picks.
func parseCPUTime(stat []byte, on func(int) bool) (busy, idle time.Duration, err error) {
	if on == nil {
		line, _, _ := bytes.Cut(stat, []byte("\n"))
		return parseCPULine(line, "cpu")
	}
	for line := range bytes.Lines(stat) {
		name, _, _ := bytes.Cut(line, []byte(" "))
		n, ok := bytes.CutPrefix(name, []byte("cpu"))
		cpu, err := strconv.Atoi(string(n))
		if !ok || err != nil || !on(cpu) {
			continue
		}
		b, i, err := parseCPULine(bytes.TrimSpace(line), string(name))
		if err != nil {
			return 0, 0, err
		}
		busy, idle = busy+b, idle+i
	}
	if busy+idle == 0 {
		return 0, 0, fmt.Errorf("/proc/stat: no line of the CPUs picked")
	}
	return busy, idle, nil
}

// parseCPULine reads one CPU line of /proc/stat whose first field is name.
func parseCPULine(line []byte, name string) (busy, idle time.Duration, err error) {
	f := bytes.Fields(line)
	if len(f) < 9 || string(f[0]) != name {
		return 0, 0, fmt.Errorf("/proc/stat: line %q is not %s's", line, name)
	}
	var v [8]uint64
	for i := range v {
		if v[i], err = strconv.ParseUint(string(f[i+1]), 10, 64); err != nil {
			return 0, 0, fmt.Errorf("/proc/stat: field %d: %w", i+1, err)
		}
	}
	tick := threadstat.Ticks
	const user, nice, system, idleF, iowait, irq, softirq, steal = 0, 1, 2, 3, 4, 5, 6, 7
	busy = tick(v[user] + v[nice] + v[system] + v[irq] + v[softirq] + v[steal])
	idle = tick(v[idleF] + v[iowait])
	return busy, idle, nil
}
