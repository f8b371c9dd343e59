package pci

import (
	"encoding/binary"
	"fmt"
	"log/slog"
	"sync"

	"ember/devices"
	"ember/memory"
	"ember/virtio"
)

// Config connects a Function to its VM.
type Config struct {
	// Mem is the guest's RAM, where the driver puts its queues.
	Mem *memory.Guest
	// BAR is BAR0's address at power-on, as firmware would have assigned
	// it: BARSize-aligned, in the PCI memory window.
	BAR uint32
	// MoveBAR re-registers BAR0's region when the driver programs another
	// address into it (a kernel that reassigns PCI resources).
	MoveBAR func(old, new uint32) error
	// PortBAR, if not 0, gives the function BAR1 as well: PortBARSize
	// ports in I/O space, PortBARSize-aligned, where the driver can notify
	// each queue as it can in BAR0. The capability list offers the driver
	// this notification region first: on AMD's SVM a port write's exit
	// tells KVM the port and the next instruction, where a write to memory
	// must be decoded by KVM's instruction emulator, so an ioeventfd on a
	// port costs the guest less (about a fifth less in the lab: pc's
	// BenchmarkVirtioNotify). A driver that cannot use I/O space takes the
	// one in BAR0.
	PortBAR uint16
	// MovePortBAR re-registers BAR1's ports when the driver programs
	// another address into it, as MoveBAR does BAR0's region.
	MovePortBAR func(old, new uint32) error
	// MSI sends the message an MSI-X table entry holds (KVM_SIGNAL_MSI):
	// for every message when NewVector is nil, else the fallback.
	MSI func(addrLo, addrHi, data uint32) error
	// NewVector, if set, gives an MSI-X vector a Vector of its own routed to
	// the message (a KVM irqfd: the device's interrupts then cost an
	// eventfd write, no ioctl). The function asks for one when the driver
	// first makes a vector live (MSI-X enabled, vector and function
	// unmasked), reroutes it when the driver rewrites the message, and
	// closes it when the driver disables MSI-X, at Reset and at Close. If it
	// or a reroute fails, the function logs a warning and sends every
	// message through MSI until MSI-X is disabled or the function reset.
	NewVector func(addr uint64, data uint32) (Vector, error)
	// Kick, if set, points queue q's notification ioeventfd at the eventfd
	// fd, or with fd -1 back at the transport's own: a device that takes
	// notifications on eventfds of its own (virtio.QueueEventFDs) then has
	// KVM signal them, without ember in between. The function points them
	// at the device's when it activates it and back before it resets it.
	Kick func(q, fd int) error
	// INTx is the function's INTA# line, level-triggered, for a driver that
	// does not enable MSI-X; IRQ is its GSI, shown in the Interrupt Line
	// register.
	INTx devices.IRQLine
	IRQ  uint8
	// Logger gets the driver's mistakes and the device's failures; nil
	// means slog.Default().
	Logger *slog.Logger
}

// Stats counts a function's queue notifications by the way they arrived
// and its interrupts by the way they left, for tests and metrics.
type Stats struct {
	// NotifyMMIO counts queue notifications written to BAR0 and served by
	// Write: each one an exit to a vCPU thread.
	NotifyMMIO uint64
	// NotifyPort counts queue notifications written to BAR1's ports and
	// served by Ports: each one an exit to a vCPU thread.
	NotifyPort uint64
	// NotifyEventFD counts queue notifications passed by Notify: an
	// ioeventfd's, which KVM matched without an exit.
	NotifyEventFD uint64
	// IRQFD counts MSI-X messages signalled on a Vector (an irqfd).
	IRQFD uint64
	// MSI counts MSI-X messages sent through Config.MSI (KVM_SIGNAL_MSI).
	MSI uint64
	// INTx counts interrupts raised with the ISR on INTx.
	INTx uint64
	// DirectKicks and DirectCalls are how many queues have, now, their
	// notifications signalled by KVM on the device's own kick eventfd, and
	// their device's call eventfd bound to an MSI-X vector's irqfd
	// (virtio.QueueEventFDs): those pass through no counter above.
	DirectKicks, DirectCalls int
}

