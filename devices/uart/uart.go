// Package uart models a National Semiconductor PC16550D-compatible UART (the
// "16550A" every PC serial port emulates), register for register, with no
// knowledge of KVM or of how port accesses reach it.
//
// The guest sees eight byte-wide registers at offsets 0-7 of the port range
// (COM1 is 0x3f8-0x3ff on IRQ 4). Transmitted bytes go to an io.Writer; host
// input is put on the receive side with Enqueue or Feed. The interrupt line is
// recomputed after every register access, every enqueue and every character
// timeout, and is gated by MCR OUT2 the way PC serial cards gate it.
//
// What is modelled, from the PC16550D datasheet:
//
//   - RBR/THR, IER, IIR/FCR, LCR, MCR, LSR, MSR, SCR and the divisor latch
//     DLL/DLM (selected by LCR bit 7, DLAB).
//   - A 16-byte receive FIFO with the FCR trigger levels 1, 4, 8 and 14, the
//     FIFO enable bit (toggling it clears the FIFOs) and the RX/TX clear bits;
//     with FIFOs disabled the receiver holds one byte, as a 16450 does.
//   - The character-timeout indication: a FIFO holding data below the trigger
//     level raises it when nothing has entered or left the FIFO for four
//     character times at the programmed rate and format (or Config.CharTimeout).
//   - IIR priority: receiver line status > received data available or
//     character timeout > THR empty > modem status, and IIR bits 6-7 set when
//     the FIFOs are enabled.
//   - THRE interrupts: pending when THR is empty and IER.ETBEI goes from 0 to
//     1, and whenever a transmission completes; cleared by reading IIR while it
//     is the reported source, or by writing THR.
//   - Overrun: a byte arriving at a full receiver is lost and sets LSR.OE
//     (reading LSR clears it). In FIFO mode this is the datasheet's behaviour;
//     a real 16450 would instead overwrite the byte in RBR.
//   - Loopback (MCR bit 4): transmitted bytes go to the receiver and not to
//     the host, DTR/RTS/OUT1/OUT2 loop to DSR/CTS/RI/DCD, and host input is
//     held back because the serial input is disconnected.
//   - Modem status: outside loopback the virtual line reports DCD, DSR and CTS
//     asserted (a cable with a ready peer); delta bits are set on every change
//     and cleared by reading MSR.
//
// What is deliberately not modelled: transmission takes no time (THR and the
// transmitter shift register are always empty again by the time the write
// returns, so LSR.THRE and LSR.TEMT read 1 and there is no transmit FIFO to
// fill); line format (word length, parity, stop bits) and the divisor are
// stored for the guest to read back and time the character timeout, but do not
// change the bytes, because a virtual line carries whole bytes and a guest
// that prints before programming LCR (reset value: 5-bit words) must still be
// readable; parity, framing and break errors never occur; DMA mode is stored
// only.
//
// Accesses: every register is one byte wide. A read of any other size, or of
// an offset past 7, returns all-ones; such a write is ignored; both are counted
// and logged (see Anomalies). Writes to the read-only LSR and MSR are ignored
// the same way.
//
// Concurrency: a UART is safe for concurrent use. Its mutex is held while it
// calls the IRQLine and the output io.Writer, so neither may call back into the
// UART (lock order: UART mutex -> IRQ line -> writer internals). A writer that
// blocks stalls the vCPU that wrote THR, as a slow line would.
package uart

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"ember/devices"
)

// Where PC firmware and operating systems expect the serial ports, and the
// size of a UART's port range; the bus wiring uses these.
const (
	COM1Base = 0x3f8 // first serial port, I/O base
	COM1IRQ  = 4     // first serial port, ISA IRQ
	COM2Base = 0x2f8 // second serial port, I/O base
	COM2IRQ  = 3     // second serial port, ISA IRQ
	PortLen  = 8     // registers occupy offsets 0-7
	FIFOSize = 16    // depth of the 16550A receive FIFO
)

