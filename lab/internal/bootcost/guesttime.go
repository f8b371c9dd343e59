package bootcost

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// GuestCPUMeasure is the table's row for the CPU time the VMM's vCPU
// threads spent running the guest (guest_time in /proc/PID/stat, which
// the kernel also counts in the process's user time). The rest of
// UsageMeasures' "vmm cpu (s)" is the VMM's own work: its exits, devices
// and runtime, and the kernel's on its behalf.
const GuestCPUMeasure = "vmm guest cpu (s)"

// userHz is the unit of /proc/PID/stat's times: USER_HZ, 100 on x86
// (sysconf(_SC_CLK_TCK), which Go cannot call without cgo).
const userHz = 100

// guestTimeField is guest_time's position in /proc/PID/stat, counting from
// 1 (proc(5)).
const guestTimeField = 43

// vmPID is the process a VM's debugfs directory ("PID-FD") belongs to.
func vmPID(vmDir string) (int, bool) {
	pid, _, ok := strings.Cut(vmDir, "-")
	n, err := strconv.Atoi(pid)
	return n, ok && err == nil
}

// readGuestTime reads the guest time, in USER_HZ ticks, of process pid
// under proc (/proc, or a test's).
func readGuestTime(proc string, pid int) (uint64, error) {
	b, err := os.ReadFile(filepath.Join(proc, strconv.Itoa(pid), "stat"))
	if err != nil {
		return 0, err
	}
	return parseGuestTime(b)
}

// parseGuestTime takes guest_time from a /proc/PID/stat line. The command
// name, field 2, is in parentheses and may hold spaces and parentheses
// itself, so the fields are counted from the last ')'.
func parseGuestTime(stat []byte) (uint64, error) {
	end := bytes.LastIndexByte(stat, ')')
	if end < 0 {
		return 0, fmt.Errorf("stat line without a command name: %q", stat)
	}
	fields := strings.Fields(string(stat[end+1:])) // from field 3, the state
	i := guestTimeField - 3
	if i >= len(fields) {
		return 0, fmt.Errorf("stat line of %d fields, guest_time is field %d", len(fields)+2, guestTimeField)
	}
	return strconv.ParseUint(fields[i], 10, 64)
}
