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
// ioeventfds: how many queues it has and the call that passes a
// notification on.
type notifyTarget interface {
	NumQueues() int
	Notify(q int)
}

// notifyRegion is one place where a transport's queues are notified: a BAR
// in memory or I/O space (or a virtio-mmio register block) and each queue's
// register in it.
type notifyRegion struct {
	pio    bool               // in I/O space: base is a port
	base   uint64             // where the region is now
	mapped bool               // base is where the guest reaches it; false: nowhere
	offset func(q int) uint64 // queue q's register, from base
	// shared: every queue notifies at one offset, each with its index as
	// the 32-bit value written (virtio-mmio's QueueNotify), so each
	// ioeventfd matches its queue's value.
	shared   bool
	assigned []bool // by queue: its ioeventfd is in place here
}

// notifiers are a virtio function's queue notifications as ioeventfds: a
// guest write to a queue's notification register signals an eventfd
// inside KVM, without an exit to a vCPU thread, and a goroutine per queue
// passes it to the device. A queue's register may be in several regions
// (virtio-pci's BAR0 and its I/O BAR1); each gets an ioeventfd on the same
// eventfd. A device that takes notifications on eventfds of its own (an
// out-of-process back-end's kick eventfds) has its queues' ioeventfds
// pointed at those instead while it is active (route), so KVM signals the
// back-end directly and the goroutine sleeps. They follow a region when the
// driver moves its BAR (move).
type notifiers struct {
	vm    *hv.VM
	f     notifyTarget
	files []*os.File
	own   []int // files' descriptors

	mu      sync.Mutex
	regions []notifyRegion
	target  []int // the eventfd each queue's ioeventfds signal: own or a device's
	closed  bool
}

// startNotifiers assigns an ioeventfd per queue in each region and starts
// their goroutines, which end when the VM closes.
func startNotifiers(vm *hv.VM, f notifyTarget, regions ...notifyRegion) (*notifiers, error) {
	n := &notifiers{vm: vm, f: f, regions: regions}
	for i := range n.regions {
		n.regions[i].assigned = make([]bool, f.NumQueues())
	}
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
		n.files, n.own, n.target = append(n.files, file), append(n.own, fd), append(n.target, fd)
		go n.serve(q, file)
	}
	for q := range n.own {
		if err := n.place(q); err != nil {
			n.close()
			return nil, err
		}
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

// assign (or with deassign, removes) queue q's ioeventfd in region r on
// the eventfd fd.
func (n *notifiers) assign(r *notifyRegion, q, fd int, deassign bool) error {
	e := acrn.IOEventFD{Addr: r.base + r.offset(q)}
	if r.pio {
		e.Flags |= acrn.IOEventFDFlagPIO
	}
	if deassign {
		e.Flags |= acrn.IOEventFDFlagDeassign
	}
	if r.shared {
		e.Flags |= acrn.IOEventFDFlagDataMatch
		e.Len, e.Data = 4, uint64(q)
	}
	if err := n.vm.EventFDs().IOEventFD(e, fd); err != nil {
		return fmt.Errorf("pc: virtio queue %d notify: %w", q, err)
	}
	r.assigned[q] = !deassign
	return nil
}

// place puts queue q's ioeventfds, on its target, in every mapped region
// that lacks one. The caller holds n.mu, or has not shared n yet.
func (n *notifiers) place(q int) error {
	var errs []error
	for i := range n.regions {
		if r := &n.regions[i]; r.mapped && !r.assigned[q] {
			errs = append(errs, n.assign(r, q, n.target[q], false))
		}
	}
	return errors.Join(errs...)
}

// unplace removes queue q's ioeventfds from every region. The caller holds
// n.mu.
func (n *notifiers) unplace(q int) error {
	var errs []error
	for i := range n.regions {
		if r := &n.regions[i]; r.assigned[q] {
			errs = append(errs, n.assign(r, q, n.target[q], true))
		}
	}
	return errors.Join(errs...)
}

// route points queue q's ioeventfds at the eventfd fd, or with fd -1 back
// at the queue's own. Between the ioctls a notification is not lost: with
// no ioeventfd there, the guest's write exits to a vCPU thread and reaches
// the device through the BAR, whose Notify writes the same eventfd. If the
// new ones cannot be assigned, the old ones are put back.
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
	if err := n.unplace(q); err != nil {
		return err
	}
	n.target[q] = fd
	if err := n.place(q); err != nil {
		n.unplace(q)
		n.target[q] = old
		n.place(q)
		return err
	}
	return nil
}

// move follows region i to base, or takes its ioeventfds away if the
// driver put it where the guest cannot reach it (mapped false). A queue
// whose ioeventfd cannot be moved is left without one there: the guest's
// writes exit and reach the device through the BAR.
func (n *notifiers) move(i int, base uint64, mapped bool) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return nil // the descriptors are closed; their numbers may be another file's now
	}
	r := &n.regions[i]
	var errs []error
	for q, fd := range n.target {
		if r.assigned[q] {
			errs = append(errs, n.assign(r, q, fd, true))
		}
	}
	r.base, r.mapped = base, mapped
	for q := range n.target {
		errs = append(errs, n.place(q))
	}
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