// Register offsets within the port range. RBR/THR and IER share offsets 0 and
// 1 with DLL/DLM, selected by LCR.DLAB; IIR (read) and FCR (write) share 2.
const (
	RegData  = 0 // RBR (read), THR (write); DLL when DLAB=1
	RegIER   = 1 // interrupt enable; DLM when DLAB=1
	RegIIR   = 2 // interrupt identification (read)
	RegFCR   = 2 // FIFO control (write)
	RegLCR   = 3 // line control
	RegMCR   = 4 // modem control
	RegLSR   = 5 // line status
	RegMSR   = 6 // modem status
	RegSCR   = 7 // scratch
	RegDLL   = 0 // divisor latch, low byte (DLAB=1)
	RegDLM   = 1 // divisor latch, high byte (DLAB=1)
	regCount = PortLen
)

// IER bits.
const (
	IERRxData     = 0x01 // ERBFI: received data available / character timeout
	IERTHREmpty   = 0x02 // ETBEI: transmitter holding register empty
	IERLineStatus = 0x04 // ELSI: receiver line status
	IERModem      = 0x08 // EDSSI: modem status
	ierMask       = 0x0f
)

// IIR values (bits 0-3; bit 0 clear means an interrupt is pending) and the
// FIFO-enabled bits 6-7.
const (
	IIRNoInterrupt = 0x01
	IIRModem       = 0x00
	IIRTHREmpty    = 0x02
	IIRRxData      = 0x04
	IIRLineStatus  = 0x06
	IIRTimeout     = 0x0c
	IIRFIFOEnabled = 0xc0
)

// FCR bits.
const (
	FCREnable  = 0x01 // enable both FIFOs; changing it clears them
	FCRClearRx = 0x02 // clear the receive FIFO (self-clearing)
	FCRClearTx = 0x04 // clear the transmit FIFO (self-clearing)
	FCRDMA     = 0x08 // DMA mode select (stored only)
	FCRTrigger = 0xc0 // receive trigger level: 1, 4, 8 or 14 bytes
)

// LCR bits.
const (
	LCRWordLen = 0x03 // word length 5 + n bits
	LCRStop    = 0x04 // 2 stop bits (1.5 with 5-bit words)
	LCRParity  = 0x08 // parity enable
	LCRBreak   = 0x40 // set break (stored only)
	LCRDLAB    = 0x80 // divisor latch access
)

// MCR bits.
const (
	MCRDTR  = 0x01
	MCRRTS  = 0x02
	MCROut1 = 0x04
	MCROut2 = 0x08 // on a PC, enables the UART's interrupt onto the ISA bus
	MCRLoop = 0x10
	mcrMask = 0x1f
)

// LSR bits.
const (
	LSRDataReady = 0x01
	LSROverrun   = 0x02
	LSRParity    = 0x04
	LSRFraming   = 0x08
	LSRBreak     = 0x10
	LSRTHREmpty  = 0x20
	LSRTxEmpty   = 0x40
	LSRFIFOError = 0x80
	lsrErrors    = LSROverrun | LSRParity | LSRFraming | LSRBreak
)

// MSR bits.
const (
	MSRDeltaCTS = 0x01
	MSRDeltaDSR = 0x02
	MSRTrailRI  = 0x04 // RI went from asserted to deasserted
	MSRDeltaDCD = 0x08
	MSRCTS      = 0x10
	MSRDSR      = 0x20
	MSRRI       = 0x40
	MSRDCD      = 0x80
	msrDeltas   = 0x0f
	// msrIdle is what the virtual line reports outside loopback: a peer
	// that is present (DSR, DCD) and ready to receive (CTS).
	msrIdle = MSRDCD | MSRDSR | MSRCTS
)

// inputClock is the PC serial card's 1.8432 MHz crystal divided by 16, the
// baud rate of divisor 1.
const inputClock = 115200

// resetDivisor is the divisor a UART starts with (9600 baud), which the
// datasheet leaves undefined; it only matters for the character timeout.
const resetDivisor = 12

