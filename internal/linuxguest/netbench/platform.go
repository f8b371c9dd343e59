package main

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"golang.org/x/sys/unix"
)

// reportPlatform prints what the guest's kernel made of the machine the
// VMM gave it: its clocksource, the CPU vulnerabilities it mitigates and
// how, and the CPU flags it sees. Two VMMs whose guests differ here pay
// differently for every system call, interrupt and clock read of the
// same workload, so a comparison of them starts by reading these lines.
func reportPlatform() {
	if b, err := os.ReadFile("/sys/devices/system/clocksource/clocksource0/current_clocksource"); err == nil {
		fmt.Printf("ember-bench: net info platform clocksource %s\n", strings.TrimSpace(string(b)))
	}
	fmt.Printf("ember-bench: net info platform mitigations %s\n", strings.Join(mitigations("/sys/devices/system/cpu/vulnerabilities"), "; "))
	if flags := cpuFlags("/proc/cpuinfo"); flags != "" {
		fmt.Printf("ember-bench: net info platform flags %s\n", flags)
	}
	for _, l := range clockLog(kernelLog()) {
		fmt.Printf("ember-bench: net info platform klog %s\n", l)
	}
}

// kernelLog is the kernel's log buffer as syslog(2) reads it, or nothing.
func kernelLog() string {
	n, err := unix.Klogctl(unix.SYSLOG_ACTION_SIZE_BUFFER, nil)
	if err != nil || n <= 0 {
		return ""
	}
	buf := make([]byte, n)
	n, err = unix.Klogctl(unix.SYSLOG_ACTION_READ_ALL, buf)
	if err != nil {
		return ""
	}
	return string(buf[:n])
}

// clockLog picks the lines of a kernel log that say how the guest keeps
// time: which clocksource and TSC it chose, and whether it found its
// scheduler clock unstable ("Unstable clock detected"), which kvm-clock
// does when the host does not mark it stable (PVCLOCK_TSC_STABLE_BIT). An
// unstable one costs the guest more for every clock read, and its vDSO
// falls back to a system call.
func clockLog(log string) []string {
	return linesWith(log, "clocksource", "tsc:", "kvm-clock", "Unstable clock", "sched_clock")
}

// linesWith picks the lines of log that hold any of keys, trimmed.
func linesWith(log string, keys ...string) []string {
	var out []string
	for _, l := range strings.Split(log, "\n") {
		for _, k := range keys {
			if strings.Contains(l, k) {
				out = append(out, strings.TrimSpace(l))
				break
			}
		}
	}
	return out
}

// mitigations lists each vulnerability file of dir as "name: state",
// those the kernel reports as not affected left out, sorted by name.
func mitigations(dir string) []string {
	paths, _ := filepath.Glob(filepath.Join(dir, "*"))
	sort.Strings(paths)
	var out []string
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		state := strings.TrimSpace(string(b))
		if state == "Not affected" {
			continue
		}
		out = append(out, filepath.Base(p)+": "+state)
	}
	return out
}

// cpuFlags returns the first "flags" line of a /proc/cpuinfo, the flags
// alone; every vCPU of a VM sees the same.
func cpuFlags(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	for _, l := range strings.Split(string(b), "\n") {
		if name, value, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(name) == "flags" {
			return strings.TrimSpace(value)
		}
	}
	return ""
}
