package main

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"strconv"

	"golang.org/x/sys/unix"
)

// keepOffCPU0 has the job run on every CPU of the lab but its first, which
// is left to the lab kernel's own work (its interrupts, its timekeeping).
//
// Every death of the lab's kernel in the logs of 2026-12-06 and 07 (64
// oops lines, the stack of a thread that had just left a VM, or of the
// idle task after it, not the one it entered with) was on CPU 0, and it
// stayed there with the lab's interrupts moved to CPU 1; with the job kept
// off CPU 0 in a lab of three, a benchmark run that had lost the lab 13
// times in 33 minutes that morning lost it not once (docs/performance-log.md,
// "The lab's deaths: its CPU 0"). What on QEMU's software CPU 0 breaks a
// world switch is not known.
//
// A thread's CPUs are its own, and one it starts (the Go runtime's, a
// step's process) takes its creator's; so every thread of labinit is
// moved, until a pass over them finds none new, before any step starts.
// A lab of one CPU runs the job there.
func keepOffCPU0() error {
	n := runtime.NumCPU()
	if n < 2 {
		return nil
	}
	var set unix.CPUSet
	for c := 1; c < n; c++ {
		set.Set(c)
	}
	moved := map[int]bool{}
	for {
		ents, err := os.ReadDir("/proc/self/task")
		if err != nil {
			return fmt.Errorf("keeping the job off CPU 0: %w", err)
		}
		fresh := 0
		for _, e := range ents {
			tid, err := strconv.Atoi(e.Name())
			if err != nil || moved[tid] {
				continue
			}
			if err := unix.SchedSetaffinity(tid, &set); err != nil && !errors.Is(err, unix.ESRCH) {
				return fmt.Errorf("keeping the job off CPU 0: thread %d: %w", tid, err)
			}
			moved[tid] = true
			fresh++
		}
		if fresh == 0 {
			return nil
		}
	}
}
