package devicemodel

import (
	"bufio"
	"encoding/binary"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"ember/acrn"
	"ember/acrn/iorequest"
	"ember/ioreq"
)

// socketPath returns a short socket path (sun_path holds 108 bytes, and
// t.TempDir's can be longer).
func socketPath(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "ioreq")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return filepath.Join(dir, "s")
}

func startServer(t *testing.T, d *ioreq.Dispatcher, cfg ServerConfig) *Server {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = d.Logger()
	}
	s, err := Listen(socketPath(t), d, cfg)
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- s.Serve() }()
	t.Cleanup(func() {
		s.Close()
		if err := <-served; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return s
}

func dial(t *testing.T, s *Server, name string) *Conn {
	t.Helper()
	c, err := Dial(s.Addr(), name)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// serve runs c.Serve(h) until the test ends.
func serve(t *testing.T, c *Conn, h ioreq.Handler) {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- c.Serve(h) }()
	t.Cleanup(func() {
		c.Close()
		if err := <-done; err != nil {
			t.Errorf("Conn.Serve: %v", err)
		}
	})
}

// TestDeviceModelConn drives the protocol from a Conn in this process: create,
// claim (overlaps refused with EEXIST), attach, serve; both sleeping and
// polling vCPUs get the device model's values.
func TestDeviceModelConn(t *testing.T) {
	d := newDispatcher(t, ioreq.Config{})
	must(t, d.Router().Claim(ioreq.Range{Type: iorequest.ReqPortIO, Start: 0x3f8, End: 0x3ff}, ioreq.InProcess("uart", &recorder{})))
	s := startServer(t, d, ServerConfig{VMID: 7})
	c := dial(t, s, "regs")
	if info := c.Info(); info.VMID != 7 || info.Slots != 16 || info.BufferSize != 4096 || info.Timeout != 1000 {
		t.Errorf("CREATE_CLIENT reply %+v", info)
	}
	if err := c.Claim(ioreq.Range{Type: iorequest.ReqPortIO, Start: 0x3f0, End: 0x3f8}); !errors.Is(err, unix.EEXIST) {
		t.Errorf("overlapping claim: %v, want EEXIST", err)
	}
	if err := c.Claim(ioreq.Range{Type: iorequest.ReqPortIO, Start: 0x10, End: 0x1}); !errors.Is(err, unix.EPROTO) {
		t.Errorf("end before start: %v, want EPROTO", err)
	}
	must(t, c.Claim(ioreq.Range{Type: iorequest.ReqPortIO, Start: 0x500, End: 0x50f}))
	must(t, c.Claim(ioreq.Range{Type: iorequest.ReqMMIO, Start: 0xd0000000, End: 0xd0000fff}))
	must(t, c.Claim(ioreq.Range{Type: iorequest.ReqPCICfg, Start: ioreq.PCIAddress(0, 5, 0, 0), End: ioreq.PCIAddress(0, 5, 0, 0xfff)}))
	must(t, c.Attach())
	regs := &regFile{regs: map[uint64]uint64{}}
	serve(t, c, regs)
	for _, polling := range []uint32{0, 1} {
		for i := range uint32(50) {
			w := ioreq.PIORequest(iorequest.DirWrite, 0x504, 4, 0x1000+i)
			w.CompletionPolling = polling
			if _, err := d.Emulate(3, &w); err != nil {
				t.Fatal(err)
			}
			r := ioreq.PIORequest(iorequest.DirRead, 0x504, 4, 0)
			r.CompletionPolling = polling
			if v, err := d.Emulate(3, &r); err != nil || v != uint64(0x1000+i) {
				t.Fatalf("polling=%d: read %#x, %v", polling, v, err)
			}
		}
	}
	w := ioreq.MMIORequest(iorequest.DirWrite, 0xd0000100, 8, 0x1122334455667788)
	d.Emulate(0, &w)
	r := ioreq.MMIORequest(iorequest.DirRead, 0xd0000100, 8, 0)
	if v, err := d.Emulate(1, &r); err != nil || v != 0x1122334455667788 {
		t.Errorf("MMIO read %#x, %v", v, err)
	}
	pw, _ := ioreq.PCIConfigRequest(0x80002804, iorequest.DirWrite, 0xcfc, 4, 0xabcd)
	d.Emulate(0, &pw)
	pr, _ := ioreq.PCIConfigRequest(0x80002804, iorequest.DirRead, 0xcfc, 4, 0)
	if v, err := d.Emulate(0, &pr); err != nil || v != 0xabcd {
		t.Errorf("PCI config read %#x, %v", v, err)
	}
	// Closing the client releases its ranges.
	c.Close()
	waitFor(t, func() bool { return s.Clients() == 0 })
	if v, _ := d.Emulate(0, &r); v != ^uint64(0) {
		t.Errorf("read after the client left: %#x, want all ones", v)
	}
}

// waitFor waits for cond, which another goroutine makes true soon.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met in 5s")
		}
		time.Sleep(time.Millisecond)
	}
}