// Config is what the owner supplies to New. The zero value is a UART with no
// interrupt line and output discarded.
type Config struct {
	// IRQ is the interrupt line (IRQ 4 for COM1). Nil means not connected.
	IRQ devices.IRQLine
	// Output receives every byte the guest transmits outside loopback.
	// Nil discards output. Write errors are counted and logged.
	Output io.Writer
	// Logger receives reports of invalid guest accesses. Nil means
	// slog.Default().
	Logger *slog.Logger
	// CharTimeout overrides the character-timeout delay. Zero means four
	// character times at the rate and format the guest programmed; a
	// negative value disables the timeout (data below the trigger level then
	// raises no interrupt, so only use it in tests).
	CharTimeout time.Duration
}

// UART is one 16550A. Create it with New; it implements devices.Device.
type UART struct {
	mu        sync.Mutex
	irq       devices.IRQLine
	out       io.Writer
	anomalies *devices.Anomalies
	timeoutD  time.Duration

	ier, lcr, mcr, scr byte
	fcr                byte // FCREnable | FCRDMA | FCRTrigger as programmed
	lsrErr             byte // the sticky error bits of LSR
	msrLines           byte // MSR bits 4-7: the modem inputs now
	msrDelta           byte // MSR bits 0-3
	dll, dlm           byte

	rx     [FIFOSize]byte
	rxHead int
	rxLen  int
	rbr    byte // last byte read, what an empty RBR reads back

	threPending    bool // a THR-empty interrupt is waiting to be reported
	timeoutPending bool // the character-timeout indication is raised

	timer      *time.Timer
	toArmed    bool
	toDeadline time.Time

	irqHigh bool
	roomCh  chan struct{} // closed when receive room appears; nil if nobody waits
}

var _ devices.Device = (*UART)(nil)

// New returns a UART in its reset state.
func New(cfg Config) *UART {
	u := &UART{
		irq:       cfg.IRQ,
		out:       cfg.Output,
		anomalies: devices.NewAnomalies(cfg.Logger, "uart"),
		timeoutD:  cfg.CharTimeout,
	}
	if u.irq == nil {
		u.irq = devices.NoIRQ{}
	}
	if u.out == nil {
		u.out = io.Discard
	}
	u.mu.Lock()
	u.resetLocked()
	u.mu.Unlock()
	return u
}

// Reset puts the UART in the state the datasheet gives after a master reset
// (the VM's reset): all registers cleared except LSR (THRE and TEMT set) and
// the modem inputs, FIFOs emptied. The scratch register and divisor latch are
// not affected by a master reset and keep their values.
func (u *UART) Reset() {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.resetLocked()
	u.finishLocked()
}

func (u *UART) resetLocked() {
	u.ier, u.lcr, u.mcr, u.fcr, u.lsrErr = 0, 0, 0, 0, 0
	if u.dll == 0 && u.dlm == 0 {
		u.dll = resetDivisor
	}
	u.msrLines = u.modemInputs()
	u.msrDelta = 0
	u.clearRx()
	u.threPending = false
}

