package bench

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"ember/guest"
	"ember/hv"
	"ember/hypercall"
	"ember/kvm"
)

// Client kinds of ember's exit path that the exit round trip is measured for.
const (
	ClientInProcess = "in-process" // the default: the exit reaches the vCPU goroutine and the Go bus
	ClientIOEventFD = "ioeventfd"  // a KVM ioeventfd on the address: the write never leaves the kernel
	ClientExternal  = "external"   // an out-of-process device model (examples/devicemodel) serves the address
)

// Guest addresses the exit guests write to; no device claims them in ember
// or in QEMU's microvm (checked with QEMU's `info mtree`).
const (
	BenchPort = 0x4f0
	BenchMMIO = 0xd0000000
)

// ExitGuest names an exit-loop guest and the address it writes to.
type ExitGuest struct {
	Name  string // "PIO" or "MMIO"
	Image []byte
	Addr  uint64
	Len   uint32 // bytes per write
	PIO   bool
}

// BootConfig describes one VM that runs a bench image in ember.
type BootConfig struct {
	MemorySize uint64
	Console    io.Writer
	// IOEventFD, if set, registers a KVM ioeventfd for this guest's writes,
	// with a goroutine draining it; Drained reports how many it saw.
	IOEventFD *ExitGuest
	// External, if set, serves this guest's address from DeviceModel (the
	// examples/devicemodel binary) in another process, over the VM's
	// device-model socket in a temporary directory.
	External    *ExitGuest
	DeviceModel string
}

// BootStats is what a Boot run reports.
type BootStats struct {
	Result  hv.Result
	Run     time.Duration // vm.Run alone: from starting the vCPUs to the exit
	Exits   uint64        // exits the vCPU loop handled (the exit-port write included)
	Drained uint64        // eventfd signals the ioeventfd reader drained
	// Unclaimed is how many guest writes reached no client.
	Unclaimed uint64
}

// Boot creates a VM on h, loads a bench image at ImageBase, starts it at the
// reset vector and runs it to the end.
func Boot(ctx context.Context, h *hv.Hypervisor, image []byte, cfg BootConfig) (BootStats, error) {
	vcfg := hv.Config{MemorySize: cfg.MemorySize, Console: cfg.Console}
	var dmDir string
	if cfg.External != nil {
		var err error
		if dmDir, err = os.MkdirTemp("", "ember-bench-dm-"); err != nil {
			return BootStats{}, err
		}
		defer os.RemoveAll(dmDir)
		vcfg.DeviceModelSocket = filepath.Join(dmDir, "vm.ioreq")
		// Connects and disconnects are routine here; failures are not.
		vcfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))
	}
	vm, err := h.NewVM(vcfg)
	if err != nil {
		return BootStats{}, err
	}
	defer vm.Close()
	if cfg.External != nil {
		m, err := startExternalModel(ctx, cfg.DeviceModel, vcfg.DeviceModelSocket, dmDir, *cfg.External)
		if err != nil {
			return BootStats{}, err
		}
		defer m.stop()
	}
	if err := vm.LoadImage(image, ImageBase); err != nil {
		return BootStats{}, err
	}
	if err := vm.SetEntry(0, Entry); err != nil {
		return BootStats{}, err
	}
	var drain *drainer
	if g := cfg.IOEventFD; g != nil {
		if drain, err = newDrainer(vm.KVM(), g); err != nil {
			return BootStats{}, err
		}
	}
	start := time.Now()
	res, err := vm.Run(ctx)
	d := time.Since(start)
	st := BootStats{Result: res, Run: d, Exits: vm.Exits()}
	_, st.Unclaimed = vm.Unclaimed()
	if drain != nil {
		st.Drained = drain.close()
	}
	return st, err
}

// drainer owns an eventfd registered as an ioeventfd and a goroutine that
// reads it, as a virtio device's notification handler would.
type drainer struct {
	f     *os.File
	wg    sync.WaitGroup
	mu    sync.Mutex
	total uint64
}

func newDrainer(vm *kvm.VM, g *ExitGuest) (*drainer, error) {
	fd, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		return nil, fmt.Errorf("bench: eventfd: %w", err)
	}
	e := kvm.IOEventFD{Addr: g.Addr, Len: g.Len, Fd: int32(fd)}
	if g.PIO {
		e.Flags = kvm.IOEventFDPIO
	}
	if err := vm.IOEventFD(e); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("bench: %w", err)
	}
	d := &drainer{f: os.NewFile(uintptr(fd), "ioeventfd")}
	d.wg.Add(1)
	go func() {
		defer d.wg.Done()
		var b [8]byte
		for {
			// The eventfd is non-blocking, so the read parks in Go's poller
			// and Close wakes it.
			n, err := d.f.Read(b[:])
			if err != nil {
				return
			}
			if n == 8 {
				d.add(b)
			}
		}
	}()
	return d, nil
}

// add counts one eventfd read: the 8 bytes are the counter's value, in the
// host's byte order (little-endian on x86).
func (d *drainer) add(b [8]byte) {
	d.mu.Lock()
	d.total += binary.LittleEndian.Uint64(b[:])
	d.mu.Unlock()
}

// close stops the reader and returns how many signals it drained, including
// any still pending in the counter.
func (d *drainer) close() uint64 {
	var b [8]byte
	if n, _ := unix.Read(int(d.f.Fd()), b[:]); n == 8 {
		d.add(b)
	}
	d.f.Close()
	d.wg.Wait()
	return d.total
}

