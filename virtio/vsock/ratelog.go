package vsock

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// Log rate of what a guest or host program can trigger: a burst of
// logBurst messages, then one per logInterval; the rest are counted and the
// count goes with the next message logged.
const (
	logBurst    = 10
	logInterval = time.Second
)

// limiter is a token bucket for log messages.
type limiter struct {
	mu         sync.Mutex
	tokens     int
	last       time.Time // when tokens were last refilled
	suppressed int       // messages dropped since the last one logged
}

// allow takes a token if there is one and returns how many messages were
// suppressed before this one.
func (l *limiter) allow(now time.Time) (bool, int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.last.IsZero() {
		l.tokens, l.last = logBurst, now
	}
	if n := int(now.Sub(l.last) / logInterval); n > 0 {
		l.tokens = min(logBurst, l.tokens+n)
		l.last = l.last.Add(time.Duration(n) * logInterval)
	}
	if l.tokens == 0 {
		l.suppressed++
		return false, 0
	}
	l.tokens--
	n := l.suppressed
	l.suppressed = 0
	return true, n
}

// logLimited logs msg at level if l has a token for it: what the guest or
// a host program makes the device log is bounded.
func (d *Device) logLimited(l *limiter, level slog.Level, msg string, args ...any) {
	ok, suppressed := l.allow(time.Now())
	if !ok {
		return
	}
	if suppressed > 0 {
		args = append(args, "suppressed", suppressed)
	}
	d.log.Log(context.Background(), level, msg, args...)
}

// refuse logs, at Warn and within the log rate, something the guest sent
// that the device drops or resets.
func (d *Device) refuse(msg string, args ...any) {
	d.logLimited(&d.warnLog, slog.LevelWarn, "virtio-vsock: "+msg, args...)
}

// debug logs, at Debug and within the log rate, an ordinary event of a
// connection (a refused connect, a host program that went away).
func (d *Device) debug(msg string, args ...any) {
	if !d.log.Enabled(context.Background(), slog.LevelDebug) {
		return
	}
	d.logLimited(&d.debugLog, slog.LevelDebug, "virtio-vsock: "+msg, args...)
}
