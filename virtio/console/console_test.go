package console_test

import (
	"bytes"
	"errors"
	"io"
	"log/slog"
	"os"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"ember/internal/testlog"
	"ember/memory"
	"ember/virtio"
	"ember/virtio/console"
	"ember/virtio/virtiotest"
)

// wait bounds every wait for the device: long enough for a loaded machine,
// short enough to fail a stuck test.
const wait = 10 * time.Second

// Guest RAM of a fixture: one region per queue, so the two test drivers'
// buffer allocators cannot run into each other.
const (
	rxBase = 0x1000
	txBase = 4<<20 + 0x1000
)

// output is an Output tests can read while the device writes it.
type output struct {
	mu  sync.Mutex
	b   bytes.Buffer
	err error // returned by every Write when set
}

func (o *output) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.err != nil {
		return 0, o.err
	}
	return o.b.Write(p)
}

func (o *output) String() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.b.String()
}

// fixture is a console whose queues two virtiotest.Drivers play and whose
// Input is a pipe the test feeds.
type fixture struct {
	mem    *memory.Guest
	dev    *console.Device
	out    *output
	rx, tx *virtiotest.Driver
	irq    [2]chan struct{} // one pending interrupt per queue, as a line holds it
	logs   testlog.Records
	feed   chan string // what the feeder writes into the Input pipe, in order
}

// newFixture returns a console with an Input pipe, not yet activated; it is
// closed, and the pipe with it, when the test ends.
func newFixture(t *testing.T) *fixture {
	t.Helper()
	mem, err := memory.New([]memory.Range{{GPA: 0, Size: 2 << 20}, {GPA: 4 << 20, Size: 2 << 20}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { mem.Close() })
	pr, pw := io.Pipe()
	f := &fixture{mem: mem, out: &output{}, logs: make(testlog.Records, 64), feed: make(chan string, 64)}
	f.irq = [2]chan struct{}{make(chan struct{}, 1), make(chan struct{}, 1)}
	f.dev, err = console.New(console.Config{
		Output: f.out, Input: pr, Cols: 80, Rows: 25, Logger: slog.New(f.logs),
	})
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		for s := range f.feed {
			if s == "" {
				continue
			}
			if _, err := pw.Write([]byte(s)); err != nil {
				return
			}
		}
	}()
	t.Cleanup(func() {
		f.dev.Close()
		close(f.feed)
		pw.Close() // ends a Read Close could not: an io.Pipe has no deadline
	})
	return f
}

// activate lays out fresh queues and activates the device on them.
func (f *fixture) activate(t *testing.T, eventIdx bool) {
	t.Helper()
	var err error
	for _, q := range []struct {
		drv  **virtiotest.Driver
		base uint64
	}{{&f.rx, rxBase}, {&f.tx, txBase}} {
		cfg := virtiotest.Config{Base: q.base, Size: console.QueueSize, EventIdx: eventIdx, IndirectDesc: true}
		if *q.drv, err = virtiotest.New(f.mem, cfg); err != nil {
			t.Fatal(err)
		}
	}
	interrupt := func(q int) {
		if q < 0 || q > 1 {
			t.Errorf("interrupt for queue %d", q)
			return
		}
		select {
		case f.irq[q] <- struct{}{}:
		default:
		}
	}
	features := uint64(virtio.FeatureVersion1 | console.FeatureSize | console.FeatureEmergWrite)
	if err := f.dev.Activate(f.mem, features, []*virtio.Queue{f.rx.Queue, f.tx.Queue}, interrupt); err != nil {
		t.Fatal(err)
	}
}

// driver returns the test driver of queue q.
func (f *fixture) driver(q int) *virtiotest.Driver {
	if q == console.ReceiveQueue {
		return f.rx
	}
	return f.tx
}

// add offers a chain in queue q, directly or through an indirect table, and
// notifies the device if the driver must.
func (f *fixture) add(t *testing.T, q int, indirect bool, bufs ...virtiotest.Buffer) (uint16, []uint64) {
	t.Helper()
	drv := f.driver(q)
	old := drv.AvailIdx()
	add := drv.Add
	if indirect {
		add = drv.AddIndirect
	}
	head, gpas, err := add(bufs...)
	if err != nil {
		t.Fatal(err)
	}
	f.notify(t, q, old)
	return head, gpas
}

