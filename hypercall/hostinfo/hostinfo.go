// Package hostinfo reads what the host tells user space about its hardware:
// the performance and idle states of its CPUs (sysfs cpufreq and cpuidle),
// the physical frame behind a page of this process (/proc/self/pagemap), and
// whether a PCI function exists (sysfs). ember's hypercall service answers
// ACRN's questions about the platform with these facts (a vCPU runs on host
// CPUs, a VM's memory is this process's); they are kept here, apart from the
// handlers, so that each reader can be tested against a fake sysfs.
//
// Every reader degrades to "nothing known" (an empty list, false, ErrNoFrame)
// where the host hides the data, as containers and unprivileged processes
// often do; the callers decide what that means to their guest.
package hostinfo

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
	"unsafe"
)

// Where the readers look; tests point them at a fake tree.
var (
	sysCPU   = "/sys/devices/system/cpu"
	sysPCI   = "/sys/bus/pci/devices"
	pagemap  = "/proc/self/pagemap"
	pageSize = uint64(os.Getpagesize())
)

// readSys returns the trimmed contents of a sysfs file, and false if it
// cannot be read.
func readSys(path string) (string, bool) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", false
	}
	return strings.TrimSpace(string(b)), true
}

// readSysUint returns a sysfs file's decimal value, 0 if it has none.
func readSysUint(path string) uint64 {
	s, _ := readSys(path)
	v, _ := strconv.ParseUint(s, 10, 64)
	return v
}

// PState is one performance state of a host CPU (cpufreq).
type PState struct {
	KHz     uint64        // the core frequency
	Latency time.Duration // cpuinfo_transition_latency: the cost of switching states
}

// PStates returns the P-states of host CPU cpu, fastest first: its
// scaling_available_frequencies, or else its cpuinfo_max_freq and
// cpuinfo_min_freq; none where the host has no cpufreq.
func PStates(cpu int) []PState {
	dir := fmt.Sprintf("%s/cpu%d/cpufreq/", sysCPU, cpu)
	var khz []uint64
	if s, ok := readSys(dir + "scaling_available_frequencies"); ok {
		for _, f := range strings.Fields(s) {
			if v, err := strconv.ParseUint(f, 10, 64); err == nil && v > 0 {
				khz = append(khz, v)
			}
		}
	} else if hi, lo := readSysUint(dir+"cpuinfo_max_freq"), readSysUint(dir+"cpuinfo_min_freq"); hi > 0 {
		khz = append(khz, hi)
		if lo > 0 && lo != hi {
			khz = append(khz, lo)
		}
	}
	sort.Slice(khz, func(i, j int) bool { return khz[i] > khz[j] })
	lat := time.Duration(readSysUint(dir+"cpuinfo_transition_latency")) * time.Nanosecond
	ps := make([]PState, len(khz))
	for i, f := range khz {
		ps[i] = PState{KHz: f, Latency: lat}
	}
	return ps
}

// CState is one idle state of a host CPU (cpuidle).
type CState struct {
	Name    string
	Latency time.Duration // exit latency
	PowerMW uint64        // power drawn in the state, in milliwatts (0 if unknown)
}

// CStates returns the idle states of host CPU cpu in cpuidle's order,
// without the POLL state (a busy loop, not an idle state); none where the
// host has no cpuidle.
func CStates(cpu int) []CState {
	var cs []CState
	for i := 0; ; i++ {
		dir := fmt.Sprintf("%s/cpu%d/cpuidle/state%d/", sysCPU, cpu, i)
		name, ok := readSys(dir + "name")
		if !ok {
			return cs
		}
		if name == "POLL" {
			continue
		}
		cs = append(cs, CState{Name: name, Latency: time.Duration(readSysUint(dir+"latency")) * time.Microsecond,
			PowerMW: readSysUint(dir + "power")})
	}
}

// ErrNoFrame is Phys's error where the host does not say which frame is
// behind a page: /proc/self/pagemap is missing or unreadable, or shows frame
// numbers as 0 (it shows them only to CAP_SYS_ADMIN).
var ErrNoFrame = errors.New("hostinfo: the host does not show the physical frame")

// touched keeps the compiler from dropping Phys's read of the page.
var touched atomic.Uint32

// Phys returns the host-physical address of b[0], from /proc/self/pagemap.
// The page is read first, so that it is present. b must not be empty.
func Phys(b []byte) (uint64, error) {
	touched.Add(uint32(b[0]))
	va := uint64(uintptr(unsafe.Pointer(&b[0])))
	f, err := os.Open(pagemap)
	if err != nil {
		return 0, fmt.Errorf("%w: %v", ErrNoFrame, err)
	}
	defer f.Close()
	var ent [8]byte
	if _, err := f.ReadAt(ent[:], int64(va/pageSize*8)); err != nil {
		return 0, fmt.Errorf("%w: %v", ErrNoFrame, err)
	}
	v := binary.LittleEndian.Uint64(ent[:])
	pfn := v & (1<<55 - 1)
	if v>>63 == 0 || pfn == 0 {
		return 0, ErrNoFrame
	}
	return pfn*pageSize + va%pageSize, nil
}

// PCIExists reports whether the host has the PCI function bdf (bus<<8 |
// device<<3 | function) on segment 0.
func PCIExists(bdf uint16) bool {
	_, err := os.Stat(fmt.Sprintf("%s/0000:%02x:%02x.%d", sysPCI, bdf>>8, bdf>>3&0x1f, bdf&7))
	return err == nil
}
