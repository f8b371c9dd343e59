package every

import (
	"testing"
	"time"
)

// TestTick: f runs at each tick until it says stop, and not at all once
// done is closed.
func TestTick(t *testing.T) {
	n := 0
	Tick(time.Millisecond, make(chan struct{}), func() bool { n++; return n < 3 })
	if n != 3 {
		t.Errorf("f ran %d times, want 3 (stopped by its own false)", n)
	}
	done := make(chan struct{})
	close(done)
	Tick(time.Hour, done, func() bool { t.Error("f ran after done"); return true })
}
