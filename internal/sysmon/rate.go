package sysmon

import (
	"sync"
	"time"
)

// The TSC and the monotonic clock, read together when the process started:
// TicksPerMs measures the one against the other from here.
var (
	startTicks = Cputicks()
	startTime  = time.Now()
)

// calibrationSpan is the least time TicksPerMs measures over. The clock's
// and the counter's reads are each off by at most a microsecond or so,
// a part in ten thousand of it.
const calibrationSpan = 10 * time.Millisecond

// TicksPerMs is the TSC's rate, in ticks a millisecond, measured once a
// process against the monotonic clock over the time since it started (and
// at least calibrationSpan, which the first call waits out if the process
// is younger). It is 0 if the counter did not advance with the clock.
// A loop with no vCPU to ask KVM for the rate (a device's) sizes its
// Pacer with it.
var TicksPerMs = sync.OnceValue(measure)

// measure is TicksPerMs's one measurement.
func measure() int64 {
	if wait := calibrationSpan - time.Since(startTime); wait > 0 {
		time.Sleep(wait)
	}
	ticks, elapsed := Cputicks()-startTicks, time.Since(startTime)
	if ticks <= 0 {
		return 0
	}
	// In floating point: a daemon's counter, a month in, times a million
	// would overflow.
	return int64(float64(ticks) / (float64(elapsed) / float64(time.Millisecond)))
}
