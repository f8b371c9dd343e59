package uart_test

import (
	"bytes"
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"ember/devices/devicetest"
	"ember/devices/uart"
)

// lockedBuffer is the host side of the line: what the guest transmitted.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// guest drives a UART the way a guest driver does, through port accesses.
type guest struct {
	t   *testing.T
	u   *uart.UART
	irq *devicetest.IRQ
	out *lockedBuffer
}

func newGuest(t *testing.T, timeout time.Duration) *guest {
	t.Helper()
	g := &guest{t: t, irq: &devicetest.IRQ{}, out: &lockedBuffer{}}
	g.u = uart.New(uart.Config{IRQ: g.irq, Output: g.out, CharTimeout: timeout})
	return g
}

func (g *guest) inb(off uint64) byte {
	g.t.Helper()
	var b [1]byte
	g.u.Read(off, b[:])
	return b[0]
}

func (g *guest) outb(off uint64, v byte) {
	g.t.Helper()
	g.u.Write(off, []byte{v})
}

func (g *guest) expect(what string, off uint64, want byte) {
	g.t.Helper()
	if got := g.inb(off); got != want {
		g.t.Errorf("%s: read offset %d = %#02x, want %#02x", what, off, got, want)
	}
}

func (g *guest) expectIRQ(what string, want bool) {
	g.t.Helper()
	if got := g.irq.High(); got != want {
		g.t.Errorf("%s: IRQ line high = %v, want %v", what, got, want)
	}
}

const noTimeout = -1

func TestResetState(t *testing.T) {
	tests := []struct {
		name string
		off  uint64
		want byte
	}{
		{"IER is zero after reset", uart.RegIER, 0},
		{"IIR reports no interrupt, FIFOs off", uart.RegIIR, uart.IIRNoInterrupt},
		{"LCR is zero after reset", uart.RegLCR, 0},
		{"MCR is zero after reset", uart.RegMCR, 0},
		{"LSR reports THRE and TEMT after reset", uart.RegLSR, uart.LSRTHREmpty | uart.LSRTxEmpty},
		{"MSR reports DCD, DSR, CTS of a ready peer", uart.RegMSR, uart.MSRDCD | uart.MSRDSR | uart.MSRCTS},
		{"SCR is zero after reset", uart.RegSCR, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := newGuest(t, noTimeout)
			g.expect(tt.name, tt.off, tt.want)
			g.expectIRQ("after reset", false)
		})
	}
}

func TestScratchRegisterHoldsAnyValue(t *testing.T) {
	g := newGuest(t, noTimeout)
	for _, v := range []byte{0x00, 0x55, 0xaa, 0xff} {
		g.outb(uart.RegSCR, v)
		g.expect("scratch", uart.RegSCR, v)
	}
}

func TestDivisorLatch(t *testing.T) {
	g := newGuest(t, noTimeout)
	g.outb(uart.RegIER, uart.IERRxData)
	g.outb(uart.RegLCR, uart.LCRDLAB|0x03)
	g.outb(uart.RegDLL, 0x01) // 115200 baud
	g.outb(uart.RegDLM, 0x00)
	g.expect("DLL with DLAB set", uart.RegDLL, 0x01)
	g.expect("DLM with DLAB set", uart.RegDLM, 0x00)
	if out := g.out.String(); out != "" {
		t.Errorf("writing DLL transmitted %q", out)
	}
	g.outb(uart.RegLCR, 0x03)
	g.expect("IER is back at offset 1 with DLAB clear", uart.RegIER, uart.IERRxData)
	g.expect("LCR keeps the format", uart.RegLCR, 0x03)
	g.outb(uart.RegData, 'x')
	if out := g.out.String(); out != "x" {
		t.Errorf("THR write with DLAB clear: output %q, want %q", out, "x")
	}
}

func TestTransmitGoesToOutput(t *testing.T) {
	g := newGuest(t, noTimeout)
	for _, c := range []byte("hello\n") {
		g.outb(uart.RegData, c)
	}
	if got := g.out.String(); got != "hello\n" {
		t.Errorf("output = %q", got)
	}
	g.expect("LSR after transmit", uart.RegLSR, uart.LSRTHREmpty|uart.LSRTxEmpty)
}

