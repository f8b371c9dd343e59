package intrmon

import (
	"sync"
	"time"

	"ember/internal/wake"
)

// queue runs postponed injections in the order they were pushed, each no
// earlier than its due time, on one goroutine. One goroutine keeps their
// order, which a timer per injection does not promise. The goroutine starts
// with the first push and ends with close.
type queue struct {
	mu      sync.Mutex
	pending []delayed
	wake    wake.Signal   // "pending changed"
	done    chan struct{} // closed by close
	started bool
	closed  bool
	wg      sync.WaitGroup
}

// delayed is one postponed injection.
type delayed struct {
	due time.Time
	f   func() error
}

// push queues f to run at due, and reports false if it cannot: the queue
// holds MaxPending already, or is closed.
func (q *queue) push(due time.Time, f func() error) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed || len(q.pending) >= MaxPending {
		return false
	}
	if !q.started {
		q.started = true
		q.wake, q.done = wake.NewSignal(), make(chan struct{})
		q.wg.Add(1)
		go q.run()
	}
	q.pending = append(q.pending, delayed{due, f})
	q.wake.Send()
	return true
}

// run injects the queue's head when it is due, until close. An injection's
// error has no caller left to go to.
func (q *queue) run() {
	defer q.wg.Done()
	for {
		d, ok := q.head()
		if !ok {
			select {
			case <-q.wake:
				continue
			case <-q.done:
				return
			}
		}
		if w := time.Until(d.due); w > 0 {
			t := time.NewTimer(w)
			select {
			case <-t.C:
			case <-q.done:
				t.Stop()
				return
			}
		}
		d.f()
		q.pop() // after f: busy stays true until the head has run
	}
}

// head returns the injection to run next, if any.
func (q *queue) head() (delayed, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.pending) == 0 {
		return delayed{}, false
	}
	return q.pending[0], true
}

// pop drops the head run just served; close may have emptied the queue
// meanwhile, and then there is nothing to drop.
func (q *queue) pop() {
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.pending) > 0 {
		q.pending = q.pending[1:]
	}
}

// close drops what is pending and ends the goroutine.
func (q *queue) close() {
	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		return
	}
	q.closed, q.pending = true, nil
	started := q.started
	q.mu.Unlock()
	if started {
		close(q.done)
		q.wg.Wait()
	}
}

// busy reports whether injections are still waiting.
func (q *queue) busy() bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.pending) > 0
}
