package i8042_test

import (
	"bytes"
	"sync/atomic"
	"testing"

	"ember/devices/devicetest"
	"ember/devices/i8042"
)

// guest drives the controller the way a guest driver does, through port
// accesses.
type guest struct {
	t      *testing.T
	c      *i8042.Controller
	irq    *devicetest.IRQ
	resets atomic.Int32
}

func newGuest(t *testing.T) *guest {
	t.Helper()
	g := &guest{t: t, irq: &devicetest.IRQ{}}
	g.c = i8042.New(i8042.Config{IRQ: g.irq, Reset: func() { g.resets.Add(1) }})
	return g
}

func (g *guest) status() byte {
	var b [1]byte
	g.c.Read(i8042.CommandOffset, b[:])
	return b[0]
}

func (g *guest) command(cmd byte, params ...byte) {
	g.c.Write(i8042.CommandOffset, []byte{cmd})
	for _, p := range params {
		g.c.Write(i8042.DataOffset, []byte{p})
	}
}

func (g *guest) send(b byte) { g.c.Write(i8042.DataOffset, []byte{b}) }

// readAll reads port 0x60 while the status register says a byte is there,
// the way Linux's i8042_flush does.
func (g *guest) readAll() []byte {
	var got []byte
	for i := 0; i < 64 && g.status()&i8042.StatusOutputFull != 0; i++ {
		var b [1]byte
		g.c.Read(i8042.DataOffset, b[:])
		got = append(got, b[0])
	}
	return got
}

func (g *guest) expectReply(what string, want ...byte) {
	g.t.Helper()
	if got := g.readAll(); !bytes.Equal(got, want) {
		g.t.Errorf("%s: read % x, want % x", what, got, want)
	}
}

func TestControllerCommands(t *testing.T) {
	tests := []struct {
		name   string
		cmd    byte
		params []byte
		want   []byte
	}{
		{"self test 0xAA answers 0x55", i8042.CmdSelfTest, nil, []byte{0x55}},
		{"keyboard interface test 0xAB answers 0x00", i8042.CmdKbdTest, nil, []byte{0x00}},
		{"read command byte after reset", i8042.CmdReadCmdByte, nil, []byte{0x65}},
		{"read output port after reset: reset released, A20 on", i8042.CmdReadOutPort, nil, []byte{0xcf}},
		{"write command byte takes its data byte", i8042.CmdWriteCmdByte, []byte{0x30}, nil},
		{"write output buffer 0xD2 echoes as keyboard data", i8042.CmdWriteKbdOutBuf, []byte{0x5a}, []byte{0x5a}},
		{"keyboard disable answers nothing", i8042.CmdKbdDisable, nil, nil},
		{"internal RAM byte 0x21 reads 0", 0x21, nil, []byte{0x00}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := newGuest(t)
			g.command(tt.cmd, tt.params...)
			g.expectReply(tt.name, tt.want...)
			if g.resets.Load() != 0 {
				t.Errorf("reset fired")
			}
		})
	}
}

func TestCommandByteReadWrite(t *testing.T) {
	g := newGuest(t)
	g.command(i8042.CmdWriteCmdByte, 0x74)
	g.command(i8042.CmdReadCmdByte)
	g.expectReply("command byte written", 0x74)
	if g.status()&i8042.StatusSystem == 0 {
		t.Errorf("status system flag clear with command byte bit 2 set")
	}
	g.command(i8042.CmdWriteCmdByte, 0x00)
	if g.status()&i8042.StatusSystem != 0 {
		t.Errorf("status system flag set with command byte bit 2 clear")
	}
	g.command(0x7f, 0x99)
	g.command(0x3f)
	g.expectReply("internal RAM byte 0x1f", 0x99)
}

func TestStatusRegister(t *testing.T) {
	g := newGuest(t)
	if s := g.status(); s != i8042.StatusUnlocked|i8042.StatusSystem {
		t.Errorf("status after reset = %#02x", s)
	}
	g.command(i8042.CmdSelfTest)
	if s := g.status(); s&(i8042.StatusCommand|i8042.StatusOutputFull) != i8042.StatusCommand|i8042.StatusOutputFull {
		t.Errorf("status after a command with a reply = %#02x, want CMD and OBF", s)
	}
	g.readAll()
	g.send(0xf4)
	if s := g.status(); s&i8042.StatusCommand != 0 || s&i8042.StatusInputFull != 0 {
		t.Errorf("status after a data write = %#02x, want CMD and IBF clear", s)
	}
}

