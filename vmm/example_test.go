package vmm_test

import (
	"fmt"
	"log"
	"os"
	"sync"

	"golang.org/x/sys/unix"

	"ember/guest"
	"ember/hv"
	"ember/vmm"
)

// firstReport is a device on guest.PortReport that closes ready when the
// guest first writes to it: the virq guest does once its IOAPIC pin is routed.
type firstReport struct {
	once  sync.Once
	ready chan struct{}
}

func (r *firstReport) Read(uint64, []byte)  {}
func (r *firstReport) Write(uint64, []byte) { r.once.Do(func() { close(r.ready) }) }

// Boot a tiny guest, wait for it to exit. (Needs /dev/kvm; not run by go test.)
func ExampleGuest_Start() {
	h, err := hv.Open()
	if err != nil {
		log.Fatal(err)
	}
	defer h.Close()
	g, err := vmm.New(h, hv.Config{MemorySize: 2 << 20})
	if err != nil {
		log.Fatal(err)
	}
	defer g.Close()
	if err := g.VM().LoadImage(guest.Second.Code, guest.LoadAddr); err != nil {
		log.Fatal(err)
	}
	// vCPU 0 starts in long mode at the image, with RSI = 42.
	if err := g.Start(0, guest.LoadAddr, 42, 0); err != nil {
		log.Fatal(err)
	}
	res, err := g.Wait()
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(res)
}

// Pause a guest to look at its memory while it is still.
func ExampleGuest_Stop() {
	h, _ := hv.Open()
	g, _ := vmm.New(h, hv.Config{MemorySize: 2 << 20})
	defer g.Close()
	g.VM().LoadImage(guest.Counter.Code, guest.LoadAddr)
	g.Start(0, guest.LoadAddr, 0, 0)

	if err := g.Stop(); err != nil {
		log.Fatal(err)
	}
	count := make([]byte, 8)
	g.VM().Memory().ReadAt(count, guest.CounterAddr) // no vCPU is writing it now
	fmt.Printf("count % x\n", count)
	g.Resume()
}

// Reboot the same VM into another image.
func ExampleGuest_Restart() {
	h, _ := hv.Open()
	g, _ := vmm.New(h, hv.Config{MemorySize: 2 << 20})
	defer g.Close()
	g.VM().LoadImage(guest.Counter.Code, guest.LoadAddr)
	g.Start(0, guest.LoadAddr, 0, 0)

	// Reset everything, clear RAM, load the second image and boot it.
	err := g.Restart(0, guest.LoadAddr, 0, 0, vmm.Image{Data: guest.Second.Code, Addr: guest.LoadAddr})
	if err != nil {
		log.Fatal(err)
	}
	res, _ := g.Wait()
	fmt.Println(res) // guest exited with status 2
}

// A device model raises IRQ 10 and learns when the guest has handled it.
func ExampleVirqController_Register() {
	h, _ := hv.Open()
	g, _ := vmm.New(h, hv.Config{MemorySize: 2 << 20})
	defer g.Close()

	v := g.Virq()
	if err := v.Init(0); err != nil {
		log.Fatal(err)
	}
	acked := make(chan string, 1)
	err := v.Register(0, 10, func(vcpu, irq int, cookie any) {
		acked <- cookie.(string) // the guest EOI'd: lower, or raise again if work is pending
	}, "my-device")
	if err != nil {
		log.Fatal(err)
	}

	// The virq guest routes the pin given in RSI and takes RSI>>8
	// interrupts. Inject once it is ready: a line raised while the guest's
	// pin is still masked is resampled (acknowledged) when it unmasks it.
	rep := &firstReport{ready: make(chan struct{})}
	g.VM().PIO.Register(guest.PortReport, 4, "report", rep)
	g.VM().LoadImage(guest.Virq.Code, guest.LoadAddr)
	g.Start(0, guest.LoadAddr, 10|1<<8, 0)
	<-rep.ready
	if err := v.Inject(0, 10); err != nil {
		log.Fatal(err)
	}
	fmt.Println("acknowledged by the guest:", <-acked)
}

// An interrupt that a host eventfd raises, with no trip through this process.
func ExampleVirqController_RegisterPassthrough() {
	h, _ := hv.Open()
	g, _ := vmm.New(h, hv.Config{MemorySize: 2 << 20})
	defer g.Close()
	v := g.Virq()
	v.Init(0)

	// src stands in for a host device's interrupt eventfd (VFIO's, say);
	// unmask is signalled when the guest EOIs, to re-enable it on the host.
	src, _ := unix.Eventfd(0, unix.EFD_CLOEXEC)
	ufd, _ := unix.Eventfd(0, unix.EFD_CLOEXEC)
	unmask := os.NewFile(uintptr(ufd), "unmask")
	defer unix.Close(src)
	defer unmask.Close()
	if err := v.RegisterPassthrough(0, 11, src, ufd); err != nil {
		log.Fatal(err)
	}
	rep := &firstReport{ready: make(chan struct{})}
	g.VM().PIO.Register(guest.PortReport, 4, "report", rep)
	g.VM().LoadImage(guest.Virq.Code, guest.LoadAddr)
	g.Start(0, guest.LoadAddr, 11|1<<8, 0)
	<-rep.ready

	// The program heard of the interrupt itself: inject it.
	if err := v.HandlePassthrough(src); err != nil {
		log.Fatal(err)
	}
	var b [8]byte
	unmask.Read(b[:]) // the guest has handled it
	res, _ := g.Wait()
	fmt.Println(res)
}
