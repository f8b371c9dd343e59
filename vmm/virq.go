package vmm

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"sync"

	"golang.org/x/sys/unix"

	"ember/kvm"
	"ember/kvm/kvmcap"
)

// NumIRQs is how many interrupt lines the VirqController drives: the pins of
// the in-kernel IOAPIC, which KVM's default routing maps to GSIs 0-23 (GSIs
// below 16 also reach the 8259 PIC pins of the same number).
const NumIRQs = 24

// Errors of the interrupt controller.
var (
	ErrNotInitialized = errors.New("vmm: interrupt controller not initialised (call Init)")
	ErrNoIRQChip      = errors.New("vmm: the VM has no in-kernel irqchip (hv.Config.NoIRQChip)")
	ErrRegistered     = errors.New("vmm: interrupt already registered")
	ErrNotRegistered  = errors.New("vmm: interrupt not registered")
)

// AckFunc is called when the guest acknowledges an interrupt registered with
// Register: vcpu and irq are as registered, cookie is what Register was given.
type AckFunc func(vcpu, irq int, cookie any)

// VirqController is a guest's virtual interrupt controller, libvmm's virq_*
// calls on top of KVM's in-kernel IOAPIC and LAPICs. Each registered
// interrupt is a level-triggered irqfd with a resample eventfd: Inject raises
// the line, KVM keeps it raised until the guest's EOI for it reaches the
// IOAPIC, then lowers it and signals the resample eventfd, which the
// controller turns into one call of the AckFunc. Nothing of this exits to
// user space on the vCPU side.
//
// Routing. On x86 the guest, not the VMM, decides which CPU takes an IOAPIC
// interrupt: it programs the pin's redirection entry (vector, trigger mode,
// destination APIC). The vcpu numbers Register and Inject take are checked
// (they must name a vCPU) and handed back to the AckFunc, but select no
// destination; a guest that wants the interrupt on vCPU n programs APIC id n
// (ember gives vCPU n APIC id n). The guest must program the pin
// level-triggered, as Linux does for PCI INTx: for an edge-triggered pin KVM
// does not report the EOI, and the AckFunc is not called.
//
// Acknowledgement is KVM's resample signal, and it means "the line has been
// lowered: raise it again if the device still wants attention". KVM sends it
// at each EOI; newer kernels (Linux 6.4 and later) also send it when the
// guest unmasks a pin whose line was raised while masked, instead of
// delivering that stale interrupt — so a line Injected before the guest set
// up its IOAPIC yields an acknowledgement without an interrupt, and a device
// model that re-Injects while it has work pending stays correct either way.
//
// A Guest's controller is Guest.Virq(); it lives as long as the Guest, and
// Guest.Close releases its eventfds and goroutines.
type VirqController struct {
	g *Guest

	mu     sync.Mutex
	inited bool
	closed bool
	lines  map[int]*line        // by IRQ, from Register
	pts    map[int]*passthrough // by source eventfd, from RegisterPassthrough
	wg     sync.WaitGroup       // the lines' ack goroutines
}

// line is one Register'ed interrupt.
type line struct {
	vcpu, irq int
	trigger   int      // eventfd: a write raises the line
	resample  *os.File // eventfd KVM signals at each EOI; read through Go's poller
}

// passthrough is one RegisterPassthrough'ed interrupt.
type passthrough struct {
	vcpu, irq      int
	source, unmask int
}

// Virq returns the guest's interrupt controller. Init it before use.
func (g *Guest) Virq() *VirqController { return &g.virq }

// Init initialises the interrupt controller, as libvmm's
// virq_controller_init: it checks that the VM has the in-kernel irqchip and
// that KVM supports irqfds with resampling (KVM_CAP_IRQFD,
// KVM_CAP_IRQFD_RESAMPLE). bootVCPU is the vCPU the guest boots on; it must
// exist. Init must come before Register; calling it again does nothing.
//
//	v := g.Virq()
//	if err := v.Init(0); err != nil { ... }
func (v *VirqController) Init(bootVCPU int) error {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.closed {
		return ErrClosed
	}
	if v.inited {
		return nil
	}
	if err := v.checkVCPU(bootVCPU); err != nil {
		return err
	}
	if v.g.cfg.NoIRQChip {
		return ErrNoIRQChip
	}
	for _, c := range []kvmcap.Cap{kvmcap.IRQFD, kvmcap.IRQFDResample} {
		n, err := v.g.vm.KVM().CheckExtension(c)
		if err != nil {
			return fmt.Errorf("vmm: %w", err)
		}
		if n <= 0 {
			return fmt.Errorf("vmm: KVM lacks %v", c)
		}
	}
	v.lines = map[int]*line{}
	v.pts = map[int]*passthrough{}
	v.inited = true
	return nil
}

