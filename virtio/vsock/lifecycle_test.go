package vsock

import (
	"encoding/binary"
	"errors"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"ember/virtio"
)

// TestNew: the configurations New refuses, and why.
func TestNew(t *testing.T) {
	dir := shortTempDir(t)
	taken := filepath.Join(dir, "taken")
	if err := os.WriteFile(taken, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name string
		cfg  Config
		want string
	}{
		{"CID 0", Config{CID: 0, Path: filepath.Join(dir, "a")}, "reserved"},
		{"CID 2, the host", Config{CID: 2, Path: filepath.Join(dir, "a")}, "reserved"},
		{"CID 0xffffffff", Config{CID: 0xffffffff, Path: filepath.Join(dir, "a")}, "reserved"},
		{"CID above 32 bits", Config{CID: 1<<32 + 3, Path: filepath.Join(dir, "a")}, "reserved"},
		{"no path", Config{CID: 3}, "no socket path"},
		{"path exists", Config{CID: 3, Path: taken}, "exists"},
		{"path too long", Config{CID: 3, Path: "/tmp/" + strings.Repeat("x", 100)}, "too long"},
		{"directory missing", Config{CID: 3, Path: filepath.Join(dir, "no", "such")}, "no such file"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			d, err := New(tt.cfg)
			if err == nil {
				d.Close()
				t.Fatal("New succeeded")
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %q does not say %q", err, tt.want)
			}
		})
	}
	if _, err := New(Config{CID: 3, Path: taken}); !errors.Is(err, fs.ErrExist) {
		t.Fatalf("existing path: %v, want fs.ErrExist", err)
	}
}

// TestDeviceInfo: what the transport reads of the device.
func TestDeviceInfo(t *testing.T) {
	r := newRig(t, rigOptions{noAuto: true})
	if r.dev.Type() != virtio.IDVsock || r.dev.Features() != 0 {
		t.Fatalf("type %d features %#x", r.dev.Type(), r.dev.Features())
	}
	if got := r.dev.QueueSizes(); len(got) != 3 || got[0] != 256 || got[1] != 256 || got[2] != 256 {
		t.Fatalf("queue sizes %v", got)
	}
	for _, tt := range []struct {
		off  uint64
		n    int
		want uint64
	}{
		{0, 8, guestCID},
		{0, 4, guestCID},
		{4, 4, 0},
		{8, 4, 0},
		{1 << 40, 8, 0},
	} {
		b := make([]byte, tt.n)
		for i := range b {
			b[i] = 0xff
		}
		r.dev.ReadConfig(tt.off, b)
		var got uint64
		for i := range b {
			got |= uint64(b[i]) << (8 * i)
		}
		if got != tt.want {
			t.Fatalf("config at %d, %d bytes: %#x, want %#x", tt.off, tt.n, got, tt.want)
		}
	}
	r.dev.WriteConfig(0, binary.LittleEndian.AppendUint64(nil, 77))
	b := make([]byte, 8)
	r.dev.ReadConfig(0, b)
	if binary.LittleEndian.Uint64(b) != guestCID {
		t.Fatal("guest_cid is writable")
	}
}

// TestActivate: activations the device refuses, and one it accepts but
// cannot serve (rx or tx disabled).
func TestActivate(t *testing.T) {
	r := newRig(t, rigOptions{noAuto: true})
	if err := r.dev.Activate(r.mem, 0, []*virtio.Queue{nil, nil}, func(int) {}); err == nil {
		t.Fatal("activated with 2 queues")
	}
	if err := r.dev.Activate(r.mem, 0, []*virtio.Queue{nil, nil, nil}, func(int) {}); err != nil {
		t.Fatal(err)
	}
	if err := r.dev.Activate(r.mem, 0, []*virtio.Queue{nil, nil, nil}, func(int) {}); err == nil {
		t.Fatal("activated twice")
	}
	r.dev.Notify(RXQueue)
	r.dev.Notify(TXQueue)
	r.dev.Notify(EventQueue)
	hc := r.dialHost()
	hc.Write([]byte("CONNECT 1\n"))
	if got := readClosed(t, hc); len(got) != 0 {
		t.Fatalf("host program read %q from a device with no queues", got)
	}
	r.dev.Reset()
	r.dev.Close()
	if err := r.dev.Activate(r.mem, 0, []*virtio.Queue{nil, nil, nil}, func(int) {}); err == nil {
		t.Fatal("activated after Close")
	}
}

// TestResetAndClose: Reset closes every connection on the host side and
// the device serves again after a new activation; Close removes the
// socket; and no goroutine of the device is left.
func TestResetAndClose(t *testing.T) {
	before := runtime.NumGoroutine()
	t.Run("run", func(t *testing.T) {
		r := newRig(t, rigOptions{})
		serve, conns := accepted()
		r.listen(7, serve)
		r.connectGuest(5000, 7)
		guestInitiated := r.take(conns)
		_, hostInitiated := r.connectHost(1234)
		hs := r.dialHost() // still handshaking: no CONNECT yet
		refused := &gconn{r: r, gport: 5001, hport: 99}
		refused.sendOp(opRequest, 0)
		refused.expect(opRST)
		r.dev.Reset()
		for _, c := range []*net.UnixConn{guestInitiated, hostInitiated} {
			if got := readClosed(t, c); len(got) != 0 {
				t.Fatalf("host read %q after Reset", got)
			}
		}
		r.activate()
		r.postRX(8)
		r.connectHost(1234)
		if err := r.dev.Close(); err != nil {
			t.Fatal(err)
		}
		if _, err := os.Lstat(r.dev.Path()); !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("socket after Close: %v", err)
		}
		if got := readClosed(t, hs); len(got) != 0 {
			t.Fatalf("handshaking host program read %q", got)
		}
		if err := r.dev.Close(); err != nil {
			t.Fatalf("second Close: %v", err)
		}
	})
	deadline := time.Now().Add(timeout)
	for runtime.NumGoroutine() > before {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			t.Fatalf("%d goroutines before, %d after:\n%s", before, runtime.NumGoroutine(), buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(10 * time.Millisecond)
	}
}