// Function is one virtio device as a PCI function: its configuration space
// (ConfigRead, ConfigWrite: an ioreq.ConfigSpace) and BAR0 (Read, Write: a
// devices.Device at the BAR's address).
type Function struct {
	dev virtio.Device
	cfg Config
	log *slog.Logger

	// lifecycle serialises status changes, which call the device's
	// Activate and Reset; mu guards the registers. A device may call the
	// interrupt callback (which takes mu) until Reset returns, so mu is
	// never held while the device is called.
	lifecycle sync.Mutex
	mu        sync.Mutex
	space     [256]byte       // configuration space; the MSI-X control lives here too
	bars      [2]baseRegister // BAR0 and (if Config.PortBAR) BAR1, over space's registers
	regs      common
	msix      msixTable
	stats     Stats
	calls     []directCall // by queue: where its calls go, if KVM delivers them (direct.go)
	kicked    []bool       // by queue: its ioeventfd signals the device's kick eventfd
	// callsRelayed: binding a call eventfd failed; the device relays
	// every call until the function is reset.
	callsRelayed bool
}

// New returns the function for dev, reset.
func New(dev virtio.Device, cfg Config) (*Function, error) {
	if cfg.BAR%BARSize != 0 {
		return nil, fmt.Errorf("virtio-pci: BAR0 %#x is not %#x-aligned", cfg.BAR, BARSize)
	}
	if cfg.PortBAR%PortBARSize != 0 {
		return nil, fmt.Errorf("virtio-pci: BAR1 port %#x is not %#x-aligned", cfg.PortBAR, PortBARSize)
	}
	n := len(dev.QueueSizes())
	if n == 0 || n > 64 {
		return nil, fmt.Errorf("virtio-pci: %d queues", n)
	}
	f := &Function{dev: dev, cfg: cfg, log: cfg.Logger}
	f.bars[memBAR] = baseRegister{reg: regBAR0, size: BARSize, addr: cfg.BAR}
	f.bars[portBAR] = baseRegister{reg: regBAR1}
	if cfg.PortBAR != 0 {
		f.bars[portBAR] = baseRegister{reg: regBAR1, size: PortBARSize, flags: ioSpaceBAR, addr: uint32(cfg.PortBAR)}
	}
	if f.log == nil {
		f.log = slog.Default()
	}
	f.msix = msixTable{send: cfg.MSI, newVector: cfg.NewVector, log: f.log, stats: &f.stats, unbind: f.relayVector}
	f.calls, f.kicked = make([]directCall, n), make([]bool, n)
	f.relayAll()
	f.msix.init(n + 1) // one vector per queue, one for configuration changes
	f.regs.init(dev.QueueSizes())
	f.initSpace()
	if es, ok := dev.(virtio.EventSource); ok {
		es.SetEvents(virtio.TransportEvents{Mu: &f.mu, Regs: &f.regs.Regs, Log: f.log, Name: "virtio-pci", Type: dev.Type(),
			ConfigInterrupt: func() { f.raise(f.regs.configVector, 2) }})
	}
	return f, nil
}