// offerRaw makes the chain at head, written with SetDesc, available in
// queue q and notifies the device.
func (f *fixture) offerRaw(t *testing.T, q int, head uint16) {
	t.Helper()
	old := f.driver(q).AvailIdx()
	if err := f.driver(q).Offer(head); err != nil {
		t.Fatal(err)
	}
	f.notify(t, q, old)
}

// notify notifies the device of queue q if the driver must, having moved
// avail->idx from old.
func (f *fixture) notify(t *testing.T, q int, old uint16) {
	t.Helper()
	if notify, err := f.driver(q).NeedsNotify(old); err != nil {
		t.Fatal(err)
	} else if notify {
		f.dev.Notify(q)
	}
}

// used returns the next element of queue q's used ring, waiting for an
// interrupt while there is none.
func (f *fixture) used(t *testing.T, q int) virtiotest.Used {
	t.Helper()
	drv := f.driver(q)
	deadline := time.After(wait)
	for {
		for range 2 { // before and after asking for an interrupt
			if u, ok, err := drv.Used(); err != nil {
				t.Fatal(err)
			} else if ok {
				return u
			}
			if err := drv.ArmInterrupt(); err != nil {
				t.Fatal(err)
			}
		}
		select {
		case <-f.irq[q]:
		case <-deadline:
			t.Fatalf("queue %d: no used buffer after %v", q, wait)
		}
	}
}

// log waits for the device to log a record at level or above.
func (f *fixture) log(t *testing.T, level slog.Level) slog.Record {
	t.Helper()
	rec, ok := f.logs.Next(level, wait)
	if !ok {
		t.Fatalf("nothing logged at %v after %v", level, wait)
	}
	return rec
}

// r and w shorten virtiotest's buffer constructors.
func r(s string) virtiotest.Buffer { return virtiotest.Readable([]byte(s)) }
func w(n uint32) virtiotest.Buffer { return virtiotest.Writable(n) }

// TestTransmit: what the guest posts in the transmitq reaches Output in
// order, across chains, buffers and indirect tables, and every chain comes
// back with 0 bytes written and an interrupt.
func TestTransmit(t *testing.T) {
	big := strings.Repeat("0123456789abcdef", 100<<10/16) // more than one Write to Output
	tests := []struct {
		name     string
		chains   [][]virtiotest.Buffer
		indirect bool
	}{
		{"one chain", [][]virtiotest.Buffer{{r("hello, world\n")}}, false},
		{"several chains in order", [][]virtiotest.Buffer{{r("one ")}, {r("two ")}, {r("three ")}, {r("four\n")}}, false},
		{"a chain of several buffers", [][]virtiotest.Buffer{{r("ab"), r("cd"), r("ef")}, {r("gh")}}, false},
		{"empty buffers", [][]virtiotest.Buffer{{r(""), r("x"), r("")}, {r("")}, {r("y")}}, false},
		{"indirect chains", [][]virtiotest.Buffer{{r("in"), r("direct")}, {r("!")}}, true},
		{"larger than one write", [][]virtiotest.Buffer{{r(big)}, {r("end")}}, false},
	}
	for _, tt := range tests {
		for _, eventIdx := range []bool{false, true} {
			t.Run(tt.name+map[bool]string{false: "", true: "/event-idx"}[eventIdx], func(t *testing.T) {
				f := newFixture(t)
				f.activate(t, eventIdx)
				var want strings.Builder
				for _, c := range tt.chains {
					f.add(t, console.TransmitQueue, tt.indirect, c...)
					for _, b := range c {
						want.Write(b.Data)
					}
				}
				for i := range tt.chains {
					if u := f.used(t, console.TransmitQueue); u.Len != 0 {
						t.Errorf("chain %d returned with %d bytes written, want 0", i, u.Len)
					}
				}
				if got := f.out.String(); got != want.String() {
					t.Errorf("output %.60q (%d bytes), want %.60q (%d bytes)", got, len(got), want.String(), want.Len())
				}
			})
		}
	}
}

// rxStep is one step of a receive test: input the host's Input yields, or
// receive chains the driver posts (each a list of buffer sizes).
type rxStep struct {
	input string
	post  [][]uint32
}

