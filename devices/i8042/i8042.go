// Package i8042 models the PC's 8042 keyboard controller (the "PS/2
// controller") at ports 0x60 (data) and 0x64 (status when read, command when
// written), with a minimal keyboard behind it and no auxiliary (mouse) port.
//
// It gives a guest what it needs from the controller: the status register,
// the controller command byte (0x20/0x60, and the rest of the 32-byte
// internal RAM at 0x21-0x3f/0x61-0x7f), controller self test (0xAA answers
// 0x55), keyboard interface test (0xAB answers 0x00), keyboard disable and
// enable (0xAD/0xAE), auxiliary disable/enable bits (0xA7/0xA8), output port
// read/write (0xD0/0xD1), writes to the output buffer (0xD2), A20 gate
// commands (0xDD/0xDF) and the output-port pulse commands 0xF0-0xFF, of which
// 0xFE (pulse line 0) is the classic CPU reset. The reset is reported to the
// owner through Config.Reset; the VM decides whether that ends or restarts
// it.
//
// Keyboard: bytes written to port 0x60 outside a controller command go to a
// minimal AT keyboard that acknowledges (0xFA) the commands Linux's atkbd
// driver sends (reset 0xFF with self-test result 0xAA, identify 0xF2 giving
// 0xAB 0x41 with translation on or 0xAB 0x83 without, enable/disable
// scanning 0xF4/0xF5, defaults 0xF6, LEDs 0xED, scan code set 0xF0, typematic
// 0xF3, echo 0xEE) and asks for a resend (0xFE) of anything else. The host
// types with Key, giving the bytes exactly as the guest should read them
// (set 1 codes when the command byte's translate bit is set, as it is after
// reset); the controller does not translate.
//
// No auxiliary device: the auxiliary loop command 0xD3 echoes its byte
// without the status register's AUXDATA bit and the auxiliary interface test
// reports an error, so Linux's i8042 driver decides quickly and cleanly that
// there is no AUX port, and registers the keyboard port alone.
//
// Interrupt: IRQ 1 is high while the output buffer is full and the command
// byte's keyboard interrupt bit is set. Reading the data port empties the
// buffer; if another byte is waiting it is loaded at once and the line is
// pulsed low then high, so an edge-triggered PIC sees one edge per byte.
//
// Accesses: the two registers are one byte wide at offsets 0 (0x60) and 4
// (0x64) of a 5-port range. The owner may map 0x60 and 0x64 separately so as
// to leave 0x61-0x63 (port B, the PIT gate and speaker) to other devices.
// Reads of other sizes or offsets return all-ones and such writes are
// ignored; both are counted and logged, as are unknown commands.
//
// Concurrency: a Controller is safe for concurrent use. Its mutex is held
// while it calls the IRQLine, so the line must not call back into the
// controller; the reset callback is called after the mutex is released.
package i8042

import (
	"log/slog"
	"sync"

	"ember/devices"
)

// Where a PC has the controller, and the size of the range the offsets
// below are relative to.
const (
	DataPort      = 0x60 // data port (read: output buffer; write: input buffer)
	CommandPort   = 0x64 // read: status register; write: controller command
	KeyboardIRQ   = 1    // ISA IRQ of keyboard data
	DataOffset    = 0
	CommandOffset = CommandPort - DataPort
	PortLen       = CommandOffset + 1
)

// Status register bits.
const (
	StatusOutputFull = 0x01 // OBF: a byte is waiting at port 0x60
	StatusInputFull  = 0x02 // IBF: always 0, input is consumed at once
	StatusSystem     = 0x04 // system flag, mirrors command byte bit 2
	StatusCommand    = 0x08 // last write was to port 0x64
	StatusUnlocked   = 0x10 // keyboard not inhibited by the keylock
	StatusAuxData    = 0x20 // the waiting byte is from the aux device; never
	StatusTimeout    = 0x40
	StatusParity     = 0x80
)

// Command byte (controller configuration byte) bits.
const (
	CmdByteKbdInt     = 0x01 // raise IRQ 1 when keyboard data arrives
	CmdByteAuxInt     = 0x02 // raise IRQ 12 for aux data (no aux here)
	CmdByteSystem     = 0x04 // system flag (POST passed)
	CmdByteKbdDisable = 0x10 // keyboard clock disabled
	CmdByteAuxDisable = 0x20 // aux clock disabled
	CmdByteTranslate  = 0x40 // translate set 2 to set 1
	// resetCmdByte is what a BIOS leaves after POST: translation, keyboard
	// interrupt, system flag, no aux.
	resetCmdByte = CmdByteTranslate | CmdByteAuxDisable | CmdByteSystem | CmdByteKbdInt
)

