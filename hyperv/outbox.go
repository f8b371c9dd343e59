package hyperv

import "sync"

// Outbox is the one message a host-side sender (a message connection) may
// have in flight to a SINT, as the TLFS has it: a message that finds its
// slot busy waits here, the slot's pending flag set, until the guest
// acknowledges the slot (EOM); a new message meanwhile is refused with
// StatusInsufficientBuffers, and the sender tries again later.
//
// Its methods are safe for concurrent use; deliver is called with the
// outbox's lock held, so an acknowledgement that comes while a message is
// being staged waits for it and then retries it.
type Outbox struct {
	mu      sync.Mutex
	waiting bool
	msg     Message
}

// DeliverFunc puts a message into its slot and, when Delivered, raises the
// SINT; an error means the message cannot be delivered at all.
type DeliverFunc func(*Message) (Delivery, error)

// Post offers m to deliver and answers the hypercall that posted it: success
// when the message is delivered or waits for its slot,
// StatusInsufficientBuffers when another message already waits, and, as
// QEMU's test device answers a message it cannot post,
// StatusInvalidHypercallInput when deliver fails.
func (o *Outbox) Post(m Message, deliver DeliverFunc) Status {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.waiting {
		return StatusInsufficientBuffers
	}
	d, err := deliver(&m)
	switch {
	case err != nil:
		return StatusInvalidHypercallInput
	case d == Busy:
		o.waiting, o.msg = true, m
	}
	return StatusSuccess
}

// Retry offers the waiting message again, after the guest acknowledged the
// SINT; with none waiting (an acknowledgement of another message) it does
// nothing. A message that cannot be delivered any more is dropped.
func (o *Outbox) Retry(deliver DeliverFunc) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if !o.waiting {
		return
	}
	if d, err := deliver(&o.msg); err != nil || d == Delivered {
		o.waiting, o.msg = false, Message{}
	}
}

// Waiting reports whether a message waits for its slot.
func (o *Outbox) Waiting() bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.waiting
}