func TestLoopback(t *testing.T) {
	t.Run("transmitted bytes come back on RBR, not to the host", func(t *testing.T) {
		g := newGuest(t, noTimeout)
		g.outb(uart.RegFCR, uart.FCREnable)
		g.outb(uart.RegMCR, uart.MCRLoop)
		for _, c := range []byte("ping") {
			g.outb(uart.RegData, c)
		}
		var got []byte
		for g.inb(uart.RegLSR)&uart.LSRDataReady != 0 {
			got = append(got, g.inb(uart.RegData))
		}
		if string(got) != "ping" {
			t.Errorf("looped back %q, want %q", got, "ping")
		}
		if out := g.out.String(); out != "" {
			t.Errorf("host saw %q in loopback", out)
		}
	})
	t.Run("host input is held back while the input is disconnected", func(t *testing.T) {
		g := newGuest(t, noTimeout)
		g.outb(uart.RegMCR, uart.MCRLoop)
		if n := g.u.Enqueue([]byte("x")); n != 0 {
			t.Errorf("Enqueue in loopback took %d bytes", n)
		}
		g.outb(uart.RegMCR, 0)
		if n := g.u.Enqueue([]byte("x")); n != 1 {
			t.Errorf("Enqueue after loopback took %d bytes", n)
		}
	})
	modem := []struct {
		name string
		mcr  byte
		want byte // MSR bits 4-7
	}{
		{"RTS loops to CTS", uart.MCRRTS, uart.MSRCTS},
		{"DTR loops to DSR", uart.MCRDTR, uart.MSRDSR},
		{"OUT1 loops to RI", uart.MCROut1, uart.MSRRI},
		{"OUT2 loops to DCD", uart.MCROut2, uart.MSRDCD},
		{"Linux 8250 probe: RTS|OUT2 reads 0x90", uart.MCRRTS | uart.MCROut2, 0x90},
		{"nothing asserted reads 0", 0, 0},
	}
	for _, tt := range modem {
		t.Run(tt.name, func(t *testing.T) {
			g := newGuest(t, noTimeout)
			g.outb(uart.RegMCR, uart.MCRLoop|tt.mcr)
			if got := g.inb(uart.RegMSR) & 0xf0; got != tt.want {
				t.Errorf("MSR = %#02x, want %#02x", got, tt.want)
			}
		})
	}
}

func TestModemStatusDeltas(t *testing.T) {
	g := newGuest(t, noTimeout)
	g.outb(uart.RegMCR, uart.MCRLoop|uart.MCROut1)
	// Entering loopback dropped CTS, DSR and DCD; OUT1 raised RI.
	g.expect("deltas after entering loopback", uart.RegMSR,
		uart.MSRRI|uart.MSRDeltaCTS|uart.MSRDeltaDSR|uart.MSRDeltaDCD)
	g.expect("MSR read clears the deltas", uart.RegMSR, uart.MSRRI)
	g.outb(uart.RegMCR, uart.MCRLoop)
	g.expect("RI trailing edge", uart.RegMSR, uart.MSRTrailRI)
}

func TestInterruptDrivenTransmit(t *testing.T) {
	g := newGuest(t, noTimeout)
	g.outb(uart.RegMCR, uart.MCROut2|uart.MCRDTR|uart.MCRRTS)
	g.expectIRQ("before ETBEI", false)

	g.outb(uart.RegIER, uart.IERTHREmpty)
	g.expectIRQ("enabling ETBEI with THR empty", true)
	g.expect("IIR names THR empty", uart.RegIIR, uart.IIRTHREmpty)
	g.expectIRQ("reading IIR that reported THRE", false)
	g.expect("IIR after the THRE was reported", uart.RegIIR, uart.IIRNoInterrupt)

	g.outb(uart.RegIER, uart.IERTHREmpty)
	g.expectIRQ("rewriting IER with ETBEI already set", false)

	// Writing THR clears the THRE interrupt; the byte leaves at once, so
	// THR is empty again and a fresh THRE interrupt asks for the next one.
	g.outb(uart.RegData, 'a')
	g.expectIRQ("after THR write and instant transmission", true)
	g.expect("IIR after transmission", uart.RegIIR, uart.IIRTHREmpty)
	g.expectIRQ("reading IIR", false)

	g.outb(uart.RegData, 'b')
	g.outb(uart.RegIER, 0)
	g.expectIRQ("driver stops TX by clearing ETBEI", false)
	g.expect("IIR with ETBEI clear", uart.RegIIR, uart.IIRNoInterrupt)
	if got := g.out.String(); got != "ab" {
		t.Errorf("output = %q", got)
	}
	// Each transmitted byte gave the PIC a new edge: ETBEI, 'a', 'b'.
	if got := g.irq.Rising(); got != 3 {
		t.Errorf("rising edges = %d, want 3 (history %v)", got, g.irq.History())
	}
}

