package backend

import (
	"encoding/binary"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"ember/memory"
	"ember/virtio"
	"ember/virtio/blk"
	virtiopci "ember/virtio/pci"
	"ember/virtio/virtiotest"
)

// BAR0 offsets of ember's virtio-pci functions (virtio/pci's layout): the
// ISR and the device-specific configuration. The common configuration is
// at 0.
const (
	barISR          = 0x1000
	barDeviceConfig = 0x2000
)

// Request types and statuses of virtio-blk (§5.2.6).
const (
	blkIn, blkOut, blkFlush = 0, 1, 4
	blkOK                   = 0
)

const imageSectors = 128

// line is an INTx line a test can watch.
type line struct {
	mu   sync.Mutex
	high bool
}

func (l *line) SetLevel(h bool) { l.mu.Lock(); l.high = h; l.mu.Unlock() }
func (l *line) level() bool     { l.mu.Lock(); defer l.mu.Unlock(); return l.high }

// rig is a virtio-pci function in the test's process whose device, a
// Remote, is served by a back-end over a socketpair: a virtio-blk disk on a
// temporary image, in this process (Serve) or in a child process.
type rig struct {
	t      *testing.T
	mem    *memory.Guest
	remote *Remote
	f      *virtiopci.Function
	line   *line
	drv    *virtiotest.Driver
	image  string
	child  *os.Process
}

// socketPair returns the two ends of a SOCK_SEQPACKET socketpair.
func socketPair(t *testing.T) (*net.UnixConn, *os.File) {
	t.Helper()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	f := os.NewFile(uintptr(fds[0]), "ember-end")
	c, err := net.FileConn(f)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	return c.(*net.UnixConn), os.NewFile(uintptr(fds[1]), "backend-end")
}

// fileConn makes a connection of a socket's file, closing the file.
func fileConn(t *testing.T, f *os.File) *net.UnixConn {
	t.Helper()
	c, err := net.FileConn(f)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	return c.(*net.UnixConn)
}

// newImage writes an image whose sector i holds byte i.
func newImage(t *testing.T) string {
	t.Helper()
	b := make([]byte, imageSectors*blk.SectorSize)
	for i := range b {
		b[i] = byte(i / blk.SectorSize)
	}
	path := filepath.Join(t.TempDir(), "disk.img")
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// newRig connects a Remote to a back-end; inChild runs the back-end in a
// child process (the test binary again, TestMain), which the test can kill.
func newRig(t *testing.T, inChild bool) *rig {
	t.Helper()
	mem, err := memory.NewShared([]memory.Range{{GPA: 0, Size: 1 << 20}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { mem.Close() })
	r := &rig{t: t, mem: mem, line: &line{}, image: newImage(t)}
	ember, peer := socketPair(t)
	if inChild {
		r.child = startChild(t, r.image, peer)
	} else {
		startInProcess(t, r.image, fileConn(t, peer))
	}
	if r.remote, err = New(ember, Config{Mem: mem, Type: virtio.IDBlock}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.remote.Close() })
	r.f, err = virtiopci.New(r.remote, virtiopci.Config{Mem: mem, BAR: 0xc0000000, INTx: r.line, IRQ: 10})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.f.Close)
	return r
}

// startInProcess serves a disk on image over conn from a goroutine, until
// the test ends.
func startInProcess(t *testing.T, image string, conn *net.UnixConn) {
	t.Helper()
	d, err := blk.Open(blk.Config{Path: image, Serial: "remote-1"})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		Serve(conn, d, nil)
		conn.Close()
	}()
	t.Cleanup(func() {
		conn.Close()
		<-done
		d.Close()
	})
}

// childEnv names the image a child process of the test binary serves.
const childEnv = "EMBER_TEST_BACKEND_IMAGE"

// TestMain runs the test binary as a back-end when childEnv is set: it
// serves a disk on that image over descriptor 3.
func TestMain(m *testing.M) {
	if image := os.Getenv(childEnv); image != "" {
		d, err := blk.Open(blk.Config{Path: image})
		if err != nil {
			os.Exit(2)
		}
		c, err := net.FileConn(os.NewFile(3, "socket"))
		if err != nil {
			os.Exit(3)
		}
		Serve(c.(*net.UnixConn), d, nil)
		d.Close()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// startChild runs a back-end process serving image over sock.
func startChild(t *testing.T, image string, sock *os.File) *os.Process {
	t.Helper()
	p, err := os.StartProcess(os.Args[0], []string{os.Args[0]}, &os.ProcAttr{
		Env:   append(os.Environ(), childEnv+"="+image),
		Files: []*os.File{nil, os.Stderr, os.Stderr, sock},
	})
	sock.Close()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Kill(); p.Wait() })
	return p
}

