package daemon

import (
	"sync"
	"time"

	"ember/api"
)

// eventQueue is how many events a subscriber may fall behind before it is
// dropped: a client that does not read must not hold the daemon's memory.
const eventQueue = 256

// events fans the daemon's events out to the subscribers of
// GET /v1/events.
type events struct {
	mu   sync.Mutex
	seq  uint64
	subs map[chan api.Event]struct{}
}

// publish stamps e and hands it to every subscriber; one whose queue is
// full is dropped (its channel closed), so a stalled reader costs nothing.
func (h *events) publish(e api.Event) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.seq++
	e.Seq, e.Time = h.seq, time.Now().UTC()
	for c := range h.subs {
		select {
		case c <- e:
		default:
			delete(h.subs, c)
			close(c)
		}
	}
}

// subscribe returns a channel of the events from now on and how to stop;
// the channel is closed if the subscriber falls behind or on cancel.
func (h *events) subscribe() (<-chan api.Event, func()) {
	c := make(chan api.Event, eventQueue)
	h.mu.Lock()
	if h.subs == nil {
		h.subs = map[chan api.Event]struct{}{}
	}
	h.subs[c] = struct{}{}
	h.mu.Unlock()
	return c, func() {
		h.mu.Lock()
		defer h.mu.Unlock()
		if _, ok := h.subs[c]; ok {
			delete(h.subs, c)
			close(c)
		}
	}
}

// closeAll ends every subscription, at shutdown.
func (h *events) closeAll() {
	h.mu.Lock()
	defer h.mu.Unlock()
	for c := range h.subs {
		delete(h.subs, c)
		close(c)
	}
}