// Output port bits.
const (
	OutPortReset   = 0x01 // CPU reset line, active low
	OutPortA20     = 0x02 // A20 gate
	OutPortKbdFull = 0x10 // mirrors "output buffer full" (IRQ 1)
	OutPortAuxFull = 0x20 // mirrors aux output buffer full (IRQ 12)
	// resetOutPort has reset released, A20 on and the unused lines high.
	resetOutPort = 0xcc | OutPortReset | OutPortA20
)

// Controller commands (written to port 0x64).
const (
	CmdReadCmdByte    = 0x20 // 0x20-0x3f read internal RAM; 0x20 is the command byte
	CmdWriteCmdByte   = 0x60 // 0x60-0x7f write internal RAM; the byte follows at 0x60
	CmdAuxDisable     = 0xa7
	CmdAuxEnable      = 0xa8
	CmdAuxTest        = 0xa9
	CmdSelfTest       = 0xaa
	CmdKbdTest        = 0xab
	CmdKbdDisable     = 0xad
	CmdKbdEnable      = 0xae
	CmdReadOutPort    = 0xd0
	CmdWriteOutPort   = 0xd1
	CmdWriteKbdOutBuf = 0xd2
	CmdWriteAuxOutBuf = 0xd3
	CmdWriteAux       = 0xd4
	CmdA20Disable     = 0xdd
	CmdA20Enable      = 0xdf
	CmdPulseReset     = 0xfe // pulse output line 0: CPU reset
	cmdPulseFirst     = 0xf0 // 0xf0-0xff pulse the lines whose bit is 0
)

// Replies.
const (
	SelfTestOK   = 0x55
	KbdTestOK    = 0x00
	auxTestError = 0x02 // "clock line stuck high": nothing attached
	kbdAck       = 0xfa
	kbdResend    = 0xfe
	kbdBATOK     = 0xaa
	kbdEcho      = 0xee
)

// outQueueLen bounds each output queue: the controller's replies and the
// keyboard's own 16-byte buffer.
const outQueueLen = 16

// Config is what the owner supplies to New. The zero value is a controller
// with no interrupt line and a reset that does nothing.
type Config struct {
	// IRQ is the keyboard interrupt line, IRQ 1. Nil means not connected.
	IRQ devices.IRQLine
	// Reset is called once each time the guest pulls the CPU reset line
	// (command 0xFE, or another pulse or output-port write that drives
	// line 0 low), after the controller's lock is released, so it may
	// call Reset or stop vCPUs. Linux's keyboard reboot writes 0xFE up to
	// ten times, waiting briefly between tries, so the owner should treat
	// calls that arrive before the reset has taken effect as one. Nil
	// ignores resets.
	Reset func()
	// Logger receives reports of invalid guest accesses and unknown
	// commands. Nil means slog.Default().
	Logger *slog.Logger
}

// Controller is one 8042 with its keyboard. Create it with New; it
// implements devices.Device.
type Controller struct {
	mu        sync.Mutex
	irq       devices.IRQLine
	reset     func()
	anomalies *devices.Anomalies

	ram         [32]byte // ram[0] is the command byte
	outPort     byte
	lastCommand bool // status bit 3
	pending     byte // controller command waiting for its data byte, or 0

	obf      bool // output buffer full
	outByte  byte // output buffer contents (kept after it is read)
	ctlQueue []byte
	kbdQueue []byte
	irqHigh  bool

	// The keyboard.
	scanning   bool
	kbdPending byte // keyboard command waiting for its parameter, or 0
	scanSet    byte
	leds       byte
	lastKbd    byte // last byte the keyboard sent, for its resend command
}

var _ devices.Device = (*Controller)(nil)

// New returns a controller in the state a BIOS leaves it after POST.
func New(cfg Config) *Controller {
	c := &Controller{
		irq:       cfg.IRQ,
		reset:     cfg.Reset,
		anomalies: devices.NewAnomalies(cfg.Logger, "i8042"),
	}
	if c.irq == nil {
		c.irq = devices.NoIRQ{}
	}
	if c.reset == nil {
		c.reset = func() {}
	}
	c.resetLocked()
	return c
}

// Reset puts the controller and keyboard back in their power-on state, for
// a VM restart. It does not call the reset callback.
func (c *Controller) Reset() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.resetLocked()
	c.finishLocked(false)
}

func (c *Controller) resetLocked() {
	c.ram = [32]byte{resetCmdByte}
	c.outPort = resetOutPort
	c.lastCommand = false
	c.pending = 0
	c.obf = false
	c.ctlQueue = nil
	c.kbdQueue = nil
	c.scanning = true
	c.kbdPending = 0
	c.scanSet = 2
	c.leds = 0
	c.lastKbd = 0
}