func TestKeyboardDisableEnable(t *testing.T) {
	g := newGuest(t)
	g.command(i8042.CmdKbdDisable)
	g.command(i8042.CmdReadCmdByte)
	g.expectReply("command byte with keyboard disabled", 0x65|i8042.CmdByteKbdDisable)
	if n := g.c.Key(0x1e, 0x9e); n != 2 {
		t.Fatalf("Key took %d bytes", n)
	}
	g.expectReply("keys wait while the keyboard is disabled")
	g.command(i8042.CmdKbdEnable)
	g.expectReply("keys arrive once enabled", 0x1e, 0x9e)
}

func TestCPUReset(t *testing.T) {
	tests := []struct {
		name   string
		cmds   [][]byte // command followed by its data bytes
		resets int32
	}{
		{"0xFE pulses the reset line once", [][]byte{{0xfe}}, 1},
		{"each 0xFE resets once", [][]byte{{0xfe}, {0xfe}, {0xfe}}, 3},
		{"0xFF pulses nothing", [][]byte{{0xff}}, 0},
		{"0xF0 pulses all four lines, reset among them", [][]byte{{0xf0}}, 1},
		{"0xFD pulses line 1, not reset", [][]byte{{0xfd}}, 0},
		{"output port write with bit 0 clear resets", [][]byte{{0xd1, 0xce}}, 1},
		{"output port write with bit 0 set does not", [][]byte{{0xd1, 0xcf}}, 0},
		{"self test does not reset", [][]byte{{0xaa}}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := newGuest(t)
			for _, c := range tt.cmds {
				g.command(c[0], c[1:]...)
			}
			if got := g.resets.Load(); got != tt.resets {
				t.Errorf("reset callback fired %d times, want %d", got, tt.resets)
			}
		})
	}
}

func TestResetCallbackRunsWithoutTheLock(t *testing.T) {
	var c *i8042.Controller
	called := false
	c = i8042.New(i8042.Config{Reset: func() {
		c.Reset() // a VM restart resets its devices; this must not deadlock
		called = true
	}})
	c.Write(i8042.CommandOffset, []byte{i8042.CmdPulseReset})
	if !called {
		t.Fatal("reset callback not called")
	}
}

func TestOutputPortAndA20(t *testing.T) {
	g := newGuest(t)
	if !g.c.A20() {
		t.Errorf("A20 disabled after reset")
	}
	g.command(i8042.CmdWriteOutPort, 0xcd) // A20 off
	if g.c.A20() {
		t.Errorf("A20 still enabled after output port write 0xcd")
	}
	g.command(i8042.CmdReadOutPort)
	g.expectReply("output port", 0xcd)
	g.command(i8042.CmdA20Enable)
	if !g.c.A20() {
		t.Errorf("A20 disabled after 0xDF")
	}
	g.command(i8042.CmdA20Disable)
	if g.c.A20() {
		t.Errorf("A20 enabled after 0xDD")
	}
}

func TestKeyboardInterrupt(t *testing.T) {
	g := newGuest(t)
	g.c.Key(0x1e)
	if !g.irq.High() {
		t.Fatalf("IRQ 1 low with a key waiting and the interrupt enabled")
	}
	g.readAll()
	if g.irq.High() {
		t.Errorf("IRQ 1 high after the byte was read")
	}

	g.irq.Reset()
	g.c.Key(0x1e, 0x9e, 0x30)
	g.readAll()
	if got := g.irq.Rising(); got != 3 {
		t.Errorf("three bytes gave %d rising edges (history %v), want 3", got, g.irq.History())
	}

	g.command(i8042.CmdWriteCmdByte, 0x64) // keyboard interrupt off
	g.c.Key(0x1e)
	if g.irq.High() {
		t.Errorf("IRQ 1 high with the command byte's interrupt bit clear")
	}
	g.command(i8042.CmdWriteCmdByte, 0x65)
	if !g.irq.High() {
		t.Errorf("IRQ 1 low after enabling the interrupt with data waiting")
	}
}