// bar reads n bytes of BAR0 at off.
func (r *rig) bar(off uint64, n int) uint64 { return virtiotest.Registers{Dev: r.f}.Get(off, n) }

// setBar writes n bytes of BAR0 at off.
func (r *rig) setBar(off, v uint64, n int) { virtiotest.Registers{Dev: r.f}.Set(off, v, n) }

// status reads device_status.
func (r *rig) status() uint8 { return uint8(r.bar(virtiotest.CommonDeviceStatus, 1)) }

// start initialises the device as a driver does: features, queue 0 laid
// out by a test driver, DRIVER_OK. It reports whether the device started.
func (r *rig) start() bool {
	r.t.Helper()
	r.setBar(virtiotest.CommonDeviceStatus, 0, 1)
	r.setBar(virtiotest.CommonDeviceStatus, virtio.StatusAcknowledge|virtio.StatusDriver, 1)
	features := virtio.Offered(r.remote)
	for sel := range 2 {
		r.setBar(virtiotest.CommonDriverFeatureSelect, uint64(sel), 4)
		r.setBar(virtiotest.CommonDriverFeature, features>>(32*sel)&0xffffffff, 4)
	}
	r.setBar(virtiotest.CommonDeviceStatus, virtio.StatusAcknowledge|virtio.StatusDriver|virtio.StatusFeaturesOK, 1)
	drv, err := virtiotest.New(r.mem, virtiotest.Config{Base: 0x10000, Size: 16, EventIdx: true, IndirectDesc: true})
	if err != nil {
		r.t.Fatal(err)
	}
	r.drv = drv
	q := drv.Queue
	r.setBar(virtiotest.CommonQueueSelect, 0, 2)
	r.setBar(virtiotest.CommonQueueSize, uint64(q.Size), 2)
	r.setBar(virtiotest.CommonQueueDesc, q.Desc, 8)
	r.setBar(virtiotest.CommonQueueDriver, q.Driver, 8)
	r.setBar(virtiotest.CommonQueueDevice, q.Device, 8)
	r.setBar(virtiotest.CommonQueueEnable, 1, 2)
	r.setBar(virtiotest.CommonDeviceStatus, virtio.StatusAcknowledge|virtio.StatusDriver|virtio.StatusFeaturesOK|virtio.StatusDriverOK, 1)
	return r.status()&virtio.StatusDeviceNeedsReset == 0
}

// header is a virtio-blk request header.
func header(typ uint32, sector uint64) []byte {
	h := make([]byte, 16)
	binary.LittleEndian.PutUint32(h, typ)
	binary.LittleEndian.PutUint64(h[8:], sector)
	return h
}

// submit offers a request and notifies the device as an ioeventfd does.
func (r *rig) submit(bufs ...virtiotest.Buffer) []uint64 {
	r.t.Helper()
	_, addrs, err := r.drv.Add(bufs...)
	if err != nil {
		r.t.Fatal(err)
	}
	r.f.Notify(0)
	return addrs
}

// do submits a request, waits for the device to use it and returns the
// last byte of its last buffer: the status.
func (r *rig) do(bufs ...virtiotest.Buffer) (status byte, addrs []uint64) {
	r.t.Helper()
	addrs = r.submit(bufs...)
	deadline := time.Now().Add(5 * time.Second)
	for {
		_, ok, err := r.drv.Used()
		if err != nil {
			r.t.Fatal(err)
		}
		if ok {
			last := len(bufs) - 1
			b, _ := r.drv.Read(addrs[last]+uint64(bufs[last].Len)-1, 1)
			return b[0], addrs
		}
		if time.Now().After(deadline) {
			r.t.Fatal("request never completed")
		}
		time.Sleep(time.Millisecond)
	}
}

// waitFor polls cond until it holds, or fails the test after 5 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); !cond(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}
