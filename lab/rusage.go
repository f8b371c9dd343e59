package main

import (
	"time"

	"golang.org/x/sys/unix"
)

// childUsage is what the lab's processes that ended and were waited for
// used so far (getrusage RUSAGE_CHILDREN): a boot's VMM, with every thread
// and process it started, once the boot has ended.
type childUsage struct {
	cpu      time.Duration // user and system
	switches int64         // context switches, voluntary and not
}

// readChildUsage reads the counts; zero if it cannot.
func readChildUsage() childUsage {
	var ru unix.Rusage
	if unix.Getrusage(unix.RUSAGE_CHILDREN, &ru) != nil {
		return childUsage{}
	}
	tv := func(t unix.Timeval) time.Duration { return time.Duration(t.Nano()) }
	return childUsage{cpu: tv(ru.Utime) + tv(ru.Stime), switches: ru.Nvcsw + ru.Nivcsw}
}

// usageMeasures are the table's rows for what a boot's VMM used.
var usageMeasures = []string{"vmm cpu (s)", "vmm ctx switches (k)"}

// since is what was used between before and u, as the table's measures.
func (u childUsage) since(before childUsage) map[string]float64 {
	return map[string]float64{
		usageMeasures[0]: (u.cpu - before.cpu).Seconds(),
		usageMeasures[1]: float64(u.switches-before.switches) / 1000,
	}
}
