package linuxguest

import (
	"bytes"
	"strings"
	"sync"
	"testing"
	"time"
)

// syncBuffer is a bytes.Buffer safe for the Console's answering goroutine.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestConsoleMarks feeds a console output cut at awkward places: a mark
// split over writes counts once, a mark printed again (a reboot) counts
// again, and every prompt is answered.
func TestConsoleMarks(t *testing.T) {
	var typed syncBuffer
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
	for strings.Count(typed.String(), Answer+"\n") < 2 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if got := strings.Count(typed.String(), Answer+"\n"); got != 2 {
		t.Errorf("typed the answer %d times, want 2", got)
	}
	if NewConsole(&typed, nil).First(MarkBanner) != -1 {
		t.Error("First of an unseen mark is not -1")
	}
}