// TestReceive: input reaches the guest's receive buffers in order whether
// it comes before the driver posts them, after, or before the device is
// even activated, split across buffers as they fill.
func TestReceive(t *testing.T) {
	long := strings.Repeat("the quick brown fox ", 500) // 10000 bytes: several Reads, several buffers
	tests := []struct {
		name   string
		before string // input before Activate
		steps  []rxStep
	}{
		{"input before the buffers", "", []rxStep{{input: "hello"}, {post: [][]uint32{{64}}}}},
		{"buffers before the input", "", []rxStep{{post: [][]uint32{{64}}}, {input: "hello"}}},
		{"input before and after the buffers", "", []rxStep{
			{input: "one "}, {post: [][]uint32{{64}, {64}}}, {input: "two "}, {input: "three "},
			{post: [][]uint32{{3}}}, {input: "four"}, {post: [][]uint32{{64}, {64}}}, // one chain per chunk at least
		}},
		{"input before activation", "early ", []rxStep{{post: [][]uint32{{64}, {64}}}, {input: "late"}}},
		{"input larger than a buffer", "", []rxStep{{input: long}, {post: [][]uint32{{100}, {1000}, {4096}, {8192}, {4096}}}}},
		{"chains of several buffers", "", []rxStep{{post: [][]uint32{{2, 3}, {1, 0, 10}}}, {input: "abcdefghij"}}},
	}
	for _, tt := range tests {
		for _, eventIdx := range []bool{false, true} {
			t.Run(tt.name+map[bool]string{false: "", true: "/event-idx"}[eventIdx], func(t *testing.T) {
				f := newFixture(t)
				f.feed <- tt.before
				f.activate(t, eventIdx)
				want := tt.before
				bufs := map[uint16][]uint64{}
				sizes := map[uint16][]uint32{}
				for _, s := range tt.steps {
					f.feed <- s.input
					want += s.input
					for _, c := range s.post {
						var bb []virtiotest.Buffer
						for _, n := range c {
							bb = append(bb, w(n))
						}
						head, gpas := f.add(t, console.ReceiveQueue, false, bb...)
						bufs[head], sizes[head] = gpas, c
					}
				}
				if got := f.receive(t, len(want), bufs, sizes); got != want {
					t.Errorf("guest received %.60q (%d bytes), want %.60q (%d bytes)", got, len(got), want, len(want))
				}
			})
		}
	}
}

// receive reads used receive chains until n bytes came, and returns them in
// order. bufs and sizes are the buffers of each chain posted; a head is
// reused once its chain is used, so each entry is read and forgotten.
func (f *fixture) receive(t *testing.T, n int, bufs map[uint16][]uint64, sizes map[uint16][]uint32) string {
	t.Helper()
	var got []byte
	for len(got) < n {
		u := f.used(t, console.ReceiveQueue)
		left := int(u.Len)
		for i, gpa := range bufs[u.Head] {
			k := min(left, int(sizes[u.Head][i]))
			b, err := f.rx.Read(gpa, k)
			if err != nil {
				t.Fatal(err)
			}
			got, left = append(got, b...), left-k
		}
		if left != 0 {
			t.Fatalf("chain %d used with %d bytes, more than its buffers hold", u.Head, u.Len)
		}
		delete(bufs, u.Head)
	}
	return string(got)
}

// TestInputSurvivesReset: input the device holds when the driver resets it
// goes to the next activation, before what comes after.
func TestInputSurvivesReset(t *testing.T) {
	f := newFixture(t)
	f.activate(t, true)
	f.feed <- "kept "
	f.feed <- "across "
	f.dev.Reset()
	f.activate(t, true)
	f.feed <- "the reset"
	bufs, sizes := map[uint16][]uint64{}, map[uint16][]uint32{}
	for range 3 { // one chain per chunk fed at least
		head, gpas := f.add(t, console.ReceiveQueue, false, w(64))
		bufs[head], sizes[head] = gpas, []uint32{64}
	}
	const want = "kept across the reset"
	got := f.receive(t, len(want), bufs, sizes)
	if got != want {
		t.Errorf("guest received %q, want %q", got, want)
	}
}