func TestReceiveTriggerLevels(t *testing.T) {
	tests := []struct {
		name    string
		fcr     byte
		trigger int
	}{
		{"FCR trigger 00 raises data available at 1 byte", 0x00, 1},
		{"FCR trigger 01 raises data available at 4 bytes", 0x40, 4},
		{"FCR trigger 10 raises data available at 8 bytes", 0x80, 8},
		{"FCR trigger 11 raises data available at 14 bytes", 0xc0, 14},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := newGuest(t, noTimeout)
			g.outb(uart.RegFCR, uart.FCREnable|tt.fcr)
			g.outb(uart.RegMCR, uart.MCROut2)
			g.outb(uart.RegIER, uart.IERRxData)
			if tt.trigger > 1 {
				g.u.Enqueue(bytes.Repeat([]byte{'x'}, tt.trigger-1))
				g.expectIRQ("one byte below the trigger level", false)
				g.expect("IIR below trigger", uart.RegIIR, uart.IIRFIFOEnabled|uart.IIRNoInterrupt)
				g.expect("LSR below trigger", uart.RegLSR, uart.LSRDataReady|uart.LSRTHREmpty|uart.LSRTxEmpty)
			}
			g.u.Enqueue([]byte{'y'})
			g.expectIRQ("at the trigger level", true)
			g.expect("IIR at trigger", uart.RegIIR, uart.IIRFIFOEnabled|uart.IIRRxData)
			g.inb(uart.RegData)
			if tt.trigger > 1 {
				g.expectIRQ("reading one byte drops below the trigger level", false)
			}
			for g.inb(uart.RegLSR)&uart.LSRDataReady != 0 {
				g.inb(uart.RegData)
			}
			g.expectIRQ("FIFO drained", false)
		})
	}
}

func TestCharacterTimeout(t *testing.T) {
	g := newGuest(t, time.Millisecond)
	g.outb(uart.RegFCR, uart.FCREnable|0xc0) // trigger 14
	g.outb(uart.RegMCR, uart.MCROut2)
	g.outb(uart.RegIER, uart.IERRxData)
	g.u.Enqueue([]byte("hi"))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := g.irq.Wait(ctx, true); err != nil {
		t.Fatalf("no character-timeout interrupt: %v", err)
	}
	g.expect("IIR names the character timeout", uart.RegIIR, uart.IIRFIFOEnabled|uart.IIRTimeout)
	g.expect("first byte", uart.RegData, 'h')
	g.expectIRQ("reading RBR clears the timeout indication", false)
	if err := g.irq.Wait(ctx, true); err != nil {
		t.Fatalf("no second character-timeout interrupt: %v", err)
	}
	g.expect("second byte", uart.RegData, 'i')
	g.expectIRQ("FIFO empty", false)
}

func TestOverrun(t *testing.T) {
	t.Run("FIFO mode keeps 16 bytes and loses the rest", func(t *testing.T) {
		g := newGuest(t, noTimeout)
		g.outb(uart.RegFCR, uart.FCREnable)
		g.outb(uart.RegMCR, uart.MCROut2)
		g.outb(uart.RegIER, uart.IERLineStatus)
		in := []byte("0123456789abcdefXYZ")
		if n := g.u.Enqueue(in); n != uart.FIFOSize {
			t.Errorf("Enqueue took %d bytes, want %d", n, uart.FIFOSize)
		}
		g.expectIRQ("overrun with ELSI", true)
		g.expect("IIR names receiver line status", uart.RegIIR, uart.IIRFIFOEnabled|uart.IIRLineStatus)
		g.expect("LSR shows OE and DR", uart.RegLSR, uart.LSROverrun|uart.LSRDataReady|uart.LSRTHREmpty|uart.LSRTxEmpty)
		g.expectIRQ("reading LSR clears the line status interrupt", false)
		g.expect("OE clears on read", uart.RegLSR, uart.LSRDataReady|uart.LSRTHREmpty|uart.LSRTxEmpty)
		var got []byte
		for g.inb(uart.RegLSR)&uart.LSRDataReady != 0 {
			got = append(got, g.inb(uart.RegData))
		}
		if string(got) != string(in[:16]) {
			t.Errorf("received %q, want the first 16 bytes", got)
		}
	})
	t.Run("16450 mode holds one byte", func(t *testing.T) {
		g := newGuest(t, noTimeout)
		if n := g.u.Enqueue([]byte("ab")); n != 1 {
			t.Errorf("Enqueue took %d bytes, want 1", n)
		}
		g.expect("LSR", uart.RegLSR, uart.LSROverrun|uart.LSRDataReady|uart.LSRTHREmpty|uart.LSRTxEmpty)
		g.expect("RBR", uart.RegData, 'a')
	})
}

