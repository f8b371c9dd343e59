package main

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
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
