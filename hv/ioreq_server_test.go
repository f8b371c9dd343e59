package hv

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"ember/acrn"
	"ember/acrn/iorequest"
	"ember/devicemodel"
	"ember/guest"
	"ember/internal/kvmtest"
	"ember/ioreq"
)

var quiet = slog.New(slog.DiscardHandler)

// TestDeviceModelSocketOffersEventFDs: a device model on the VM's socket
// gets the VM's ID, and its IOEVENTFD and IRQFD reach the VM's EventFDs.
func TestDeviceModelSocketOffersEventFDs(t *testing.T) {
	h := openHV(t)
	socket := filepath.Join(t.TempDir(), "vm.ioreq")
	vm, err := h.NewVM(Config{MemorySize: 1 << 20, DeviceModelSocket: socket, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer vm.Close()
	c, err := devicemodel.Dial(socket, "eventfds")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if c.Info().VMID != vm.ID() {
		t.Errorf("CREATE_CLIENT says VM %d, want %d", c.Info().VMID, vm.ID())
	}
	fd := newEventfd(t)
	if err := c.IOEventFD(acrn.IOEventFD{Flags: acrn.IOEventFDFlagPIO, Addr: 0x4f0, Len: 1}, fd); err != nil {
		t.Errorf("IOEVENTFD: %v", err)
	}
	if err := c.IOEventFD(acrn.IOEventFD{Flags: acrn.IOEventFDFlagPIO, Addr: 0x4f0, Len: 1}, fd); !errors.Is(err, unix.EEXIST) {
		t.Errorf("IOEVENTFD again: %v, want EEXIST", err)
	}
	if err := c.IRQFD(acrn.IRQFD{MSI: acrn.MSIEntry{MSIAddr: 0xfee00000, MSIData: 0x40}}, fd); err != nil {
		t.Errorf("IRQFD: %v", err)
	}
	if n := vm.EventFDs().MSIRoutes(); n != 1 {
		t.Errorf("%d MSI routes, want 1", n)
	}
	if err := c.IRQFD(acrn.IRQFD{Flags: acrn.IRQFDFlagDeassign}, fd); err != nil {
		t.Errorf("IRQFD deassign: %v", err)
	}
	if _, err := h.NewVM(Config{MemorySize: 1 << 20, DeviceModelSocket: socket, Logger: quiet}); err == nil {
		t.Error("a second VM on the same socket path was created")
	}
}

// TestDeviceModelMapsGuestRAM: a device model asks for the guest's memory
// (MEMORY), maps the memfds it is handed, and reads what is in guest RAM at
// the segments' guest-physical addresses, as a virtio device model reads its
// rings.
func TestDeviceModelMapsGuestRAM(t *testing.T) {
	h := openHV(t)
	socket := filepath.Join(t.TempDir(), "vm.ioreq")
	vm, err := h.NewVM(Config{MemorySize: 2 << 20, DeviceModelSocket: socket, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer vm.Close()
	const gpa, msg = 0x12340, "ring bytes"
	if _, err := vm.Memory().WriteAt([]byte(msg), gpa); err != nil {
		t.Fatal(err)
	}
	c, err := devicemodel.Dial(socket, "mapper")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	segs, err := c.Memory()
	if err != nil {
		t.Fatalf("MEMORY: %v", err)
	}
	found := false
	for _, sg := range segs {
		m, err := unix.Mmap(sg.FD, int64(sg.Offset), int(sg.Len), unix.PROT_READ, unix.MAP_SHARED)
		unix.Close(sg.FD)
		if err != nil {
			t.Fatal(err)
		}
		if gpa >= sg.GPA && gpa+len(msg) <= int(sg.GPA+sg.Len) {
			found = string(m[gpa-sg.GPA:gpa-sg.GPA+uint64(len(msg))]) == msg
		}
		unix.Munmap(m)
	}
	if !found {
		t.Errorf("no segment shows %q at %#x (segments %+v)", msg, gpa, segs)
	}
}

// TestDeviceModelSocketLeavesNothing: VMs with a device-model socket and a
// connected device model, created, run and destroyed one after another,
// leave no descriptors, goroutines or socket files behind.
func TestDeviceModelSocketLeavesNothing(t *testing.T) {
	h := openHV(t)
	dir := t.TempDir()
	n := 200
	if testing.Short() {
		n = 30
	}
	runOne := func() {
		socket := filepath.Join(dir, "vm.ioreq")
		vm, err := h.NewVM(Config{MemorySize: 1 << 20, DeviceModelSocket: socket, Logger: quiet})
		if err != nil {
			t.Fatal(err)
		}
		defer vm.Close()
		c, err := devicemodel.Dial(socket, "leak")
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Claim(ioreq.Range{Type: iorequest.ReqPortIO, Start: 0x500, End: 0x50f}); err != nil {
			t.Fatal(err)
		}
		if err := c.Attach(); err != nil {
			t.Fatal(err)
		}
		served := make(chan error, 1)
		go func() {
			served <- c.Serve(ioreq.HandlerFunc(func(*iorequest.IORequest) {}))
		}()
		defer c.Close()
		vm.LoadImage(guest.Real.Code, guest.LoadAddr)
		vm.SetEntry(0, guest.Real.Entry())
		if err := vm.PIO.Register(guest.PortReport, 4, "report", kvmtest.NewReporter()); err != nil {
			t.Fatal(err)
		}
		res, err := vm.Run(context.Background())
		if err != nil || res.Reason != StopExit {
			t.Fatalf("Run = %v, %v", res, err)
		}
		if err := vm.Close(); err != nil {
			t.Fatal(err)
		}
		if _, err := os.Stat(socket); !os.IsNotExist(err) {
			t.Fatalf("socket left behind: %v", err)
		}
		select { // the VM's Close disconnected the device model: Serve returns
		case <-served:
		case <-time.After(5 * time.Second):
			t.Fatal("device model still served after the VM closed")
		}
	}
	runOne()
	fds, gs := kvmtest.OpenFDs(t), runtime.NumGoroutine()
	for i := 0; i < n; i++ {
		runOne()
	}
	if got := kvmtest.OpenFDs(t); got != fds {
		t.Errorf("open descriptors: %d before, %d after %d VMs", fds, got, n)
	}
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > gs && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if got := runtime.NumGoroutine(); got != gs {
		t.Errorf("goroutines: %d before, %d after %d VMs", gs, got, n)
	}
}