// TestNotifyFinish: the HSM path, where the device model handles a request in
// the page and asks ember to complete it.
func TestNotifyFinish(t *testing.T) {
	d := newDispatcher(t, ioreq.Config{})
	s := startServer(t, d, ServerConfig{})
	c := dial(t, s, "hsm-style")
	must(t, c.Claim(ioreq.Range{Type: iorequest.ReqPortIO, Start: 0x70, End: 0x71}))
	must(t, c.Attach())
	if err := c.NotifyFinish(2); !errors.Is(err, unix.EINVAL) {
		t.Errorf("NOTIFY_FINISH with nothing in flight: %v, want EINVAL", err)
	}
	got := make(chan uint64)
	go func() {
		r := ioreq.PIORequest(iorequest.DirRead, 0x71, 1, 0)
		v, _ := d.Emulate(2, &r)
		got <- v
	}()
	b := c.Buffer()
	waitFor(t, func() bool { return b.State(2) == iorequest.StateProcessing })
	req, _ := b.Request(2)
	ioreq.SetValue(&req, 0x42)
	must(t, b.WriteBody(2, &req))
	must(t, c.NotifyFinish(2))
	if v := <-got; v != 0x42 {
		t.Errorf("read %#x, want 0x42", v)
	}
}

type fakeEventFDs struct {
	mu   sync.Mutex
	ioev []acrn.IOEventFD
	irq  []acrn.IRQFD
	err  error
}

// check proves fd is a live eventfd by signalling it.
func (f *fakeEventFDs) signal(fd int) error {
	var one [8]byte
	binary.LittleEndian.PutUint64(one[:], 1)
	_, err := unix.Write(fd, one[:])
	return err
}

func (f *fakeEventFDs) IOEventFD(e acrn.IOEventFD, fd int) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.ioev = append(f.ioev, e)
	if f.err != nil {
		return f.err
	}
	return f.signal(fd)
}

func (f *fakeEventFDs) IRQFD(q acrn.IRQFD, fd int) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.irq = append(f.irq, q)
	return f.signal(fd)
}

func TestIOEventFDAndIRQFDForwarded(t *testing.T) {
	d := newDispatcher(t, ioreq.Config{})
	fe := &fakeEventFDs{}
	s := startServer(t, d, ServerConfig{EventFDs: fe})
	c := dial(t, s, "virtio")
	efd, err := unix.Eventfd(0, unix.EFD_CLOEXEC)
	must(t, err)
	defer unix.Close(efd)
	ev := acrn.IOEventFD{Flags: acrn.IOEventFDFlagDataMatch, Addr: 0xd0000050, Len: 4, Data: 2}
	must(t, c.IOEventFD(ev, efd))
	msi := acrn.IRQFD{MSI: acrn.MSIEntry{MSIAddr: 0xfee00000, MSIData: 0x41}}
	must(t, c.IRQFD(msi, efd))
	var cnt [8]byte
	if _, err := unix.Read(efd, cnt[:]); err != nil || binary.LittleEndian.Uint64(cnt[:]) != 2 {
		t.Errorf("eventfd counter %d, %v: the VM side did not get our eventfd", binary.LittleEndian.Uint64(cnt[:]), err)
	}
	fe.mu.Lock()
	if len(fe.ioev) != 1 || fe.ioev[0].Addr != 0xd0000050 || fe.ioev[0].Data != 2 || len(fe.irq) != 1 || fe.irq[0].MSI != msi.MSI {
		t.Errorf("forwarded %+v %+v", fe.ioev, fe.irq)
	}
	fe.err = unix.EEXIST
	fe.mu.Unlock()
	if err := c.IOEventFD(ev, efd); !errors.Is(err, unix.EEXIST) {
		t.Errorf("VM-side error: %v, want EEXIST passed through", err)
	}
	bad := acrn.IOEventFD{Flags: acrn.IOEventFDFlagPIO, Addr: 0xffff, Len: 4}
	if err := c.IOEventFD(bad, efd); !errors.Is(err, unix.EPROTO) {
		t.Errorf("port range past 0xffff: %v, want EPROTO", err)
	}
	// Without an fd the request is refused.
	var p [acrn.IOEventFDSize]byte
	ev.Encode(p[:])
	if _, _, err := c.call(OpIOEventFD, p[:], -1); !errors.Is(err, unix.EBADF) {
		t.Errorf("IOEVENTFD without an fd: %v, want EBADF", err)
	}
}

