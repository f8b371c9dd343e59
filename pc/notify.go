package pc

import (
	"fmt"
	"os"

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
// it to the device. They follow BAR0 when the driver moves it.
type notifiers struct {
	vm    *hv.VM
	f     notifyTarget
	files []*os.File
	addr  uint32 // BAR0 the ioeventfds are assigned at
}

// startNotifiers assigns an ioeventfd per queue at BAR0 bar (or a
// virtio-mmio device's base) and starts
// their goroutines, which end when the VM closes.
func startNotifiers(vm *hv.VM, f notifyTarget, bar uint32) (*notifiers, error) {
	n := &notifiers{vm: vm, f: f}
	for q := range f.NumQueues() {
		fd, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
		if err != nil {
			n.close()
			return nil, fmt.Errorf("pc: virtio notify eventfd: %w", err)
		}
		file := os.NewFile(uintptr(fd), fmt.Sprintf("virtio-notify-%d", q))
		n.files = append(n.files, file)
		go n.serve(q, file)
	}
	if err := n.assign(bar, false); err != nil {
		n.close()
		return nil, err
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

// assign (or with deassign, removes) the ioeventfds at BAR0 bar (a
// virtio-mmio device's base).
func (n *notifiers) assign(bar uint32, deassign bool) error {
	var flags uint32
	if deassign {
		flags = acrn.IOEventFDFlagDeassign
	}
	for q, file := range n.files {
		e := acrn.IOEventFD{Addr: uint64(bar) + n.f.NotifyOffset(q), Flags: flags}
		if _, ok := n.f.(sharedNotify); ok {
			e.Flags |= acrn.IOEventFDFlagDataMatch
			e.Len, e.Data = 4, uint64(q)
		}
		if err := n.vm.EventFDs().IOEventFD(e, int(file.Fd())); err != nil {
			return fmt.Errorf("pc: virtio queue %d notify: %w", q, err)
		}
	}
	n.addr = bar
	return nil
}

// move follows BAR0 to bar.
func (n *notifiers) move(bar uint32) error {
	if err := n.assign(n.addr, true); err != nil {
		return err
	}
	return n.assign(bar, false)
}

// close ends the goroutines; KVM drops the ioeventfds with the VM.
func (n *notifiers) close() {
	for _, f := range n.files {
		f.Close()
	}
}
