package linuxguest

import (
	"sync/atomic"
	"testing"
	"time"
)

// answers counts the lines the console types.
type answers struct{ n atomic.Int32 }

func (a *answers) Write(p []byte) (int, error) {
	if string(p) == Answer+"\n" {
		a.n.Add(1)
	}
	return len(p), nil
}

// TestConsoleMarks feeds a console output cut at awkward places: a mark
// split over writes counts once, a mark printed again (a reboot) counts
// again, and every prompt is answered.
func TestConsoleMarks(t *testing.T) {
	var typed answers
	c := NewConsole(&typed, nil)
	boot := "[0.0] " + MarkBanner + " 6.1\r\n" + MarkStarted + "\r\n" + MarkPrompt + "\r\n"
	out := boot + boot
	for i := 0; i < len(out); i += 7 {
		c.Write([]byte(out[i:min(i+7, len(out))]))
	}
	for _, m := range []string{MarkBanner, MarkStarted, MarkPrompt} {
		if n := c.Count(m); n != 2 {
			t.Errorf("%q counted %d times, want 2", m, n)
		}
	}
	if c.First(MarkBanner) < 0 || c.First(MarkBanner) > c.First(MarkPrompt) {
		t.Errorf("banner at %v, prompt at %v", c.First(MarkBanner), c.First(MarkPrompt))
	}
	if c.String() != out {
		t.Errorf("kept %q, want %q", c.String(), out)
	}
	deadline := time.Now().Add(5 * time.Second)
	for typed.n.Load() < 2 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if got := typed.n.Load(); got != 2 {
		t.Errorf("typed the answer %d times, want 2", got)
	}
	if NewConsole(&typed, nil).First(MarkBanner) != -1 {
		t.Error("First of an unseen mark is not -1")
	}
}