func TestMemorySegments(t *testing.T) {
	d := newDispatcher(t, ioreq.Config{})
	s := startServer(t, d, ServerConfig{})
	c := dial(t, s, "mem")
	if _, err := c.Memory(); !errors.Is(err, unix.ENOTSUP) {
		t.Errorf("anonymous guest RAM: %v, want ENOTSUP (not shareable)", err)
	}

	fd, err := unix.MemfdCreate("guest", unix.MFD_CLOEXEC)
	must(t, err)
	defer unix.Close(fd)
	must(t, unix.Ftruncate(fd, 2*4096))
	unix.Pwrite(fd, []byte("hello"), 4096)
	s2 := startServer(t, d, ServerConfig{Memory: func() ([]Segment, error) {
		return []Segment{{GPA: 0x100000, Len: 4096, Offset: 4096, FD: fd}}, nil
	}})
	c2 := dial(t, s2, "mem2")
	segs, err := c2.Memory()
	must(t, err)
	if len(segs) != 1 || segs[0].GPA != 0x100000 || segs[0].Len != 4096 || segs[0].Offset != 4096 {
		t.Fatalf("segments %+v", segs)
	}
	defer unix.Close(segs[0].FD)
	m, err := unix.Mmap(segs[0].FD, int64(segs[0].Offset), int(segs[0].Len), unix.PROT_READ, unix.MAP_SHARED)
	must(t, err)
	defer unix.Munmap(m)
	if string(m[:5]) != "hello" {
		t.Errorf("mapped guest RAM reads %q", m[:5])
	}
}

// rawConn talks to the server without the client library.
func rawConn(t *testing.T, s *Server) *net.UnixConn {
	t.Helper()
	c, err := net.DialUnix("unixpacket", nil, &net.UnixAddr{Name: s.Addr(), Net: "unixpacket"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func rawCall(t *testing.T, c *net.UnixConn, pkt []byte) (Message, Reply) {
	t.Helper()
	if _, err := c.Write(pkt); err != nil {
		t.Fatal(err)
	}
	b := make([]byte, MaxMessageSize)
	n, err := c.Read(b)
	if err != nil {
		t.Fatal(err)
	}
	m, err := DecodeMessage(b[:n])
	must(t, err)
	r, err := DecodeReply(m.Payload)
	must(t, err)
	return m, r
}

func TestServerRefusesBadMessages(t *testing.T) {
	d := newDispatcher(t, ioreq.Config{})
	s := startServer(t, d, ServerConfig{})

	c := rawConn(t, s)
	m := Message{Op: OpClaimRange, ID: 9, Payload: EncodeRange(ioreq.Range{Type: iorequest.ReqPortIO, Start: 1, End: 2})}
	if rm, r := rawCall(t, c, m.Encode(nil)); rm.Op != OpClaimRange|OpReply || rm.ID != 9 || r.Errno != unix.EPERM {
		t.Errorf("CLAIM before CREATE: %v id %d errno %v, want EPERM", rm.Op, rm.ID, r.Errno)
	}
	m = Message{Op: Op(99), ID: 10}
	if _, r := rawCall(t, c, m.Encode(nil)); r.Errno != unix.EPROTO {
		t.Errorf("unknown op: errno %v, want EPROTO", r.Errno)
	}

	c2 := rawConn(t, s)
	if _, r := rawCall(t, c2, []byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13}); r.Errno != unix.EPROTO {
		t.Errorf("garbage: errno %v, want EPROTO", r.Errno)
	}
	if n, err := c2.Read(make([]byte, 16)); n != 0 && err == nil {
		t.Error("connection still open after a malformed frame")
	}
}

// lines delivers a process's stdout line by line.
func lines(f *os.File) <-chan string {
	ch := make(chan string, 64)
	go func() {
		defer close(ch)
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			ch <- sc.Text()
		}
	}()
	return ch
}

// expectLine waits for a line with prefix.
func expectLine(t *testing.T, ch <-chan string, prefix string) string {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case l, ok := <-ch:
			if !ok {
				t.Fatalf("device model exited before printing %q", prefix)
			}
			if strings.HasPrefix(l, prefix) {
				return l
			}
		case <-timeout:
			t.Fatalf("no %q line from the device model in 10s", prefix)
		}
	}
}