func (v *VirqController) checkVCPU(vcpu int) error {
	if n := v.g.vm.NumVCPUs(); vcpu < 0 || vcpu >= n {
		return fmt.Errorf("vmm: no vCPU %d (the guest has %d)", vcpu, n)
	}
	return nil
}

// usable returns ErrClosed or ErrNotInitialized for a controller that
// cannot take a request, else nil. The caller holds v.mu.
func (v *VirqController) usable() error {
	if v.closed {
		return ErrClosed
	}
	if !v.inited {
		return ErrNotInitialized
	}
	return nil
}

// checkNew validates a registration. The caller holds v.mu.
func (v *VirqController) checkNew(vcpu, irq int) error {
	if err := v.usable(); err != nil {
		return err
	}
	if irq < 0 || irq >= NumIRQs {
		return fmt.Errorf("vmm: IRQ %d out of range 0-%d", irq, NumIRQs-1)
	}
	if err := v.checkVCPU(vcpu); err != nil {
		return err
	}
	if _, ok := v.lines[irq]; ok {
		return fmt.Errorf("%w: IRQ %d", ErrRegistered, irq)
	}
	for _, p := range v.pts {
		if p.irq == irq {
			return fmt.Errorf("%w: IRQ %d (passthrough)", ErrRegistered, irq)
		}
	}
	return nil
}

// Register registers interrupt irq (an IOAPIC pin, 0 to NumIRQs-1) for vCPU
// vcpu, as libvmm's virq_register: ack, if not nil, is called with vcpu, irq
// and cookie each time the guest acknowledges the interrupt — exactly once
// per EOI that reaches the IOAPIC for this pin. ack runs on a goroutine of
// the controller, one per IRQ, so calls for one IRQ never overlap; it may
// call Inject (to raise the line again while its device still wants
// attention) but should not block for long, since the next acknowledgement
// of the same IRQ waits for it.
//
// Register creates two eventfds and one goroutine, released by Guest.Close.
//
//	v.Register(0, 5, func(vcpu, irq int, cookie any) {
//		cookie.(*uart).interruptAcked()
//	}, dev)
func (v *VirqController) Register(vcpu, irq int, ack AckFunc, cookie any) error {
	v.mu.Lock()
	defer v.mu.Unlock()
	if err := v.checkNew(vcpu, irq); err != nil {
		return err
	}
	trigger, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		return fmt.Errorf("vmm: eventfd: %w", err)
	}
	rfd, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		unix.Close(trigger)
		return fmt.Errorf("vmm: eventfd: %w", err)
	}
	// A non-blocking descriptor makes os.NewFile use Go's poller: the ack
	// goroutine parks in the runtime rather than holding a thread in read(2).
	resample := os.NewFile(uintptr(rfd), fmt.Sprintf("irq%d-resample", irq))
	f := kvm.IRQFD{Fd: uint32(trigger), GSI: uint32(irq), Flags: kvm.IRQFDResample, ResampleFd: uint32(rfd)}
	if err := v.g.vm.KVM().IRQFD(f); err != nil {
		unix.Close(trigger)
		resample.Close()
		return fmt.Errorf("vmm: IRQ %d: %w", irq, err)
	}
	l := &line{vcpu: vcpu, irq: irq, trigger: trigger, resample: resample}
	v.lines[irq] = l
	v.wg.Add(1)
	go func() {
		defer v.wg.Done()
		l.acks(ack, cookie)
	}()
	return nil
}

// acks calls ack once per EOI KVM reports on the resample eventfd, until the
// eventfd is closed. An eventfd read returns the number of signals since the
// last read (and resets it), so EOIs that come faster than ack runs are not lost.
func (l *line) acks(ack AckFunc, cookie any) {
	var buf [8]byte
	for {
		if _, err := l.resample.Read(buf[:]); err != nil {
			return // closed by VirqController.close
		}
		if ack == nil {
			continue
		}
		for n := binary.NativeEndian.Uint64(buf[:]); n > 0; n-- {
			ack(l.vcpu, l.irq, cookie)
		}
	}
}

// Inject raises interrupt irq, registered with Register for vcpu, as libvmm's
// virq_inject. The line stays raised until the guest EOIs it (level
// semantics): injecting again before that adds no second interrupt. Inject
// does not wait for delivery; it writes the irqfd's eventfd and KVM does the rest.
//
//	if err := v.Inject(0, 5); err != nil { ... }
func (v *VirqController) Inject(vcpu, irq int) error {
	v.mu.Lock()
	defer v.mu.Unlock()
	if err := v.usable(); err != nil {
		return err
	}
	l, ok := v.lines[irq]
	if !ok {
		return fmt.Errorf("%w: IRQ %d", ErrNotRegistered, irq)
	}
	if vcpu != l.vcpu {
		return fmt.Errorf("vmm: IRQ %d is registered for vCPU %d, not %d", irq, l.vcpu, vcpu)
	}
	return signal(l.trigger)
}

