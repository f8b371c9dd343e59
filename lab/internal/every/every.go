// Package every runs a check at a fixed interval until told to stop: the
// loop the lab's watchdogs and samplers share (the host's halt watch,
// the init's heartbeat, the KVM counters'
// sampler of bootcost).
package every

import "time"

// Tick calls f every d until done is closed or f returns false.
func Tick(d time.Duration, done <-chan struct{}, f func() bool) {
	t := time.NewTicker(d)
	defer t.Stop()
	for {
		select {
		case <-done:
			return
		case <-t.C:
			if !f() {
				return
			}
		}
	}
}