// TestMalformedChain: a chain the device cannot serve — a loop, a buffer
// outside RAM, a writable buffer in the transmitq, a readable one in the
// receiveq — is logged and returned with nothing written, and the next
// chain is served.
func TestMalformedChain(t *testing.T) {
	const spare = console.QueueSize - 1 // a descriptor the test drivers' Add has not used yet
	tests := []struct {
		name  string
		queue int
		bad   func(t *testing.T, f *fixture) // offers the bad chain
		log   string
	}{
		{"transmit chain with a writable buffer", console.TransmitQueue, func(t *testing.T, f *fixture) {
			f.add(t, console.TransmitQueue, false, r("not output"), w(8))
		}, "device-writable"},
		{"transmit loop", console.TransmitQueue, func(t *testing.T, f *fixture) {
			f.raw(t, console.TransmitQueue, virtiotest.Desc{Addr: txBase + 0x10000, Len: 4, Flags: virtio.DescNext, Next: spare})
		}, "malformed"},
		{"transmit buffer outside RAM", console.TransmitQueue, func(t *testing.T, f *fixture) {
			f.raw(t, console.TransmitQueue, virtiotest.Desc{Addr: 3 << 20, Len: 16})
		}, "malformed"},
		{"receive chain with a readable buffer", console.ReceiveQueue, func(t *testing.T, f *fixture) {
			f.add(t, console.ReceiveQueue, false, r("hostile"), w(16))
		}, "device-readable"},
		{"receive loop", console.ReceiveQueue, func(t *testing.T, f *fixture) {
			f.raw(t, console.ReceiveQueue, virtiotest.Desc{Addr: rxBase + 0x10000, Len: 4, Flags: virtio.DescWrite | virtio.DescNext, Next: spare})
		}, "malformed"},
		{"receive buffer outside RAM", console.ReceiveQueue, func(t *testing.T, f *fixture) {
			f.raw(t, console.ReceiveQueue, virtiotest.Desc{Addr: 1 << 40, Len: 16, Flags: virtio.DescWrite})
		}, "malformed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			f.activate(t, false)
			if tt.queue == console.ReceiveQueue {
				f.feed <- "data" // the device pops receive chains only when it has input
			}
			tt.bad(t, f)
			if u := f.used(t, tt.queue); u.Len != 0 {
				t.Errorf("bad chain returned with %d bytes, want 0", u.Len)
			}
			if rec := f.log(t, slog.LevelWarn); !strings.Contains(rec.Message, tt.log) {
				t.Errorf("logged %q, want it to mention %q", rec.Message, tt.log)
			}
			if tt.queue == console.TransmitQueue {
				f.add(t, tt.queue, false, r("next"))
				f.used(t, tt.queue)
				if got := f.out.String(); got != "next" {
					t.Errorf("output %q, want %q", got, "next")
				}
				return
			}
			head, gpas := f.add(t, tt.queue, false, w(16))
			if got := f.receive(t, 4, map[uint16][]uint64{head: gpas}, map[uint16][]uint32{head: {16}}); got != "data" {
				t.Errorf("guest received %q, want %q", got, "data")
			}
		})
	}
}

// raw writes d as the queue's last descriptor, which the test drivers' Add
// has not handed out, and offers it as a chain of its own.
func (f *fixture) raw(t *testing.T, q int, d virtiotest.Desc) {
	t.Helper()
	const head = console.QueueSize - 1
	if err := f.driver(q).SetDesc(head, d); err != nil {
		t.Fatal(err)
	}
	f.offerRaw(t, q, head)
}

// TestOutputFailure: an Output that fails loses the guest's output, once
// logged, and the transmitq goes on.
func TestOutputFailure(t *testing.T) {
	f := newFixture(t)
	f.out.err = errors.New("disk full")
	f.activate(t, false)
	for _, s := range []string{"lost", "also lost"} {
		f.add(t, console.TransmitQueue, false, r(s))
		if u := f.used(t, console.TransmitQueue); u.Len != 0 {
			t.Errorf("used with %d bytes, want 0", u.Len)
		}
	}
	if rec := f.log(t, slog.LevelWarn); !strings.Contains(rec.Message, "output failed") {
		t.Errorf("logged %q", rec.Message)
	}
	select {
	case rec := <-f.logs:
		t.Errorf("logged a second time: %q", rec.Message)
	default:
	}
}