// Read performs a guest read of size len(data) at offset (see the package
// comment for unsupported sizes and offsets).
func (u *UART) Read(offset uint64, data []byte) {
	if len(data) != 1 || offset >= regCount {
		devices.FillOnes(data)
		u.mu.Lock()
		u.anomalies.Report("unsupported read", "offset", offset, "size", len(data))
		u.mu.Unlock()
		return
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	data[0] = u.readReg(offset)
	u.finishLocked()
}

// Write performs a guest write of size len(data) at offset (see the package
// comment for unsupported sizes and offsets).
func (u *UART) Write(offset uint64, data []byte) {
	if len(data) != 1 || offset >= regCount {
		u.mu.Lock()
		u.anomalies.Report("unsupported write", "offset", offset, "size", len(data))
		u.mu.Unlock()
		return
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	u.writeReg(offset, data[0])
	u.finishLocked()
}

func (u *UART) readReg(offset uint64) byte {
	dlab := u.lcr&LCRDLAB != 0
	switch offset {
	case RegData:
		if dlab {
			return u.dll
		}
		if u.rxLen > 0 {
			u.rbr = u.rx[u.rxHead]
			u.rxHead = (u.rxHead + 1) % FIFOSize
			u.rxLen--
			u.rxActivity()
		}
		return u.rbr
	case RegIER:
		if dlab {
			return u.dlm
		}
		return u.ier
	case RegIIR:
		id := u.pending()
		if id == IIRTHREmpty {
			// Reading IIR is one of the two ways to clear a THRE
			// interrupt, but only when it is the source reported.
			u.threPending = false
		}
		if u.fcr&FCREnable != 0 {
			id |= IIRFIFOEnabled
		}
		return id
	case RegLCR:
		return u.lcr
	case RegMCR:
		return u.mcr
	case RegLSR:
		v := u.lsrErr | LSRTHREmpty | LSRTxEmpty
		if u.rxLen > 0 {
			v |= LSRDataReady
		}
		u.lsrErr = 0 // the error bits clear on read
		return v
	case RegMSR:
		v := u.msrLines | u.msrDelta
		u.msrDelta = 0
		return v
	default: // RegSCR
		return u.scr
	}
}

func (u *UART) writeReg(offset uint64, v byte) {
	dlab := u.lcr&LCRDLAB != 0
	switch offset {
	case RegData:
		if dlab {
			u.dll = v
			return
		}
		u.transmit(v)
	case RegIER:
		if dlab {
			u.dlm = v
			return
		}
		old := u.ier
		u.ier = v & ierMask
		if u.ier&IERTHREmpty != 0 && old&IERTHREmpty == 0 {
			// THR is always empty here, and enabling ETBEI while it
			// is empty raises the interrupt.
			u.threPending = true
		}
	case RegFCR:
		u.writeFCR(v)
	case RegLCR:
		u.lcr = v
	case RegMCR:
		u.mcr = v & mcrMask
		u.updateModemInputs()
	case RegLSR:
		u.anomalies.Report("write to read-only LSR ignored", "value", v)
	case RegMSR:
		u.anomalies.Report("write to read-only MSR ignored", "value", v)
	default: // RegSCR
		u.scr = v
	}
}

// transmit sends v: to the receiver in loopback, to the host otherwise. The
// transmission completes at once, so THR is empty again and a new THRE
// interrupt is pending when this returns.
func (u *UART) transmit(v byte) {
	u.threPending = false
	if u.mcr&MCRLoop != 0 {
		if u.receive(v) {
			u.rxActivity()
		}
	} else if _, err := u.out.Write([]byte{v}); err != nil {
		u.anomalies.Report("output write failed", "err", err)
	}
	u.threPending = true
}

func (u *UART) writeFCR(v byte) {
	if v&FCREnable != u.fcr&FCREnable {
		// Switching between FIFO and 16450 mode clears the FIFOs.
		u.clearRx()
	}
	if v&FCREnable == 0 {
		// The other FCR bits are only programmed while FCR0 is set.
		u.fcr = 0
		return
	}
	u.fcr = v & (FCREnable | FCRDMA | FCRTrigger)
	if v&FCRClearRx != 0 {
		u.clearRx()
	}
	// FCRClearTx: the transmit FIFO is always empty.
}

// capacity is how many bytes the receiver holds: the FIFO, or RBR alone.
func (u *UART) capacity() int {
	if u.fcr&FCREnable != 0 {
		return FIFOSize
	}
	return 1
}

// trigger is the receive FIFO level that raises "data available".
func (u *UART) trigger() int {
	if u.fcr&FCREnable == 0 {
		return 1
	}
	return [4]int{1, 4, 8, 14}[u.fcr>>6]
}

// receive puts b in the receiver, or records an overrun if it is full.
func (u *UART) receive(b byte) bool {
	if u.rxLen >= u.capacity() {
		u.lsrErr |= LSROverrun
		return false
	}
	u.rx[(u.rxHead+u.rxLen)%FIFOSize] = b
	u.rxLen++
	return true
}

func (u *UART) clearRx() {
	u.rxHead, u.rxLen = 0, 0
	u.rxActivity()
}

// room is how many bytes host input may add now. In loopback the serial
// input is disconnected, so none.
func (u *UART) room() int {
	if u.mcr&MCRLoop != 0 {
		return 0
	}
	return u.capacity() - u.rxLen
}

// modemInputs is what MSR bits 4-7 read now.
func (u *UART) modemInputs() byte {
	if u.mcr&MCRLoop == 0 {
		return msrIdle
	}
	var v byte
	if u.mcr&MCRRTS != 0 {
		v |= MSRCTS
	}
	if u.mcr&MCRDTR != 0 {
		v |= MSRDSR
	}
	if u.mcr&MCROut1 != 0 {
		v |= MSRRI
	}
	if u.mcr&MCROut2 != 0 {
		v |= MSRDCD
	}
	return v
}

func (u *UART) updateModemInputs() {
	now := u.modemInputs()
	changed := now ^ u.msrLines
	if changed&MSRCTS != 0 {
		u.msrDelta |= MSRDeltaCTS
	}
	if changed&MSRDSR != 0 {
		u.msrDelta |= MSRDeltaDSR
	}
	if changed&MSRDCD != 0 {
		u.msrDelta |= MSRDeltaDCD
	}
	if u.msrLines&MSRRI != 0 && now&MSRRI == 0 {
		u.msrDelta |= MSRTrailRI
	}
	u.msrLines = now
}

// pending returns the IIR identification of the highest-priority enabled
// interrupt, or IIRNoInterrupt.
func (u *UART) pending() byte {
	switch {
	case u.ier&IERLineStatus != 0 && u.lsrErr&lsrErrors != 0:
		return IIRLineStatus
	case u.ier&IERRxData != 0 && u.rxLen > 0 && u.rxLen >= u.trigger():
		return IIRRxData
	case u.ier&IERRxData != 0 && u.rxLen > 0 && u.timeoutPending:
		return IIRTimeout
	case u.ier&IERTHREmpty != 0 && u.threPending:
		return IIRTHREmpty
	case u.ier&IERModem != 0 && u.msrDelta != 0:
		return IIRModem
	}
	return IIRNoInterrupt
}

// finishLocked brings the outputs up to date after any state change: the
// interrupt line and the waiters for receive room.
func (u *UART) finishLocked() {
	// On a PC the UART's interrupt output reaches the bus through a buffer
	// enabled by the OUT2 pin; in loopback the chip forces OUT2 inactive.
	high := u.pending() != IIRNoInterrupt && u.mcr&MCROut2 != 0 && u.mcr&MCRLoop == 0
	if high != u.irqHigh {
		u.irqHigh = high
		u.irq.SetLevel(high)
	}
	if u.roomCh != nil && u.room() > 0 {
		close(u.roomCh)
		u.roomCh = nil
	}
}

// rxActivity records that a byte entered or left the receiver: the
// character-timeout indication clears and its four-character timer restarts
// if the FIFO still holds data.
func (u *UART) rxActivity() {
	u.timeoutPending = false
	if u.fcr&FCREnable == 0 || u.rxLen == 0 || u.timeoutD < 0 {
		u.toArmed = false
		if u.timer != nil {
			u.timer.Stop()
		}
		return
	}
	d := u.charTimeout()
	u.toArmed = true
	u.toDeadline = time.Now().Add(d)
	if u.timer == nil {
		u.timer = time.AfterFunc(d, u.timeoutFired)
	} else {
		u.timer.Reset(d)
	}
}

// timeoutFired runs on the timer's goroutine.
func (u *UART) timeoutFired() {
	u.mu.Lock()
	defer u.mu.Unlock()
	if !u.toArmed || time.Now().Before(u.toDeadline) {
		return // stopped or restarted since this firing was scheduled
	}
	u.toArmed = false
	if u.fcr&FCREnable != 0 && u.rxLen > 0 {
		u.timeoutPending = true
		u.finishLocked()
	}
}

// charTimeout is four character times at the programmed rate and format.
func (u *UART) charTimeout() time.Duration {
	if u.timeoutD > 0 {
		return u.timeoutD
	}
	div := int64(u.dlm)<<8 | int64(u.dll)
	if div == 0 {
		div = 1 << 16
	}
	bits := int64(1 + 5 + u.lcr&LCRWordLen + 1) // start, data, stop
	if u.lcr&LCRParity != 0 {
		bits++
	}
	if u.lcr&LCRStop != 0 {
		bits++
	}
	return time.Duration(4 * bits * div * int64(time.Second) / inputClock)
}

// Enqueue puts host input on the receive line as if it had just arrived on
// the wire, and returns how many bytes fit. If b does not fit, the rest is
// lost and LSR.OE is set, exactly as on an overrun; a feeder that must not
// lose input waits with WaitRoom or uses Feed. While the guest has the UART
// in loopback the serial input is disconnected and Enqueue takes nothing
// (and sets no error).
func (u *UART) Enqueue(b []byte) int {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.mcr&MCRLoop != 0 {
		return 0
	}
	n := 0
	for _, c := range b {
		if !u.receive(c) {
			break
		}
		n++
	}
	if n > 0 {
		u.rxActivity()
	}
	u.finishLocked()
	return n
}

// enqueueRoom takes as much of b as fits without an overrun.
func (u *UART) enqueueRoom(b []byte) int {
	u.mu.Lock()
	defer u.mu.Unlock()
	n := min(len(b), u.room())
	for _, c := range b[:n] {
		u.receive(c)
	}
	if n > 0 {
		u.rxActivity()
		u.finishLocked()
	}
	return n
}

// WaitRoom blocks until the receiver can take at least one byte of host
// input (the guest has read from a full FIFO, or left loopback), or ctx is
// done, in which case it returns ctx.Err().
func (u *UART) WaitRoom(ctx context.Context) error {
	for {
		u.mu.Lock()
		if u.room() > 0 {
			u.mu.Unlock()
			return nil
		}
		if u.roomCh == nil {
			u.roomCh = make(chan struct{})
		}
		ch := u.roomCh
		u.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// Feed copies r to the receive side with flow control: it never overruns the
// FIFO, waiting for the guest to make room instead. It returns nil when r
// reports io.EOF, ctx.Err() when ctx is done while waiting for room, or r's
// error. A Read blocked in r is not interrupted by ctx; close r to stop it.
func (u *UART) Feed(ctx context.Context, r io.Reader) error {
	buf := make([]byte, 256)
	for {
		n, rerr := r.Read(buf)
		p := buf[:n]
		for len(p) > 0 {
			if err := u.WaitRoom(ctx); err != nil {
				return err
			}
			p = p[u.enqueueRoom(p):]
		}
		if errors.Is(rerr, io.EOF) {
			return nil
		}
		if rerr != nil {
			return rerr
		}
	}
}

// Anomalies returns how many times each kind of invalid guest access has
// happened, for diagnostics and tests.
func (u *UART) Anomalies() map[string]uint64 {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.anomalies.Counts()
}

// Describe gives a line for a report on a guest that seems stuck (ember
// run's SIGUSR1): the interrupt enables, the interrupt the IIR would report
// (without the read's side effect), the line status, the modem control, the
// bytes waiting in the receiver, and the interrupt line's level.
func (u *UART) Describe() string {
	u.mu.Lock()
	defer u.mu.Unlock()
	lsr := u.lsrErr | LSRTHREmpty | LSRTxEmpty
	if u.rxLen > 0 {
		lsr |= LSRDataReady
	}
	level := "low"
	if u.irqHigh {
		level = "high"
	}
	return fmt.Sprintf("IER %#x IIR %#x LSR %#x MCR %#x LCR %#x, %d bytes received and not read, interrupt line %s",
		u.ier, u.pending(), lsr, u.mcr, u.lcr, u.rxLen, level)
}
