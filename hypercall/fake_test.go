package hypercall

import (
	"context"
	"log/slog"
	"sync"
	"testing"

	"ember/hv"
	"ember/ioreq"
	"ember/kvm"
	"ember/memory"
)

// fakeMachine is a Machine without KVM: real guest memory and a real I/O
// request path, vCPU registers kept in memory, interrupts counted, and a
// "guest" that runs until it is stopped. It lets every hypercall handler run
// on hosts without /dev/kvm.
type fakeMachine struct {
	cfg  hv.Config
	mem  *memory.Guest
	disp *ioreq.Dispatcher

	mu       sync.Mutex
	regs     []kvm.Regs
	sregs    []kvm.SRegs
	paused   bool
	resets   int
	irqs     int
	gsi5     []bool // the levels GSI 5 was set to, in order
	slots    map[uint32]uint64
	next     uint32
	wp       map[uint64]bool
	onClose  []func()
	closed   bool
	trapPort uint16
}

var _ Machine = (*fakeMachine)(nil)

// fakeMaker makes fake machines. Whoever makes a VM closes it (the service
// closes those HC_CREATE_VM made when it is closed).
func fakeMaker() machineMaker {
	return func(cfg hv.Config) (Machine, error) {
		if cfg.VCPUs == 0 {
			cfg.VCPUs = 1
		}
		var ranges []memory.Range
		if cfg.MemorySize > 0 {
			ranges = memory.PCLayout(cfg.MemorySize)
		}
		mem, err := memory.New(ranges)
		if err != nil {
			return nil, err
		}
		buf, err := ioreq.NewBuffer()
		if err != nil {
			mem.Close()
			return nil, err
		}
		m := &fakeMachine{cfg: cfg, mem: mem, disp: ioreq.NewDispatcher(buf, ioreq.NewRouter(), ioreq.Config{Logger: slog.Default()}),
			regs: make([]kvm.Regs, cfg.VCPUs), sregs: make([]kvm.SRegs, cfg.VCPUs), slots: map[uint32]uint64{}, wp: map[uint64]bool{}}
		return m, nil
	}
}

// fakeService returns a hypercall service whose VMs are fake machines.
func fakeService(t testing.TB) *Service {
	s := newService(nil, fakeMaker())
	t.Cleanup(func() { s.Close() })
	return s
}

func (m *fakeMachine) Config() hv.Config             { return m.cfg }
func (m *fakeMachine) Logger() *slog.Logger          { return slog.Default() }
func (m *fakeMachine) Memory() *memory.Guest         { return m.mem }
func (m *fakeMachine) IORequests() *ioreq.Dispatcher { return m.disp }
func (m *fakeMachine) NumVCPUs() int                 { return m.cfg.VCPUs }

func (m *fakeMachine) MapMemory(gpa uint64, host []byte, _ bool) (uint32, error) {
	if err := m.mem.Map(gpa, host); err != nil {
		return 0, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.next++
	m.slots[m.next] = gpa
	return m.next, nil
}

func (m *fakeMachine) UnmapMemory(slot uint32) error {
	m.mu.Lock()
	gpa := m.slots[slot]
	delete(m.slots, slot)
	m.mu.Unlock()
	return m.mem.Unmap(gpa)
}

func (m *fakeMachine) SetWriteProtected(gpa uint64, on bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.wp[gpa] = on
}

func (m *fakeMachine) VCPURegs(i int) (kvm.Regs, kvm.SRegs, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.regs[i], m.sregs[i], nil
}

func (m *fakeMachine) SetVCPURegs(i int, regs kvm.Regs, sregs kvm.SRegs) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.regs[i], m.sregs[i] = regs, sregs
	return nil
}

// IRQLine counts the injection and records the level GSI 5 was set to.
func (m *fakeMachine) IRQLine(gsi uint32, high bool) error {
	if err := m.interrupt(); err != nil {
		return err
	}
	if gsi == 5 {
		m.mu.Lock()
		m.gsi5 = append(m.gsi5, high)
		m.mu.Unlock()
	}
	return nil
}

func (m *fakeMachine) SignalMSI(kvm.MSI) error { return m.interrupt() }

func (m *fakeMachine) interrupt() error {
	if m.cfg.NoIRQChip {
		return hv.ErrNoIRQChip
	}
	m.mu.Lock()
	m.irqs++
	m.mu.Unlock()
	return nil
}

// Start runs a guest that never exits on its own.
func (m *fakeMachine) Start() *hv.Background {
	return hv.Go(func(ctx context.Context) (hv.Result, error) {
		<-ctx.Done()
		return hv.Result{Reason: hv.StopHost}, nil
	})
}

func (m *fakeMachine) Pause()  { m.setPaused(true) }
func (m *fakeMachine) Resume() { m.setPaused(false) }

func (m *fakeMachine) setPaused(on bool) {
	m.mu.Lock()
	m.paused = on
	m.mu.Unlock()
}

func (m *fakeMachine) Paused() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.paused
}

func (m *fakeMachine) ResetState() error {
	m.mu.Lock()
	m.resets++
	m.mu.Unlock()
	return nil
}

func (m *fakeMachine) SetPortTrap(port uint16, _ hv.PortTrap, _ bool) { m.trapPort = port }

func (m *fakeMachine) OnClose(f func()) {
	m.mu.Lock()
	m.onClose = append(m.onClose, f)
	m.mu.Unlock()
}

func (m *fakeMachine) Close() error {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return nil
	}
	m.closed = true
	fs := m.onClose
	m.mu.Unlock()
	for i := len(fs) - 1; i >= 0; i-- {
		fs[i]()
	}
	m.disp.Buffer().Close()
	return m.mem.Close()
}

// eachService runs f against a service on fake machines, which every host
// can, and against one on KVM (skipped without /dev/kvm, kvmtest.Require).
func eachService(t *testing.T, f func(t *testing.T, h *Service)) {
	t.Run("fake", func(t *testing.T) { f(t, fakeService(t)) })
	t.Run("kvm", func(t *testing.T) { f(t, openHV(t)) })
}

// newPlainVM enters a pre-launched VM with 1 MiB of RAM in h's table and
// returns its ID.
func newPlainVM(t *testing.T, h *Service) uint16 {
	t.Helper()
	e, err := h.newVM(hv.Config{MemorySize: 1 << 20}, loadPre, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.vm.Close() })
	return e.id
}