// RunEmberExits runs an exit guest patched for n exits in ember with the
// given client kind and returns vm.Run's duration. It checks the exits went
// where the kind says: through the vCPU loop, or into the eventfd.
func RunEmberExits(ctx context.Context, h *hv.Hypervisor, g ExitGuest, kind string, n int) (time.Duration, error) {
	return runEmberExits(ctx, h, g, kind, n, "")
}

// RunEmberExternalExits is RunEmberExits for ClientExternal: devicemodel is
// the examples/devicemodel binary (BuildDeviceModel), started for each run.
func RunEmberExternalExits(ctx context.Context, h *hv.Hypervisor, g ExitGuest, devicemodel string, n int) (time.Duration, error) {
	return runEmberExits(ctx, h, g, ClientExternal, n, devicemodel)
}

func runEmberExits(ctx context.Context, h *hv.Hypervisor, g ExitGuest, kind string, n int, devicemodel string) (time.Duration, error) {
	img, err := PatchExits(g.Image, n)
	if err != nil {
		return 0, err
	}
	cfg := BootConfig{MemorySize: 2 << 20}
	switch kind {
	case ClientIOEventFD:
		cfg.IOEventFD = &g
	case ClientExternal:
		cfg.External, cfg.DeviceModel = &g, devicemodel
	}
	st, err := Boot(ctx, h, img, cfg)
	if err != nil {
		return 0, err
	}
	if st.Result.Reason != hv.StopExit || st.Result.Status != 0 {
		return 0, fmt.Errorf("bench: ember %s %s guest ended with %v", kind, g.Name, st.Result)
	}
	switch kind {
	case ClientInProcess:
		if st.Exits < uint64(n)+1 {
			return 0, fmt.Errorf("bench: ember %s guest: %d exits handled, want %d", g.Name, st.Exits, n+1)
		}
	case ClientExternal:
		if st.Exits < uint64(n)+1 || st.Unclaimed != 0 {
			return 0, fmt.Errorf("bench: ember external %s guest: %d exits handled (want %d), %d writes unclaimed", g.Name, st.Exits, n+1, st.Unclaimed)
		}
	case ClientIOEventFD:
		if st.Drained == 0 && n > 0 || st.Exits > uint64(n/2)+1 {
			return 0, fmt.Errorf("bench: ember ioeventfd %s guest: %d exits reached user space, %d signals drained", g.Name, st.Exits, st.Drained)
		}
	default:
		return 0, fmt.Errorf("bench: no ember client kind %q", kind)
	}
	return st.Run, nil
}

// ErrCapReached ends a density run that created as many VMs as asked.
var ErrCapReached = errors.New("cap reached")

// Density creates tiny VMs (1 vCPU, 2 MiB) in this process, runs each once
// and keeps it, until creation fails or cap VMs exist. It returns how many it
// held and why it stopped (ErrCapReached or the error that stopped it).
func Density(ctx context.Context, h *hv.Hypervisor, image []byte, cap int) (int, error) {
	var vms []*hv.VM
	defer func() {
		for _, vm := range vms {
			vm.Close()
		}
	}()
	for len(vms) < cap {
		if err := ctx.Err(); err != nil {
			return len(vms), err
		}
		vm, err := h.NewVM(hv.Config{MemorySize: 2 << 20})
		if err != nil {
			return len(vms), err
		}
		vms = append(vms, vm)
		if err := vm.LoadImage(image, ImageBase); err != nil {
			return len(vms) - 1, err
		}
		if err := vm.SetEntry(0, Entry); err != nil {
			return len(vms) - 1, err
		}
		res, err := vm.Run(ctx)
		if err != nil {
			return len(vms) - 1, err
		}
		if res.Reason != hv.StopExit {
			return len(vms) - 1, fmt.Errorf("VM %d ended with %v", len(vms), res)
		}
	}
	return len(vms), ErrCapReached
}

// Churn runs create→run→destroy cycles of a tiny VM on workers goroutines for
// about d and returns the cycles completed and the time taken.
func Churn(ctx context.Context, h *hv.Hypervisor, image []byte, workers int, d time.Duration) (int, time.Duration, error) {
	var (
		mu     sync.Mutex
		cycles int
		first  error
		wg     sync.WaitGroup
	)
	start := time.Now()
	deadline := start.Add(d)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(deadline) && ctx.Err() == nil {
				st, err := Boot(ctx, h, image, BootConfig{MemorySize: 2 << 20})
				if err == nil && st.Result.Reason != hv.StopExit {
					err = fmt.Errorf("churn VM ended with %v", st.Result)
				}
				mu.Lock()
				if err != nil {
					if first == nil {
						first = err
					}
					mu.Unlock()
					return
				}
				cycles++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return cycles, time.Since(start), first
}

// RunEmberHypercalls runs the hypercall guest for n hypercalls (a multiple of
// 16) in a VM created as the Service VM and returns how long vm.Run took.
func RunEmberHypercalls(ctx context.Context, h *hv.Hypervisor, n int) (time.Duration, error) {
	hc := hypercall.New(h)
	defer hc.Close()
	vm, err := hc.NewVM(hv.Config{MemorySize: 2 << 20}, hypercall.Identity{ServiceVM: true})
	if err != nil {
		return 0, err
	}
	defer vm.Close()
	p := guest.BenchHypercall
	if err := vm.LoadImage(p.Code, guest.LoadAddr); err != nil {
		return 0, err
	}
	e := p.Entry()
	e.Regs.RCX = uint64(n)
	if err := vm.SetEntry(0, e); err != nil {
		return 0, err
	}
	start := time.Now()
	res, err := vm.Run(ctx)
	d := time.Since(start)
	if err == nil && (res.Reason != hv.StopExit || res.Status != 0) {
		err = fmt.Errorf("bench: hypercall guest ended with %v", res)
	}
	return d, err
}
