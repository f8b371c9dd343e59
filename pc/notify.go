package pc

import (
	"errors"
	"fmt"
	"os"
	"sync"

	"golang.org/x/sys/unix"

	"ember/acrn"
	"ember/hv"
)

// notifyTarget is a virtio transport whose queue notifications arrive as
// ioeventfds: where queue q is notified and (for virtio-mmio, whose queues
// share one register) with what value, and the call that passes one on.
type notifyTarget interface {
	NumQueues() int
	NotifyOffset(q int) uint64
	Notify(q int)
}

// sharedNotify is a notifyTarget whose queues all notify at one offset,
// each with its index as the 32-bit value written (virtio-mmio's
// QueueNotify), so each ioeventfd matches its queue's value.
type sharedNotify interface {
	notifyTarget
	SharedNotify()
}

// notifiers are a virtio function's queue notifications as ioeventfds: a
// guest write to a queue's notification address signals an eventfd inside
// KVM, without an exit to a vCPU thread, and a goroutine per queue passes
// it to the device. A device that takes notifications on eventfds of its
// own (an out-of-process back-end's kick eventfds) has its queues'
// ioeventfds pointed at those instead while it is active (route), so KVM
// signals the back-end directly and the goroutine sleeps. They follow BAR0
// when the driver moves it.
type notifiers struct {
	vm    *hv.VM
	f     notifyTarget
	files []*os.File
	own   []int // files' descriptors

	mu     sync.Mutex
	target []int  // the eventfd each queue's ioeventfd signals: own, a device's, or -1 for none
	addr   uint32 // BAR0 the ioeventfds are assigned at
	closed bool
}

// startNotifiers assigns an ioeventfd per queue at BAR0 bar (or a
// virtio-mmio device's base) and starts
// their goroutines, which end when the VM closes.
func startNotifiers(vm *hv.VM, f notifyTarget, bar uint32) (*notifiers, error) {
	n := &notifiers{vm: vm, f: f, addr: bar}
	for q := range f.NumQueues() {
		fd, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
		if err != nil {
			n.close()
			return nil, fmt.Errorf("pc: virtio notify eventfd: %w", err)
		}
		// The eventfd stays non-blocking, so serve's reads wait in Go's
		// poller rather than each in a thread of its own parked in
		// read(2) (File.Fd would make it blocking): a daemon with a
		// hundred VMs of four queues does not keep four hundred threads.
		// (Guest throughput in the lab was the same either way.)
		file := os.NewFile(uintptr(fd), fmt.Sprintf("virtio-notify-%d", q))
		n.files, n.own, n.target = append(n.files, file), append(n.own, fd), append(n.target, -1)
		go n.serve(q, file)
	}
	for q, fd := range n.own {
		if err := n.assign(q, bar, fd, false); err != nil {
			n.close()
			return nil, err
		}
		n.target[q] = fd
	}
	vm.OnClose(n.close)
	return n, nil
}

// serve passes queue q's notifications to the device until the eventfd is
// closed.
func (n *notifiers) serve(q int, file *os.File) {
	var buf [8]byte
	for {
		if _, err := file.Read(buf[:]); err != nil {
			return
		}
		n.f.Notify(q)
	}
}

// assign (or with deassign, removes) queue q's ioeventfd on the eventfd fd
// at BAR0 bar (a virtio-mmio device's base).
func (n *notifiers) assign(q int, bar uint32, fd int, deassign bool) error {
	e := acrn.IOEventFD{Addr: uint64(bar) + n.f.NotifyOffset(q)}
	if deassign {
		e.Flags = acrn.IOEventFDFlagDeassign
	}
	if _, ok := n.f.(sharedNotify); ok {
		e.Flags |= acrn.IOEventFDFlagDataMatch
		e.Len, e.Data = 4, uint64(q)
	}
	if err := n.vm.EventFDs().IOEventFD(e, fd); err != nil {
		return fmt.Errorf("pc: virtio queue %d notify: %w", q, err)
	}
	return nil
}

// route points queue q's ioeventfd at the eventfd fd, or with fd -1 back
// at the queue's own. Between the two ioctls a notification is not lost:
// with no ioeventfd there, the guest's write exits to a vCPU thread and
// reaches the device through BAR0, whose Notify writes the same eventfd.
// If the new one cannot be assigned, the old one is put back.
func (n *notifiers) route(q, fd int) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if q < 0 || q >= len(n.own) {
		return fmt.Errorf("pc: virtio queue %d: no such queue", q)
	}
	if fd < 0 {
		fd = n.own[q]
	}
	old := n.target[q]
	if n.closed || fd == old {
		return nil
	}
	if old >= 0 {
		if err := n.assign(q, n.addr, old, true); err != nil {
			return err
		}
		n.target[q] = -1
	}
	if err := n.assign(q, n.addr, fd, false); err != nil {
		if old >= 0 && n.assign(q, n.addr, old, false) == nil {
			n.target[q] = old
		}
		return err
	}
	n.target[q] = fd
	return nil
}

// move follows BAR0 to bar. A queue whose ioeventfd cannot be moved is
// left without one: the guest's writes exit and reach the device through
// BAR0.
func (n *notifiers) move(bar uint32) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return nil // the descriptors are closed; their numbers may be another file's now
	}
	var errs []error
	for q, fd := range n.target {
		if fd < 0 {
			continue
		}
		if err := n.assign(q, n.addr, fd, true); err != nil {
			errs = append(errs, err)
			continue
		}
		if err := n.assign(q, bar, fd, false); err != nil {
			n.target[q] = -1
			errs = append(errs, err)
		}
	}
	n.addr = bar
	return errors.Join(errs...)
}

// close ends the goroutines; KVM drops the ioeventfds with the VM. The
// function's Close, which runs first, has pointed them back at their own.
func (n *notifiers) close() {
	n.mu.Lock()
	n.closed = true
	n.mu.Unlock()
	for _, f := range n.files {
		f.Close()
	}
}
