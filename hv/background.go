package hv

import (
	"context"

	"ember/internal/wake"
)

// Background is a run of a VM on a goroutine of its own (VM.Start): for
// callers that drive a VM while it runs, as the libvmm API and the hypercall
// service's HC_START_VM do.
type Background struct {
	cancel context.CancelFunc
	done   chan struct{} // closed when Run has returned
	res    Result
	err    error
}

// Start runs the VM in the background until the guest exits, shuts down or
// fails, or Stop is called, and returns at once. Run's own errors (a VM
// already running, or closed) come back from Wait.
func (vm *VM) Start() *Background { return Go(vm.Run) }

// Go runs run on a goroutine of its own with a context that Stop cancels:
// VM.Start with Run, or a stand-in for a VM in tests.
func Go(run func(context.Context) (Result, error)) *Background {
	ctx, cancel := context.WithCancel(context.Background())
	b := &Background{cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(b.done)
		defer cancel()
		b.res, b.err = run(ctx)
	}()
	return b
}

// Stop ends the run (Run returns StopHost unless it had ended already) and
// waits for it.
func (b *Background) Stop() {
	b.cancel()
	<-b.done
}

// Done is closed when the run has ended.
func (b *Background) Done() <-chan struct{} { return b.done }

// Finished reports whether the run has ended.
func (b *Background) Finished() bool { return wake.Closed(b.done) }

// Wait blocks until the run ends and returns what Run returned.
func (b *Background) Wait() (Result, error) {
	<-b.done
	return b.res, b.err
}
