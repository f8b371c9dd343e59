package daemon

import (
	"sync"
	"time"
)

// A guest that makes its devices complain in a loop must not flood the
// event stream: each VM's device_error events are limited to
// deviceErrorRate a second, in bursts of deviceErrorBurst. The VM's log
// keeps every record.
const (
	deviceErrorRate  = 10
	deviceErrorBurst = 20
)

// rateLimit is a token bucket.
type rateLimit struct {
	mu     sync.Mutex
	rate   float64 // tokens a second
	burst  float64
	tokens float64
	last   time.Time
}

func newRateLimit(rate, burst int) *rateLimit {
	return &rateLimit{rate: float64(rate), burst: float64(burst), tokens: float64(burst)}
}

// allow takes a token if there is one at now.
func (l *rateLimit) allow(now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.last.IsZero() {
		l.tokens = min(l.burst, l.tokens+now.Sub(l.last).Seconds()*l.rate)
	}
	l.last = now
	if l.tokens < 1 {
		return false
	}
	l.tokens--
	return true
}