func TestKeyboardCommands(t *testing.T) {
	tests := []struct {
		name  string
		bytes []byte
		want  []byte
	}{
		{"reset answers ACK and self-test passed", []byte{0xff}, []byte{0xfa, 0xaa}},
		{"identify answers MF2, translated", []byte{0xf2}, []byte{0xfa, 0xab, 0x41}},
		{"set LEDs acknowledges command and parameter", []byte{0xed, 0x07}, []byte{0xfa, 0xfa}},
		{"get scan code set", []byte{0xf0, 0x00}, []byte{0xfa, 0xfa, 0x02}},
		{"typematic", []byte{0xf3, 0x20}, []byte{0xfa, 0xfa}},
		{"disable and enable scanning", []byte{0xf5, 0xf4}, []byte{0xfa, 0xfa}},
		{"echo", []byte{0xee}, []byte{0xee}},
		{"unknown command asks for a resend", []byte{0x01}, []byte{0xfe}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := newGuest(t)
			for _, b := range tt.bytes {
				g.send(b)
			}
			g.expectReply(tt.name, tt.want...)
		})
	}
	t.Run("keys typed with scanning disabled are dropped", func(t *testing.T) {
		g := newGuest(t)
		g.send(0xf5)
		g.readAll()
		if n := g.c.Key(0x1e); n != 0 {
			t.Errorf("Key took %d bytes with scanning disabled", n)
		}
	})
	t.Run("LED state is visible to the host", func(t *testing.T) {
		g := newGuest(t)
		g.send(0xed)
		g.send(0x04)
		if g.c.LEDs() != 0x04 {
			t.Errorf("LEDs = %#x, want caps lock", g.c.LEDs())
		}
	})
}

// TestLinuxProbe replays what Linux's i8042 driver does at probe time and
// checks each answer it depends on: the controller is found, there is no AUX
// port, and the keyboard port works.
func TestLinuxProbe(t *testing.T) {
	g := newGuest(t)
	g.expectReply("i8042_flush finds nothing")
	g.command(i8042.CmdSelfTest)
	g.expectReply("i8042_controller_selftest", 0x55)
	for range 2 {
		g.command(i8042.CmdReadCmdByte)
		g.expectReply("i8042_controller_init reads the CTR until stable", 0x65)
	}
	// Disable the keyboard and its interrupt while probing.
	g.command(i8042.CmdWriteCmdByte, 0x74)

	// i8042_check_aux: the loop command must come back as AUX data for an
	// AUX port to exist.
	g.command(i8042.CmdWriteAuxOutBuf, 0x5a)
	if s := g.status(); s&i8042.StatusOutputFull == 0 || s&i8042.StatusAuxData != 0 {
		t.Errorf("AUX loop: status %#02x, want data without AUXDATA (no AUX port)", s)
	}
	g.readAll()
	g.command(i8042.CmdAuxTest)
	if got := g.readAll(); len(got) != 1 || got[0] == 0x00 || got[0] == 0xfa || got[0] == 0xff {
		t.Errorf("AUX test answered % x, want an error code Linux rejects", got)
	}

	// Enable the keyboard port and let atkbd talk to the keyboard.
	g.command(i8042.CmdWriteCmdByte, 0x65)
	g.irq.Reset()
	g.send(0xf2)
	g.expectReply("atkbd GETID", 0xfa, 0xab, 0x41)
	if g.irq.Rising() != 3 {
		t.Errorf("atkbd got %d interrupts for 3 bytes", g.irq.Rising())
	}
}

func TestUnsupportedAccesses(t *testing.T) {
	tests := []struct {
		name string
		off  uint64
		size int
	}{
		{"port 0x61 is not the controller's", 1, 1},
		{"2-byte read of the data port", i8042.DataOffset, 2},
		{"4-byte read of the status port", i8042.CommandOffset, 4},
		{"offset past the range", 5, 1},
		{"empty access", 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := newGuest(t)
			data := make([]byte, tt.size)
			g.c.Read(tt.off, data)
			if !bytes.Equal(data, bytes.Repeat([]byte{0xff}, tt.size)) {
				t.Errorf("read = % x, want all-ones", data)
			}
			g.c.Write(tt.off, bytes.Repeat([]byte{0xfe}, tt.size))
			if g.resets.Load() != 0 {
				t.Errorf("an unsupported write reset the CPU")
			}
			var total uint64
			for _, n := range g.c.Anomalies() {
				total += n
			}
			if total != 2 {
				t.Errorf("anomalies = %v, want 2 counted", g.c.Anomalies())
			}
		})
	}
}