func TestOut2GatesTheInterruptLine(t *testing.T) {
	tests := []struct {
		name string
		mcr  byte
		want bool
	}{
		{"OUT2 clear: source pending, line low", 0, false},
		{"OUT2 set: line follows IIR", uart.MCROut2, true},
		{"DTR/RTS without OUT2: line low", uart.MCRDTR | uart.MCRRTS, false},
		{"loopback forces OUT2 inactive: line low", uart.MCROut2 | uart.MCRLoop, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := newGuest(t, noTimeout)
			g.outb(uart.RegMCR, tt.mcr)
			g.outb(uart.RegIER, uart.IERTHREmpty)
			g.expectIRQ(tt.name, tt.want)
			g.expect("IIR still reports the source", uart.RegIIR, uart.IIRTHREmpty)
		})
	}
	t.Run("setting and clearing OUT2 with a source pending", func(t *testing.T) {
		g := newGuest(t, noTimeout)
		g.outb(uart.RegIER, uart.IERRxData)
		g.u.Enqueue([]byte("k"))
		g.expectIRQ("OUT2 clear", false)
		g.outb(uart.RegMCR, uart.MCROut2)
		g.expectIRQ("OUT2 set", true)
		g.outb(uart.RegMCR, 0)
		g.expectIRQ("OUT2 cleared again", false)
	})
}

func TestInterruptPriority(t *testing.T) {
	g := newGuest(t, noTimeout)
	g.outb(uart.RegMCR, uart.MCROut2)
	g.outb(uart.RegIER, uart.IERRxData|uart.IERTHREmpty|uart.IERLineStatus|uart.IERModem)
	g.u.Enqueue([]byte("ab")) // 16450 mode: 'b' overruns
	// A modem status change: enter and leave loopback.
	g.outb(uart.RegMCR, uart.MCROut2|uart.MCRLoop)
	g.outb(uart.RegMCR, uart.MCROut2)

	g.expect("line status first", uart.RegIIR, uart.IIRLineStatus)
	g.inb(uart.RegLSR)
	g.expect("then received data", uart.RegIIR, uart.IIRRxData)
	g.inb(uart.RegData)
	g.expect("then THR empty", uart.RegIIR, uart.IIRTHREmpty)
	g.expect("then modem status", uart.RegIIR, uart.IIRModem)
	g.expectIRQ("modem status pending", true)
	g.inb(uart.RegMSR)
	g.expect("then nothing", uart.RegIIR, uart.IIRNoInterrupt)
	g.expectIRQ("all sources serviced", false)
}

func TestFIFOControl(t *testing.T) {
	g := newGuest(t, noTimeout)
	g.outb(uart.RegFCR, uart.FCREnable)
	g.expect("IIR bits 6-7 with FIFOs enabled", uart.RegIIR, uart.IIRFIFOEnabled|uart.IIRNoInterrupt)
	g.u.Enqueue([]byte("abc"))
	g.outb(uart.RegFCR, uart.FCREnable|uart.FCRClearRx)
	g.expect("RX clear empties the FIFO", uart.RegLSR, uart.LSRTHREmpty|uart.LSRTxEmpty)
	g.u.Enqueue([]byte("abc"))
	g.outb(uart.RegFCR, 0)
	g.expect("disabling FIFOs clears them", uart.RegLSR, uart.LSRTHREmpty|uart.LSRTxEmpty)
	g.expect("IIR bits 6-7 clear with FIFOs disabled", uart.RegIIR, uart.IIRNoInterrupt)
}

