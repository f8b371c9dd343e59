package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// kvmDebugfs is where the lab's kernel shows each VM's statistics: a
// directory PID-FD per VM, a file per counter, summed over the VM's vCPUs.
const kvmDebugfs = "/sys/kernel/debug/kvm"

// vmStatDir matches a VM's directory in kvmDebugfs (the others are vCPUs'
// and the kernel's own totals).
var vmStatDir = regexp.MustCompile(`^[0-9]+-[0-9]+$`)

// kvmCounters are the counters a benchmark boot reports, in the order shown:
// every exit, then the kinds that tell VMMs apart (an exit to user space
// for port or MMIO I/O, a halt, a host interrupt, the guest waiting for an
// interrupt window), and the interrupts KVM injected.
var kvmCounters = []string{"exits", "io_exits", "mmio_exits", "halt_exits", "irq_exits", "irq_window_exits", "irq_injections", "insn_emulation"}

// kvmSampleEvery is how often a kvmSampler reads the counters. A VM's
// directory goes with the VM, so what it counted after the last read is
// lost: at most this long of a boot's end, when the guest is powering off.
const kvmSampleEvery = 200 * time.Millisecond

// mountDebugfs mounts debugfs where the lab has not, so kvmDebugfs shows.
func mountDebugfs() error {
	if _, err := os.Stat(kvmDebugfs); err == nil {
		return nil
	}
	if err := unix.Mount("debugfs", "/sys/kernel/debug", "debugfs", 0, ""); err != nil && !errors.Is(err, unix.EBUSY) {
		return fmt.Errorf("mount debugfs: %w", err)
	}
	if _, err := os.Stat(kvmDebugfs); err != nil {
		return fmt.Errorf("no KVM statistics: %w", err)
	}
	return nil
}

// kvmSampler follows the counters of every VM that lives while it runs,
// keeping each VM's last reading: what a boot cost in exits, by kind, for
// whichever VMM ran it.
type kvmSampler struct {
	dir  string // kvmDebugfs, or a test's
	stop chan struct{}
	done chan struct{}
	mu   sync.Mutex
	last map[string]map[string]uint64 // by VM directory, by counter
}

// startKVMSampler starts reading the counters under dir (kvmDebugfs) every
// kvmSampleEvery.
func startKVMSampler(dir string) *kvmSampler {
	s := &kvmSampler{dir: dir, stop: make(chan struct{}), done: make(chan struct{}), last: map[string]map[string]uint64{}}
	go s.run()
	return s
}

// run reads until finish.
func (s *kvmSampler) run() {
	defer close(s.done)
	t := time.NewTicker(kvmSampleEvery)
	defer t.Stop()
	for {
		s.read()
		select {
		case <-s.stop:
			return
		case <-t.C:
		}
	}
}

// read takes one reading of every VM's counters.
func (s *kvmSampler) read() {
	dirs, err := os.ReadDir(s.dir)
	if err != nil {
		return
	}
	for _, d := range dirs {
		if !vmStatDir.MatchString(d.Name()) {
			continue
		}
		vals := map[string]uint64{}
		for _, c := range kvmCounters {
			b, err := os.ReadFile(filepath.Join(s.dir, d.Name(), c))
			if err != nil {
				break // the VM went while it was read: keep the reading before
			}
			if v, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64); err == nil {
				vals[c] = v
			}
		}
		if len(vals) == len(kvmCounters) {
			s.mu.Lock()
			s.last[d.Name()] = vals
			s.mu.Unlock()
		}
	}
}

// finish stops the sampler and returns the counters summed over the VMs it
// saw, in thousands, keyed as kvmMeasure names them; nil if it saw none.
func (s *kvmSampler) finish() map[string]float64 {
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
			m[kvmMeasure(c)] += float64(v) / 1000
		}
	}
	return m
}

// kvmMeasure is the table's name of counter c.
func kvmMeasure(c string) string { return "kvm " + c + " (k)" }

// kvmMeasures are the table's rows for the counters, in kvmCounters' order.
func kvmMeasures() []string {
	m := make([]string, len(kvmCounters))
	for i, c := range kvmCounters {
		m[i] = kvmMeasure(c)
	}
	return m
}
