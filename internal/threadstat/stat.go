package threadstat

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// clockTick is USER_HZ, the unit of /proc's times (100 on every Linux ABI).
const clockTick = 100

// Fields of /proc/PID/task/TID/stat, counting from 1 (proc(5)).
const (
	utimeField     = 14
	stimeField     = 15
	guestTimeField = 43
)

// Times is what the kernel counted for one thread.
type Times struct {
	CPU   time.Duration // user and system time, guest time included (the kernel counts it as user time)
	Guest time.Duration // running guest code (guest_time)
	// System is the time in the kernel (stime): for a vCPU thread, KVM's
	// work around the guest's runs (exits it handles itself, loading and
	// putting the vCPU, halts); CPU less Guest less System is the
	// thread's own code.
	System   time.Duration
	Switches uint64 // context switches, voluntary and not (ReadThread only)
	// Preempted is those of Switches the thread did not ask for: the
	// scheduler put another thread on its CPU (ReadThread only).
	Preempted uint64
}

// GuestTime reads the guest time of the calling process's thread tid: the
// CPU time the thread has spent running guest code, so a vCPU thread's
// share of a VM's guest time is the difference of two reads. It is 0 if
// the file cannot be read or parsed (a thread that has ended), because its
// callers sum it into a metric, where a missing thread adds nothing.
func GuestTime(tid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/self/task/%d/stat", tid))
	if err != nil {
		return 0
	}
	t, err := ParseStat(b)
	if err != nil {
		return 0
	}
	return t.Guest
}

// ReadThread reads the stat and status files of the thread whose /proc
// directory is dir (/proc/PID/task/TID).
func ReadThread(dir string) (Times, error) {
	stat, err := os.ReadFile(filepath.Join(dir, "stat"))
	if err != nil {
		return Times{}, err
	}
	t, err := ParseStat(stat)
	if err != nil {
		return t, fmt.Errorf("%s: %w", dir, err)
	}
	status, err := os.ReadFile(filepath.Join(dir, "status"))
	if err != nil {
		return t, err
	}
	voluntary, preempted := ParseSwitches(status)
	t.Switches, t.Preempted = voluntary+preempted, preempted
	return t, nil
}

// ParseStat takes the CPU and guest times from a stat line. The command
// name, field 2, is in parentheses and may hold spaces and parentheses
// itself, so the fields are counted from the last ')'.
func ParseStat(line []byte) (Times, error) {
	end := bytes.LastIndexByte(line, ')')
	if end < 0 {
		return Times{}, fmt.Errorf("stat line without a command name: %q", line)
	}
	fields := bytes.Fields(line[end+1:]) // from field 3, the state
	var v [3]uint64
	for i, n := range []int{utimeField, stimeField, guestTimeField} {
		if n-3 >= len(fields) {
			return Times{}, fmt.Errorf("stat line of %d fields, want field %d", len(fields)+2, n)
		}
		var err error
		if v[i], err = strconv.ParseUint(string(fields[n-3]), 10, 64); err != nil {
			return Times{}, fmt.Errorf("stat field %d: %w", n, err)
		}
	}
	return Times{CPU: Ticks(v[0] + v[1]), Guest: Ticks(v[2]), System: Ticks(v[1])}, nil
}

// Ticks is n of /proc's time unit (USER_HZ) as a duration: the unit of
// /proc/PID/stat's times and of /proc/stat's.
func Ticks(n uint64) time.Duration { return time.Duration(n) * time.Second / clockTick }

// ReadProcess reads every thread of process pid under proc (/proc, or a
// test's copy of it), by thread id; a thread that ends while it is read
// is left out.
func ReadProcess(proc string, pid int) (map[int]Times, error) {
	dir := filepath.Join(proc, strconv.Itoa(pid), "task")
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	out := map[int]Times{}
	for _, e := range ents {
		tid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if t, err := ReadThread(filepath.Join(dir, e.Name())); err == nil {
			out[tid] = t
		}
	}
	return out, nil
}

// ThreadGroup is the process thread tid belongs to, as /proc/TID/status
// under proc gives it (its Tgid line); tid itself where that cannot be
// read. A thread's id is what some of the kernel's names carry rather
// than its process's: KVM names a VM's debugfs directory after the thread
// that created the VM, which in a Go program is any of its threads.
func ThreadGroup(proc string, tid int) int {
	b, err := os.ReadFile(filepath.Join(proc, strconv.Itoa(tid), "status"))
	if err != nil {
		return tid
	}
	if pid, ok := statusValue(b, "Tgid"); ok && pid > 0 {
		return int(pid)
	}
	return tid
}

// ParseSwitches reads a status file's voluntary and involuntary context
// switches; a line it cannot read counts nothing.
func ParseSwitches(status []byte) (voluntary, preempted uint64) {
	voluntary, _ = statusValue(status, "voluntary_ctxt_switches")
	preempted, _ = statusValue(status, "nonvoluntary_ctxt_switches")
	return voluntary, preempted
}

// statusValue reads the number on a status file's line "key:\tN"; false
// if there is no such line or its value is not a number.
func statusValue(status []byte, key string) (uint64, bool) {
	for _, l := range strings.Split(string(status), "\n") {
		if k, v, ok := strings.Cut(l, ":"); ok && k == key {
			n, err := strconv.ParseUint(strings.TrimSpace(v), 10, 64)
			return n, err == nil
		}
	}
	return 0, false
}

// Sysmon reads what the kernel counted for the calling process's Go
// sysmon thread: the first thread the runtime starts after the main one
// (runtime.main starts it before any package is initialized), so
// FirstThread's. Tests read its context switches to see whether a loop on
// a locked thread keeps it polling (package internal/sysmon).
func Sysmon() (Times, error) {
	threads, err := ReadProcess("/proc", os.Getpid())
	if err != nil {
		return Times{}, err
	}
	tid := FirstThread(os.Getpid(), threads)
	if tid == 0 {
		return Times{}, fmt.Errorf("the process has no thread but its main one")
	}
	return threads[tid], nil
}

// FirstThread is the first thread process pid started after its main one,
// among threads (ReadProcess's): the lowest id but pid's own, unless the
// kernel's ids wrapped around between the two (pid_max), which a process
// started on a quiet machine does not meet. In a Go program it is sysmon;
// 0 if there is no thread but the main one.
func FirstThread(pid int, threads map[int]Times) int {
	first := 0
	for tid := range threads {
		if tid != pid && (first == 0 || tid < first) {
			first = tid
		}
	}
	return first
}