// Read performs a guest read of size len(data) at offset.
func (c *Controller) Read(offset uint64, data []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(data) != 1 || (offset != DataOffset && offset != CommandOffset) {
		devices.FillOnes(data)
		c.anomalies.Report("unsupported read", "offset", offset, "size", len(data))
		return
	}
	if offset == CommandOffset {
		data[0] = c.status()
		return
	}
	data[0] = c.outByte
	wasFull := c.obf
	c.obf = false
	c.finishLocked(wasFull)
}

// Write performs a guest write of size len(data) at offset.
func (c *Controller) Write(offset uint64, data []byte) {
	resets := c.write(offset, data)
	for range resets {
		c.reset()
	}
}

func (c *Controller) write(offset uint64, data []byte) (resets int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(data) != 1 || (offset != DataOffset && offset != CommandOffset) {
		c.anomalies.Report("unsupported write", "offset", offset, "size", len(data))
		return 0
	}
	v := data[0]
	if offset == CommandOffset {
		c.lastCommand = true
		resets = c.command(v)
	} else {
		c.lastCommand = false
		resets = c.dataByte(v)
	}
	c.finishLocked(false)
	return resets
}

func (c *Controller) status() byte {
	s := byte(StatusUnlocked)
	if c.obf {
		s |= StatusOutputFull
	}
	if c.ram[0]&CmdByteSystem != 0 {
		s |= StatusSystem
	}
	if c.lastCommand {
		s |= StatusCommand
	}
	return s
}

// command runs a controller command written to port 0x64 and returns how
// many CPU resets it caused.
func (c *Controller) command(cmd byte) int {
	if c.pending != 0 {
		// A new command abandons one still waiting for its data byte.
		c.anomalies.Report("command abandoned for another", "pending", c.pending, "command", cmd)
	}
	c.pending = 0
	switch {
	case cmd >= 0x20 && cmd <= 0x3f:
		c.reply(c.ram[cmd&0x1f])
	case cmd >= 0x60 && cmd <= 0x7f,
		cmd == CmdWriteOutPort, cmd == CmdWriteKbdOutBuf,
		cmd == CmdWriteAuxOutBuf, cmd == CmdWriteAux:
		c.pending = cmd
	case cmd == CmdAuxDisable:
		c.ram[0] |= CmdByteAuxDisable
	case cmd == CmdAuxEnable:
		c.ram[0] &^= CmdByteAuxDisable
	case cmd == CmdAuxTest:
		c.reply(auxTestError)
	case cmd == CmdSelfTest:
		c.ram[0] |= CmdByteSystem
		c.reply(SelfTestOK)
	case cmd == CmdKbdTest:
		c.reply(KbdTestOK)
	case cmd == CmdKbdDisable:
		c.ram[0] |= CmdByteKbdDisable
	case cmd == CmdKbdEnable:
		c.ram[0] &^= CmdByteKbdDisable
	case cmd == CmdReadOutPort:
		v := c.outPort &^ (OutPortKbdFull | OutPortAuxFull)
		if c.obf {
			v |= OutPortKbdFull
		}
		c.reply(v)
	case cmd == CmdA20Disable:
		c.outPort &^= OutPortA20
	case cmd == CmdA20Enable:
		c.outPort |= OutPortA20
	case cmd >= cmdPulseFirst:
		// Lines 0-3 whose bit in the command is 0 are pulsed low
		// for about 6 µs; only line 0, the CPU reset, does anything.
		if cmd&OutPortReset == 0 {
			return 1
		}
	default:
		c.anomalies.Report("unknown controller command", "command", cmd)
	}
	return 0
}

// dataByte handles a byte written to port 0x60: the data of a pending
// controller command, or a byte for the keyboard.
func (c *Controller) dataByte(v byte) int {
	cmd := c.pending
	c.pending = 0
	switch {
	case cmd == 0:
		c.keyboard(v)
	case cmd >= 0x60 && cmd <= 0x7f:
		c.ram[cmd&0x1f] = v
	case cmd == CmdWriteOutPort:
		// The CPU reset line is active low. The reset restarts the
		// system, so the stored value has the line released again.
		c.outPort = v | OutPortReset
		if v&OutPortReset == 0 {
			return 1
		}
	case cmd == CmdWriteKbdOutBuf:
		c.reply(v)
	case cmd == CmdWriteAuxOutBuf:
		// No aux port: the byte comes back, but not as aux data.
		c.reply(v)
	case cmd == CmdWriteAux:
		c.anomalies.Report("byte for the absent aux device dropped", "value", v)
	}
	return 0
}

