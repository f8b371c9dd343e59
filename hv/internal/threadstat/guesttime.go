package threadstat

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"time"
)

// clockTick is USER_HZ, the unit of /proc's times (100 on every Linux ABI).
const clockTick = 100

// GuestTime reads field 43, guest_time, of the calling process's thread tid
// from /proc: the CPU time the thread has spent running guest code, so a
// vCPU thread's share of a VM's guest time is the difference of two reads.
// It is 0 if the file cannot be read or parsed (a thread that has ended),
// because its callers sum it into a metric, where a missing thread adds
// nothing.
func GuestTime(tid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/self/task/%d/stat", tid))
	if err != nil {
		return 0
	}
	return parseGuestTime(b)
}

// parseGuestTime reads guest_time from a /proc stat line.
func parseGuestTime(b []byte) time.Duration {
	// The command name (field 2) may hold spaces; fields count from its ')'.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0
	}
	f := bytes.Fields(b[i+1:])
	const guestTimeField = 43 - 3 // f[0] is field 3
	if len(f) <= guestTimeField {
		return 0
	}
	ticks, err := strconv.ParseUint(string(f[guestTimeField]), 10, 64)
	if err != nil {
		return 0
	}
	return time.Duration(ticks) * time.Second / clockTick
}
