package bootcost

import (
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"ember/internal/threadstat"
	"ember/lab/internal/every"

	"golang.org/x/sys/unix"
)

// Debugfs is where the lab's kernel shows each VM's statistics: a
// directory PID-FD per VM, a file per counter, summed over the VM's vCPUs.
// A Sampler reads it; it shows only once debugfs is mounted (MountDebugfs).
const Debugfs = "/sys/kernel/debug/kvm"

// vmStatDir matches a VM's directory in Debugfs (the others are vCPUs'
// and the kernel's own totals).
var vmStatDir = regexp.MustCompile(`^[0-9]+-[0-9]+$`)

// kvmCounters are the counters a benchmark boot reports, in the order shown:
// every exit, then the kinds that tell VMMs apart (an exit to user space
// for port or MMIO I/O, a halt, a host interrupt, the guest waiting for an
// interrupt window), the interrupts KVM injected, the instructions it
// emulated, the exits a signal to the vCPU's thread forced (a VMM's kicks,
// Go's preemption) and the guest's hypercalls (Linux's paravirtual
// spinlock kicks and IPIs among them).
var kvmCounters = []string{"exits", "io_exits", "mmio_exits", "halt_exits", "irq_exits", "irq_window_exits", "irq_injections", "insn_emulation", "signal_exits", "hypercalls"}

// pollCounters are the nanoseconds KVM's vCPU threads spent polling for an
// interrupt after the guest halted, before sleeping (halt polling: ended by
// an interrupt, or in vain). A phase reports them (PhaseHaltPoll); a kernel
// without them counts none.
var pollCounters = []string{"halt_poll_success_ns", "halt_poll_fail_ns"}

// sampleEvery is how often a Sampler reads the counters. A VM's
// directory goes with the VM, so what it counted after the last read is
// lost: at most this long of a boot's end, when the guest is powering off.
const sampleEvery = 200 * time.Millisecond

// MountDebugfs mounts debugfs where the lab has not, so Debugfs shows; an
// error says why there are no KVM counters to sample (the table then goes
// without their rows).
func MountDebugfs() error {
	if _, err := os.Stat(Debugfs); err == nil {
		return nil
	}
	if err := unix.Mount("debugfs", "/sys/kernel/debug", "debugfs", 0, ""); err != nil && !errors.Is(err, unix.EBUSY) {
		return fmt.Errorf("mount debugfs: %w", err)
	}
	if _, err := os.Stat(Debugfs); err != nil {
		return fmt.Errorf("no KVM statistics: %w", err)
	}
	return nil
}

// Sampler follows the counters of every VM that lives while it runs,
// keeping each VM's last reading: what a boot cost in exits, by kind, for
// whichever VMM ran it. KVM removes a VM's counters with the VM, so they
// must be read while the boot runs, not after.
type Sampler struct {
	dir     string // Debugfs, or a test's
	proc    string // /proc, or a test's
	stop    chan struct{}
	done    chan struct{}
	mu      sync.Mutex
	last    map[string]map[string]uint64     // by VM directory, by counter
	threads map[int]map[int]threadstat.Times // by VMM process, by thread
}

// StartSampler starts reading the counters under dir (Debugfs), and the
// times and switches of every thread of each VM's process (/proc), every
// sampleEvery, until Finish.
func StartSampler(dir string) *Sampler { return startSampler(dir, "/proc") }

// startSampler is StartSampler with the processes read under proc.
func startSampler(dir, proc string) *Sampler {
	s := &Sampler{dir: dir, proc: proc, stop: make(chan struct{}), done: make(chan struct{}),
		last: map[string]map[string]uint64{}, threads: map[int]map[int]threadstat.Times{}}
	go s.run()
	return s
}

// run reads until Finish.
func (s *Sampler) run() {
	defer close(s.done)
	s.read()
	every.Tick(sampleEvery, s.stop, func() bool { s.read(); return true })
}

// read takes one reading of every VM's counters.
func (s *Sampler) read() {
	vms := readVMs(s.dir)
	for vm, vals := range vms {
		s.mu.Lock()
		s.last[vm] = vals
		s.mu.Unlock()
		s.readProcess(vm)
	}
}

// readVMs reads the counters of every VM under dir, by VM directory; a VM
// that went while it was read is left out.
func readVMs(dir string) map[string]map[string]uint64 {
	dirs, err := os.ReadDir(dir)
	if err != nil {
		return nil
	}
	out := map[string]map[string]uint64{}
	for _, d := range dirs {
		if !vmStatDir.MatchString(d.Name()) {
			continue
		}
		vals := map[string]uint64{}
		for _, c := range kvmCounters {
			v, err := readUint(filepath.Join(dir, d.Name(), c))
			if err != nil {
				break // the VM went while it was read
			}
			vals[c] = v
		}
		if len(vals) != len(kvmCounters) {
			continue
		}
		for _, c := range pollCounters {
			if v, err := readUint(filepath.Join(dir, d.Name(), c)); err == nil {
				vals[c] = v
			}
		}
		out[d.Name()] = vals
	}
	return out
}

// readProcess takes one reading of the threads of the process that owns
// VM directory vm; a thread that has gone, or a process, keeps its
// reading before.
func (s *Sampler) readProcess(vm string) {
	pid, ok := vmPID(s.proc, vm)
	if !ok {
		return
	}
	threads, err := threadstat.ReadProcess(s.proc, pid)
	if err != nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.threads[pid] == nil {
		s.threads[pid] = map[int]threadstat.Times{}
	}
	maps.Copy(s.threads[pid], threads)
}

// Finish stops the sampler and returns the counters summed over the VMs it
// saw, in thousands, keyed as KVMMeasure names them, and how their
// processes' CPU time and context switches split between running the guest,
// the vCPU threads and the other threads (procMeasures); nil if it saw no
// VM (so a boot adds no rows it could not count).
func (s *Sampler) Finish() map[string]float64 {
	close(s.stop)
	<-s.done
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.last) == 0 {
		return nil
	}
	m := map[string]float64{}
	for _, vals := range s.last {
		for c, v := range vals {
			m[KVMMeasure(c)] += float64(v) / 1000
		}
	}
	if len(s.threads) > 0 {
		maps.Copy(m, procCounts(s.threads))
	}
	return m
}

// KVMMeasure is the table's name of KVM counter c (a file name in a VM's
// directory of Debugfs, such as "exits"), in thousands.
func KVMMeasure(c string) string { return "kvm " + c + " (k)" }

// SamplerMeasures are the table's rows a Sampler reports, in the order the
// table shows them: the split of the VMM's CPU time and switches, then the
// KVM counters.
func SamplerMeasures() []string {
	m := slices.Clone(procMeasures)
	for _, c := range kvmCounters {
		m = append(m, KVMMeasure(c))
	}
	return m
}

// readUint reads a file that holds one decimal number: a KVM counter in
// debugfs, a network interface's statistic in sysfs.
func readUint(path string) (uint64, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	return strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
}