// keyboard handles a byte sent to the keyboard.
func (c *Controller) keyboard(v byte) {
	// Sending to the keyboard re-enables its clock.
	c.ram[0] &^= CmdByteKbdDisable
	if p := c.kbdPending; p != 0 {
		c.kbdPending = 0
		switch p {
		case 0xed: // LEDs
			c.leds = v & 0x07
			c.kbdSend(kbdAck)
		case 0xf0: // scan code set
			switch {
			case v == 0:
				c.kbdSend(kbdAck, c.scanSet)
			case v <= 3:
				c.scanSet = v
				c.kbdSend(kbdAck)
			default:
				c.kbdSend(kbdResend)
			}
		case 0xf3: // typematic rate and delay: nothing to time
			c.kbdSend(kbdAck)
		}
		return
	}
	switch v {
	case 0xff: // reset and self test
		c.kbdQueue = c.kbdQueue[:0]
		c.scanning, c.scanSet, c.leds = true, 2, 0
		c.kbdSend(kbdAck, kbdBATOK)
	case 0xfe: // resend
		c.kbdSend(c.lastKbd)
	case 0xf6: // set defaults
		c.scanSet, c.leds = 2, 0
		c.kbdSend(kbdAck)
	case 0xf5: // disable scanning (and set defaults)
		c.scanning, c.scanSet, c.leds = false, 2, 0
		c.kbdSend(kbdAck)
	case 0xf4: // enable scanning
		c.scanning = true
		c.kbdSend(kbdAck)
	case 0xf2: // identify: MF2 keyboard
		id := byte(0x83)
		if c.ram[0]&CmdByteTranslate != 0 {
			id = 0x41
		}
		c.kbdSend(kbdAck, 0xab, id)
	case 0xed, 0xf0, 0xf3:
		c.kbdPending = v
		c.kbdSend(kbdAck)
	case 0xf7, 0xf8, 0xf9, 0xfa, 0xfb, 0xfc, 0xfd: // set 3 key types
		c.kbdSend(kbdAck)
	case 0xee:
		c.kbdSend(kbdEcho)
	default:
		c.anomalies.Report("unknown keyboard command", "command", v)
		c.kbdSend(kbdResend)
	}
}

// reply queues a byte from the controller itself.
func (c *Controller) reply(v byte) {
	if len(c.ctlQueue) >= outQueueLen {
		c.anomalies.Report("controller reply dropped: guest not reading", "value", v)
		return
	}
	c.ctlQueue = append(c.ctlQueue, v)
}

// kbdSend queues bytes from the keyboard; it answers commands ahead of
// any keystrokes still buffered.
func (c *Controller) kbdSend(b ...byte) {
	c.lastKbd = b[len(b)-1]
	c.kbdQueue = append(b, c.kbdQueue...)
	if len(c.kbdQueue) > outQueueLen {
		c.kbdQueue = c.kbdQueue[:outQueueLen]
	}
}

// Key types: it queues bytes from the keyboard exactly as the guest should
// read them from port 0x60 (set 1 make/break codes while translation is on)
// and returns how many fit in the keyboard's 16-byte buffer. Keys typed while
// the guest has scanning disabled (keyboard command 0xF5) are discarded, as a
// real keyboard discards them; keys typed while the controller has the
// keyboard disabled (0xAD) wait in the buffer.
func (c *Controller) Key(b ...byte) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.scanning {
		return 0
	}
	n := min(len(b), outQueueLen-len(c.kbdQueue))
	c.kbdQueue = append(c.kbdQueue, b[:n]...)
	c.finishLocked(false)
	return n
}

// A20 reports whether the guest has the A20 gate enabled (output port bit
// 1). The controller only records it; masking address line 20 is up to the
// owner.
func (c *Controller) A20() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.outPort&OutPortA20 != 0
}

// LEDs returns the keyboard LED state last set by the guest: bit 0 scroll
// lock, bit 1 num lock, bit 2 caps lock.
func (c *Controller) LEDs() byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.leds
}

// Anomalies returns how many times each kind of invalid guest access has
// happened, for diagnostics and tests.
func (c *Controller) Anomalies() map[string]uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.anomalies.Counts()
}

// finishLocked refills an empty output buffer and drives IRQ 1. pulse asks
// for a low-then-high edge when the guest just emptied the buffer and a new
// byte took its place.
func (c *Controller) finishLocked(pulse bool) {
	if !c.obf {
		switch {
		case len(c.ctlQueue) > 0:
			c.outByte, c.ctlQueue = c.ctlQueue[0], c.ctlQueue[1:]
			c.obf = true
		case len(c.kbdQueue) > 0 && c.ram[0]&CmdByteKbdDisable == 0:
			c.outByte, c.kbdQueue = c.kbdQueue[0], c.kbdQueue[1:]
			c.obf = true
		default:
			pulse = false
		}
	}
	high := c.obf && c.ram[0]&CmdByteKbdInt != 0
	if pulse && high && c.irqHigh {
		c.irq.SetLevel(false)
		c.irq.SetLevel(true)
		return
	}
	if high != c.irqHigh {
		c.irqHigh = high
		c.irq.SetLevel(high)
	}
}