// initSpace fills the configuration space: the header, the BARs and the
// capability list.
func (f *Function) initSpace() {
	s, le := f.space[:], binary.LittleEndian
	t := f.dev.Type()
	le.PutUint16(s[regVendor:], VendorID)
	le.PutUint16(s[regDevice:], deviceIDBase+t)
	le.PutUint16(s[regStatus:], statusCapList)
	class := classOf(t)
	s[regRevision] = revisionModern
	s[regClass], s[regClass+1], s[regClass+2] = byte(class), byte(class>>8), byte(class>>16)
	s[regHeader] = 0 // type 0, single function
	le.PutUint16(s[regSubVendor:], VendorID)
	le.PutUint16(s[regSubsystem:], 0x40+t) // modern devices use IDs 0x40 and up
	for i := range f.bars {
		f.bars[i].store(s)
	}
	s[regCapPtr] = capCommon
	s[regIntLine], s[regIntPin] = f.cfg.IRQ, 1 // INTA#
	next := capNotify
	if f.bars[portBAR].size != 0 {
		next = capNotifyPort
		f.putVirtioCap(capNotifyPort, capNotify, cfgNotify, portBAR, 0, PortBARSize, 20)
		le.PutUint32(s[capNotifyPort+16:], NotifyMultiplier)
	}
	f.putVirtioCap(capCommon, next, cfgCommon, memBAR, commonOffset, commonSize, 16)
	f.putVirtioCap(capNotify, capISR, cfgNotify, memBAR, notifyOffset, notifySize, 20)
	le.PutUint32(s[capNotify+16:], NotifyMultiplier)
	f.putVirtioCap(capISR, capDevice, cfgISR, memBAR, isrOffset, isrSize, 16)
	f.putVirtioCap(capDevice, capMSIX, cfgDevice, memBAR, deviceOffset, deviceSize, 16)
	s[capMSIX], s[capMSIX+1] = capIDMSIX, 0
	le.PutUint16(s[capMSIX+2:], uint16(f.msix.n-1)) // table size - 1; disabled, unmasked
	le.PutUint32(s[capMSIX+4:], msixTableOff)       // BIR 0
	le.PutUint32(s[capMSIX+8:], msixPBAOff)
}

// putVirtioCap writes a struct virtio_pci_cap at off, for a structure at
// barOff in BAR bar.
func (f *Function) putVirtioCap(off, next int, typ, bar uint8, barOff, length uint32, capLen uint8) {
	s := f.space[off:]
	s[0], s[1], s[2], s[3], s[4], s[5] = capIDVendor, byte(next), capLen, typ, bar, 0
	binary.LittleEndian.PutUint32(s[8:], barOff)
	binary.LittleEndian.PutUint32(s[12:], length)
}