// TestConfigSpace: struct virtio_console_config reads as Config and Resize
// set it, whatever the access's offset and size; Resize tells the transport
// once per change; writes to the read-only fields change nothing.
func TestConfigSpace(t *testing.T) {
	dev, err := console.New(console.Config{Output: io.Discard, Cols: 80, Rows: 25})
	if err != nil {
		t.Fatal(err)
	}
	defer dev.Close()
	notified := 0
	dev.SetConfigNotify(func() { notified++ })
	type read struct {
		off  uint64
		n    int
		want []byte
	}
	check := func(reads []read) {
		t.Helper()
		for _, rd := range reads {
			got := bytes.Repeat([]byte{0xee}, rd.n)
			dev.ReadConfig(rd.off, got)
			if !bytes.Equal(got, rd.want) {
				t.Errorf("%d bytes at %d: %x, want %x", rd.n, rd.off, got, rd.want)
			}
		}
	}
	check([]read{
		{0, 2, []byte{80, 0}},        // cols
		{2, 2, []byte{25, 0}},        // rows
		{0, 4, []byte{80, 0, 25, 0}}, // both at once
		{1, 1, []byte{0}},            // cols' high byte
		{4, 4, []byte{1, 0, 0, 0}},   // max_nr_ports
		{8, 4, []byte{0, 0, 0, 0}},   // emerg_wr is write-only
		{10, 4, []byte{0, 0, 0, 0}},  // across the end
		{12, 4, []byte{0, 0, 0, 0}},  // past it
		{1 << 40, 1, []byte{0}},      // far past it
		{0, 16, append([]byte{80, 0, 25, 0, 1}, make([]byte, 11)...)},
	})
	dev.WriteConfig(0, []byte{1, 2, 3, 4})
	dev.WriteConfig(4, []byte{9, 9, 9, 9})
	check([]read{{0, 8, []byte{80, 0, 25, 0, 1, 0, 0, 0}}})
	dev.Resize(0x1234, 0x0102)
	check([]read{{0, 4, []byte{0x34, 0x12, 0x02, 0x01}}})
	dev.Resize(0x1234, 0x0102)
	if notified != 1 {
		t.Errorf("config change notified %d times for one change, want 1", notified)
	}
	dev.SetConfigNotify(nil)
	dev.Resize(1, 1) // no notifier: nothing to call
	check([]read{{0, 4, []byte{1, 0, 1, 0}}})
}

// TestEmergencyWrite: a write to emerg_wr outputs its low byte, in any
// state of the device, feature negotiated or not; a write elsewhere, or of
// a size no register has, outputs nothing; after Close nothing at all.
func TestEmergencyWrite(t *testing.T) {
	tests := []struct {
		name string
		off  uint64
		data []byte
		want string
	}{
		{"four bytes", 8, []byte{'A', 0, 0, 0}, "A"},
		{"the low byte only", 8, []byte{'B', 'C', 'D', 'E'}, "B"},
		{"one byte", 8, []byte{'x'}, "x"},
		{"two bytes", 8, []byte{'\n', 0}, "\n"},
		{"a zero byte", 8, []byte{0, 0, 0, 0}, "\x00"},
		{"inside emerg_wr", 9, []byte{'z'}, ""},
		{"at cols", 0, []byte{'y', 0, 0, 0}, ""},
		{"eight bytes", 8, []byte{'q', 0, 0, 0, 0, 0, 0, 0}, ""},
		{"no bytes", 8, nil, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out := &output{}
			dev, err := console.New(console.Config{Output: out})
			if err != nil {
				t.Fatal(err)
			}
			dev.WriteConfig(tt.off, tt.data) // never activated: an unconfigured device
			if got := out.String(); got != tt.want {
				t.Errorf("output %q, want %q", got, tt.want)
			}
			dev.Close()
			dev.WriteConfig(8, []byte{'!', 0, 0, 0})
			if got := out.String(); got != tt.want {
				t.Errorf("after Close: output %q, want %q", got, tt.want)
			}
		})
	}
}

// TestDeviceDescription: device ID 3, F_SIZE and F_EMERG_WRITE but not
// F_MULTIPORT, two queues of QueueSize.
func TestDeviceDescription(t *testing.T) {
	dev, err := console.New(console.Config{Output: io.Discard})
	if err != nil {
		t.Fatal(err)
	}
	defer dev.Close()
	if dev.Type() != virtio.IDConsole {
		t.Errorf("type %d, want %d", dev.Type(), virtio.IDConsole)
	}
	if f := dev.Features(); f != console.FeatureSize|console.FeatureEmergWrite {
		t.Errorf("features %#x", f)
	}
	if qs := dev.QueueSizes(); len(qs) != 2 || qs[0] != console.QueueSize || qs[1] != console.QueueSize {
		t.Errorf("queue sizes %v", qs)
	}
	if _, err := console.New(console.Config{}); err == nil {
		t.Error("New without an Output succeeded")
	}
}