func TestUnsupportedAccesses(t *testing.T) {
	tests := []struct {
		name string
		off  uint64
		size int
	}{
		{"2-byte read of RBR", uart.RegData, 2},
		{"4-byte read of LSR", uart.RegLSR, 4},
		{"byte read past the range", 8, 1},
		{"huge offset", 1 << 63, 1},
		{"empty access", 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := newGuest(t, noTimeout)
			g.u.Enqueue([]byte("z"))
			data := make([]byte, tt.size)
			g.u.Read(tt.off, data)
			if !bytes.Equal(data, bytes.Repeat([]byte{0xff}, tt.size)) {
				t.Errorf("read = % x, want all-ones", data)
			}
			g.u.Write(tt.off, bytes.Repeat([]byte{'w'}, tt.size))
			if out := g.out.String(); out != "" {
				t.Errorf("write transmitted %q", out)
			}
			g.expect("the received byte is still there", uart.RegData, 'z')
			var total uint64
			for _, n := range g.u.Anomalies() {
				total += n
			}
			if total != 2 {
				t.Errorf("anomalies = %v, want 2 counted", g.u.Anomalies())
			}
		})
	}
}

func TestFeedWaitsForRoomInsteadOfOverrunning(t *testing.T) {
	g := newGuest(t, noTimeout)
	g.outb(uart.RegFCR, uart.FCREnable)
	input := strings.Repeat("the quick brown fox ", 10)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- g.u.Feed(ctx, strings.NewReader(input)) }()

	// The guest reads as a polling driver does until Feed has finished
	// and the FIFO is drained.
	var got []byte
	fed := false
	for {
		if g.inb(uart.RegLSR)&uart.LSRDataReady != 0 {
			got = append(got, g.inb(uart.RegData))
			continue
		}
		if fed {
			break
		}
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("Feed: %v", err)
			}
			fed = true
		case <-ctx.Done():
			t.Fatalf("timed out after %d bytes", len(got))
		default:
		}
	}
	if string(got) != input {
		t.Errorf("received %q", got)
	}
	if lsr := g.inb(uart.RegLSR); lsr&uart.LSROverrun != 0 {
		t.Errorf("Feed caused an overrun")
	}
}

func TestWaitRoom(t *testing.T) {
	g := newGuest(t, noTimeout)
	g.u.Enqueue([]byte("a")) // 16450 mode: full
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	woke := make(chan error, 1)
	go func() { woke <- g.u.WaitRoom(ctx) }()
	g.inb(uart.RegData)
	if err := <-woke; err != nil {
		t.Fatalf("WaitRoom: %v", err)
	}
	g.u.Enqueue([]byte("b"))
	short, cancelShort := context.WithCancel(context.Background())
	cancelShort()
	if err := g.u.WaitRoom(short); err == nil {
		t.Errorf("WaitRoom on a full receiver with a done context returned nil")
	}
}

func TestResetRestoresPowerOnState(t *testing.T) {
	g := newGuest(t, noTimeout)
	g.outb(uart.RegMCR, uart.MCROut2)
	g.outb(uart.RegIER, uart.IERTHREmpty)
	g.outb(uart.RegSCR, 0x42)
	g.expectIRQ("before reset", true)
	g.u.Reset()
	g.expectIRQ("after reset", false)
	g.expect("IER", uart.RegIER, 0)
	g.expect("MCR", uart.RegMCR, 0)
	g.expect("scratch survives a reset", uart.RegSCR, 0x42)
}

func TestConcurrentUse(t *testing.T) {
	g := newGuest(t, time.Microsecond)
	g.outb(uart.RegFCR, uart.FCREnable)
	g.outb(uart.RegMCR, uart.MCROut2)
	g.outb(uart.RegIER, 0x0f)
	var wg sync.WaitGroup
	for i := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var b [1]byte
			for j := range 500 {
				g.u.Read(uint64(j%8), b[:])
				g.u.Write(uart.RegData, []byte{byte(i)})
				g.u.Enqueue([]byte{byte(j)})
			}
		}()
	}
	wg.Wait()
	if got := len(g.out.String()); got != 2000 {
		t.Errorf("output %d bytes, want 2000", got)
	}
}

// TestDescribe: the report line shows the interrupt the IIR would report and
// the line's level without clearing the THRE interrupt as a read of IIR does.
func TestDescribe(t *testing.T) {
	g := newGuest(t, noTimeout)
	g.u.Enqueue([]byte("a"))
	g.outb(uart.RegMCR, uart.MCROut2)
	g.outb(uart.RegIER, uart.IERTHREmpty)
	want := "IER 0x2 IIR 0x2 LSR 0x61 MCR 0x8 LCR 0x0, 1 bytes received and not read, interrupt line high"
	for range 2 {
		if got := g.u.Describe(); got != want {
			t.Errorf("Describe() = %q, want %q", got, want)
		}
	}
	g.expect("IIR after Describe", uart.RegIIR, uart.IIRTHREmpty)
	g.expectIRQ("after the IIR read", false)
}