// ConfigRead reads the configuration space; only function 0 of this slot is
// routed here, so bus, dev and fn are not looked at. A read past 256 bytes
// (the extended space) gives all ones.
func (f *Function) ConfigRead(_, _, _ uint8, reg uint16, data []byte) {
	if int(reg)+len(data) > len(f.space) {
		devices.FillOnes(data)
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	copy(data, f.space[reg:])
	for i := range f.bars {
		f.bars[i].overlay(reg, data)
	}
}

// ConfigWrite writes the writable registers: the command register, the
// BARs (sizing, or a new address), the interrupt line and the MSI-X message
// control. Everything else is read-only.
func (f *Function) ConfigWrite(_, _, _ uint8, reg uint16, data []byte) {
	if int(reg)+len(data) > len(f.space) {
		return
	}
	f.mu.Lock()
	var moved [2][2]uint32
	for i, b := range data {
		f.writeByte(int(reg)+i, b)
	}
	for i := range f.bars {
		b := &f.bars[i]
		if b.touches(reg, len(data)) {
			moved[i] = b.write(binary.LittleEndian.Uint32(f.space[b.reg:]))
			b.store(f.space[:])
		}
	}
	if reg < capMSIX+4 && int(reg)+len(data) > capMSIX+2 {
		f.msix.setControl(binary.LittleEndian.Uint16(f.space[capMSIX+2:]))
		f.routeCalls()
	}
	f.mu.Unlock()
	f.moved("BAR0", moved[memBAR], f.cfg.MoveBAR)
	f.moved("BAR1", moved[portBAR], f.cfg.MovePortBAR)
}

// moved calls move for a BAR the driver gave a new address, and logs its
// failure: the BAR is then unmapped until the driver moves it again.
func (f *Function) moved(name string, m [2]uint32, move func(old, new uint32) error) {
	if m[0] == m[1] || move == nil {
		return
	}
	if err := move(m[0], m[1]); err != nil {
		f.log.Error("virtio-pci: moving "+name, "from", m[0], "to", m[1], "err", err)
	}
}

// writeByte stores one byte of a configuration write where the register is
// writable. The caller holds f.mu.
func (f *Function) writeByte(r int, b byte) {
	switch {
	case r == regCommand:
		f.space[r] = b & (commandIO | commandMemory | 1<<2) // I/O space, memory space, bus master
	case r == regCommand+1:
		f.space[r] = b & (commandNoINTx >> 8)
	case r >= regBAR0 && r < regBAR1+4, r == regIntLine:
		f.space[r] = b
	case r == capMSIX+3:
		f.space[r] = b & 0xc0 // enable, function mask
	}
}

// Read reads BAR0 at offset off.
func (f *Function) Read(off uint64, data []byte) {
	switch {
	case off >= commonOffset && off < commonOffset+commonSize:
		f.readCommon(off-commonOffset, data)
	case off == isrOffset:
		f.readISR(data)
	case off >= deviceOffset && off < deviceOffset+deviceSize:
		f.dev.ReadConfig(off-deviceOffset, data)
	case off >= msixTableOff && off < msixPBAOff+0x1000:
		f.mu.Lock()
		f.msix.read(off-msixTableOff, data)
		f.mu.Unlock()
	default:
		clear(data)
	}
}

// Write writes BAR0 at offset off.
func (f *Function) Write(off uint64, data []byte) {
	switch {
	case off >= commonOffset && off < commonOffset+commonSize:
		f.writeCommon(off-commonOffset, data)
	case off >= notifyOffset && off < notifyOffset+notifySize:
		f.notify(int((off-notifyOffset)/NotifyMultiplier), &f.stats.NotifyMMIO)
	case off >= deviceOffset && off < deviceOffset+deviceSize:
		f.dev.WriteConfig(off-deviceOffset, data)
	case off >= msixTableOff && off < msixPBAOff:
		f.mu.Lock()
		f.msix.write(off-msixTableOff, data)
		f.routeCalls()
		f.mu.Unlock()
	}
}

// readISR returns the ISR status and clears it, lowering INTx (§4.1.4.5).
func (f *Function) readISR(data []byte) {
	f.mu.Lock()
	defer f.mu.Unlock()
	clear(data)
	if len(data) > 0 {
		data[0] = f.regs.isr
	}
	if f.regs.isr != 0 {
		f.regs.isr = 0
		if f.cfg.INTx != nil {
			f.cfg.INTx.SetLevel(false)
		}
	}
}

// Notify passes a notification of queue q to the device, if it is active
// and the queue enabled: what a write to the queue's notification address
// does, for a transport that receives those writes some other way (an
// ioeventfd, NotifyAddress).
func (f *Function) Notify(q int) { f.notify(q, &f.stats.NotifyEventFD) }

// NumQueues returns the number of the device's queues.
func (f *Function) NumQueues() int { return len(f.dev.QueueSizes()) }

// notify passes a queue notification to an active device; count is the
// Stats counter of the way it came, incremented under f.mu.
func (f *Function) notify(q int, count *uint64) {
	f.mu.Lock()
	*count++
	ok := f.regs.Active && q < len(f.regs.Queues) && f.regs.Queues[q].Enable
	f.mu.Unlock()
	if ok {
		f.dev.Notify(q)
	}
}

// NotifyOffset returns the offset in BAR0 of queue q's notification
// register, where a transport may put an ioeventfd.
func (f *Function) NotifyOffset(q int) uint64 {
	return notifyOffset + uint64(q)*NotifyMultiplier
}

// Stats returns the function's counts so far.
func (f *Function) Stats() Stats {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.stats
}