// TestActivate: the wrong number of queues, a second Activate and one
// after Close fail; disabled queues make a device that serves nothing and
// Notify on any queue, active device or not, does no harm.
func TestActivate(t *testing.T) {
	mem, err := memory.New([]memory.Range{{GPA: 0, Size: 1 << 20}})
	if err != nil {
		t.Fatal(err)
	}
	defer mem.Close()
	dev, err := console.New(console.Config{Output: io.Discard})
	if err != nil {
		t.Fatal(err)
	}
	q := &virtio.Queue{Size: 16, Desc: 0x1000, Driver: 0x2000, Device: 0x3000, Ready: true}
	for _, queues := range [][]*virtio.Queue{nil, {q}, {q, q, q}} {
		if err := dev.Activate(mem, 0, queues, func(int) {}); err == nil {
			t.Errorf("Activate with %d queues succeeded", len(queues))
			dev.Reset()
		}
	}
	for _, n := range []int{-1, 0, 1, 2, 1 << 20} {
		dev.Notify(n)
	}
	if err := dev.Activate(mem, 0, []*virtio.Queue{nil, nil}, func(int) {}); err != nil {
		t.Errorf("Activate with the queues disabled: %v", err)
	}
	if err := dev.Activate(mem, 0, []*virtio.Queue{nil, nil}, func(int) {}); err == nil {
		t.Error("a second Activate without Reset succeeded")
	}
	for _, n := range []int{-1, 0, 1, 2} {
		dev.Notify(n)
	}
	dev.Reset()
	dev.Close()
	dev.Close()
	if err := dev.Activate(mem, 0, []*virtio.Queue{nil, nil}, func(int) {}); err == nil {
		t.Error("Activate after Close succeeded")
	}
}

// TestNoGoroutineLeaks: activations and resets leave no goroutine behind,
// and Close ends the input goroutine — at once for an Input with a read
// deadline (an os.Pipe), when its Read returns for one without.
func TestNoGoroutineLeaks(t *testing.T) {
	t.Run("os.Pipe", func(t *testing.T) {
		base := runtime.NumGoroutine()
		pr, pw, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { pr.Close(); pw.Close() })
		f := newFixtureWith(t, pr)
		for range 50 {
			f.activate(t, true)
			f.add(t, console.TransmitQueue, false, r("x"))
			f.add(t, console.ReceiveQueue, false, w(8))
			f.dev.Reset()
		}
		if _, err := pw.Write([]byte("in")); err != nil {
			t.Fatal(err)
		}
		f.dev.Close() // the reader is blocked in Read or handing over "in": Close ends both
		waitGoroutines(t, base)
	})
	t.Run("a Read that does not return", func(t *testing.T) {
		base := runtime.NumGoroutine()
		release := make(chan struct{})
		f := newFixtureWith(t, stuckReader(release))
		f.activate(t, false)
		closed := make(chan struct{})
		go func() { f.dev.Close(); close(closed) }()
		select {
		case <-closed:
		case <-time.After(wait):
			t.Fatal("Close waited for a Read it cannot end")
		}
		close(release)
		waitGoroutines(t, base)
	})
}

// newFixtureWith is a fixture whose Input is in, not the feeder's pipe.
func newFixtureWith(t *testing.T, in io.Reader) *fixture {
	t.Helper()
	mem, err := memory.New([]memory.Range{{GPA: 0, Size: 2 << 20}, {GPA: 4 << 20, Size: 2 << 20}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { mem.Close() })
	f := &fixture{mem: mem, out: &output{}, logs: make(testlog.Records, 64)}
	f.irq = [2]chan struct{}{make(chan struct{}, 1), make(chan struct{}, 1)}
	if f.dev, err = console.New(console.Config{Output: f.out, Input: in, Logger: slog.New(f.logs)}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.dev.Close() })
	return f
}

// stuckReader's Read blocks until the channel closes, then reports EOF: a
// terminal nobody types at.
type stuckReader chan struct{}

func (s stuckReader) Read([]byte) (int, error) {
	<-s
	return 0, io.EOF
}

// waitGoroutines waits for the goroutine count to come back to base. A
// goroutine that closed its done channel may not have exited yet; there is
// nothing to wait on for that but the count itself.
func waitGoroutines(t *testing.T, base int) {
	t.Helper()
	deadline := time.Now().Add(wait)
	for runtime.NumGoroutine() > base && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > base {
		buf := make([]byte, 1<<16)
		t.Errorf("%d goroutines, %d before:\n%s", n, base, buf[:runtime.Stack(buf, true)])
	}
}
