package linuxguest

import (
	"bytes"
	"io"
	"sync"
	"time"
)

// Console is the guest's console as a driver of a boot sees it: it keeps the
// output, records when each mark (MarkBanner, MarkStarted, MarkPrompt)
// appears, every time it appears (a restarted guest prints them again), and
// types Answer whenever the init prompts.
type Console struct {
	mu     sync.Mutex
	buf    bytes.Buffer
	start  time.Time
	seen   map[string][]time.Duration
	answer io.Writer
	onSeen func(mark string, n int)
}

// NewConsole starts the clock. answer is where typed lines go (the VMM's
// stdin); onSeen, if not nil, is called (on its own goroutine) with each
// mark and how many times it has appeared.
func NewConsole(answer io.Writer, onSeen func(mark string, n int)) *Console {
	return &Console{start: time.Now(), seen: map[string][]time.Duration{}, answer: answer, onSeen: onSeen}
}

var marks = []string{MarkBanner, MarkStarted, MarkPrompt}

// Write records p and the marks that end in it.
func (c *Console) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	before := c.buf.Len()
	c.buf.Write(p)
	for _, m := range marks {
		// Only occurrences that end in the new bytes are new.
		from := max(0, before-len(m)+1)
		for range bytes.Count(c.buf.Bytes()[from:], []byte(m)) {
			c.seen[m] = append(c.seen[m], time.Since(c.start))
			if m == MarkPrompt {
				go io.WriteString(c.answer, Answer+"\n")
			}
			if c.onSeen != nil {
				go c.onSeen(m, len(c.seen[m]))
			}
		}
	}
	return len(p), nil
}

// String is everything the guest printed.
func (c *Console) String() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.buf.String()
}

// First is when mark first appeared, or -1 if it has not.
func (c *Console) First(mark string) time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.seen[mark]) == 0 {
		return -1
	}
	return c.seen[mark][0]
}

// Count is how many times mark has appeared.
func (c *Console) Count(mark string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.seen[mark])
}

// Elapsed is the time since NewConsole.
func (c *Console) Elapsed() time.Duration { return time.Since(c.start) }
