package bootcost

import (
	"time"

	"golang.org/x/sys/unix"
)

// Usage is what the lab's processes that ended and were waited for used so
// far (getrusage RUSAGE_CHILDREN): a boot's VMM, with every thread and
// process it started, once the boot has ended. A boot's cost is the
// difference of two readings (Since), one before it and one after.
type Usage struct {
	cpu      time.Duration // user and system
	switches int64         // context switches, voluntary and not
}

// ReadUsage reads the counts; zero if it cannot.
func ReadUsage() Usage {
	var ru unix.Rusage
	if unix.Getrusage(unix.RUSAGE_CHILDREN, &ru) != nil {
		return Usage{}
	}
	tv := func(t unix.Timeval) time.Duration { return time.Duration(t.Nano()) }
	return Usage{cpu: tv(ru.Utime) + tv(ru.Stime), switches: ru.Nvcsw + ru.Nivcsw}
}

// UsageMeasures are the table's rows for what a boot's VMM used, the keys
// of Since's map: CPU seconds, then context switches in thousands.
var UsageMeasures = []string{"vmm cpu (s)", "vmm ctx switches (k)"}

// Since is what was used between before and u, as the table's measures
// (UsageMeasures).
func (u Usage) Since(before Usage) map[string]float64 {
	return map[string]float64{
		UsageMeasures[0]: (u.cpu - before.cpu).Seconds(),
		UsageMeasures[1]: float64(u.switches-before.switches) / 1000,
	}
}