// signal adds one to an eventfd's counter.
func signal(fd int) error {
	var one [8]byte
	binary.NativeEndian.PutUint64(one[:], 1)
	if _, err := unix.Write(fd, one[:]); err != nil {
		return fmt.Errorf("vmm: signalling eventfd %d: %w", fd, err)
	}
	return nil
}

// RegisterPassthrough tells the controller that interrupt irq on vcpu comes
// from the host, as libvmm's virq_register_passthrough: source is a host
// eventfd that a host interrupt source signals (VFIO's INTx eventfd, for
// instance), and KVM raises irq in the guest each time it is signalled, in
// the kernel, with no trip through this process. If unmask is an eventfd
// (not negative), the line is level-triggered and KVM signals unmask when the
// guest EOIs it — VFIO's unmask eventfd goes here, so the host re-enables its
// interrupt only once the guest has handled it; with unmask < 0 each signal of
// source is an edge. The descriptors stay the caller's: the controller does
// not close them (Guest.Close detaches them from the VM).
//
//	// src and unmask from VFIO_DEVICE_SET_IRQS (ACTION_TRIGGER and ACTION_UNMASK)
//	err := v.RegisterPassthrough(0, 11, src, unmask)
func (v *VirqController) RegisterPassthrough(vcpu, irq, source, unmask int) error {
	v.mu.Lock()
	defer v.mu.Unlock()
	if err := v.checkNew(vcpu, irq); err != nil {
		return err
	}
	if _, ok := v.pts[source]; ok {
		return fmt.Errorf("%w: eventfd %d", ErrRegistered, source)
	}
	f := kvm.IRQFD{Fd: uint32(source), GSI: uint32(irq)}
	if unmask >= 0 {
		f.Flags, f.ResampleFd = kvm.IRQFDResample, uint32(unmask)
	}
	if err := v.g.vm.KVM().IRQFD(f); err != nil {
		return fmt.Errorf("vmm: passthrough IRQ %d from eventfd %d: %w", irq, source, err)
	}
	v.pts[source] = &passthrough{vcpu: vcpu, irq: irq, source: source, unmask: unmask}
	return nil
}

// HandlePassthrough injects the interrupt registered with RegisterPassthrough
// for the host eventfd source, as libvmm's virq_handle_passthrough: for a
// program that learned of the host interrupt itself rather than through the
// eventfd, it signals source, and KVM raises the guest's IRQ as it does for
// the host's own signals.
//
//	// the host driver told us out of band that the device interrupted
//	err := v.HandlePassthrough(src)
func (v *VirqController) HandlePassthrough(source int) error {
	v.mu.Lock()
	defer v.mu.Unlock()
	if err := v.usable(); err != nil {
		return err
	}
	if _, ok := v.pts[source]; !ok {
		return fmt.Errorf("%w: no passthrough for eventfd %d", ErrNotRegistered, source)
	}
	return signal(source)
}

// close detaches every irqfd from the VM, closes the controller's eventfds
// and waits for its goroutines. Guest.Close calls it before closing the VM.
func (v *VirqController) close() error {
	v.mu.Lock()
	if v.closed {
		v.mu.Unlock()
		return nil
	}
	v.closed = true
	var errs []error
	vm := v.g.vm.KVM()
	for _, l := range v.lines {
		f := kvm.IRQFD{Fd: uint32(l.trigger), GSI: uint32(l.irq), Flags: kvm.IRQFDDeassign}
		if err := vm.IRQFD(f); err != nil {
			errs = append(errs, fmt.Errorf("vmm: detaching IRQ %d: %w", l.irq, err))
		}
		errs = append(errs, unix.Close(l.trigger), l.resample.Close())
	}
	for _, p := range v.pts {
		f := kvm.IRQFD{Fd: uint32(p.source), GSI: uint32(p.irq), Flags: kvm.IRQFDDeassign}
		if err := vm.IRQFD(f); err != nil {
			errs = append(errs, fmt.Errorf("vmm: detaching passthrough IRQ %d: %w", p.irq, err))
		}
	}
	v.lines, v.pts = nil, nil
	v.mu.Unlock()
	// Outside the lock: an AckFunc may be calling Inject, which takes it.
	v.wg.Wait()
	return errors.Join(errs...)
}
