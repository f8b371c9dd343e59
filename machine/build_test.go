package machine

import (
	"bytes"
	"context"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"ember/hv"
	"ember/hypercall"
	"ember/internal/kvmtest"
	"ember/virtio/backend"
	"ember/virtio/blk"
)

// openService opens the hypercall service on a fresh hypervisor.
func openService(t *testing.T) *hypercall.Service {
	t.Helper()
	kvmtest.Require(t)
	h, err := hv.Open()
	if err != nil {
		t.Fatal(err)
	}
	hc := hypercall.New(h)
	t.Cleanup(func() { hc.Close(); h.Close() })
	return hc
}

// TestBuildRunsTheDemo builds the default machine and runs it: the demo
// guest greets the console and exits 0.
func TestBuildRunsTheDemo(t *testing.T) {
	hc := openService(t)
	p, err := Config{}.Prepare()
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	m, err := Build(hc, p, Options{Console: &out})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	res, err := m.VM.Run(ctx)
	if err != nil || res.Reason != hv.StopExit || res.Status != 0 {
		t.Fatalf("run: %v, %v", res, err)
	}
	if !strings.Contains(out.String(), "Goodbye.") {
		t.Errorf("console: %q", out.String())
	}
}

// TestBuildVirtioMMIO builds a machine with its devices on virtio-mmio:
// each is in the platform's virtio-mmio list, in attachment order, which a
// Linux boot's command line gets, and the guest still runs.
func TestBuildVirtioMMIO(t *testing.T) {
	hc := openService(t)
	img := filepath.Join(t.TempDir(), "disk.img")
	if err := os.WriteFile(img, make([]byte, 4096), 0o600); err != nil {
		t.Fatal(err)
	}
	p, err := Config{VirtioTransport: TransportMMIO, RNG: true, Disks: []Disk{{Path: img}}}.Prepare()
	if err != nil {
		t.Fatal(err)
	}
	m, err := Build(hc, p, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	want := "virtio_mmio.device=4K@0xfec10000:6 virtio_mmio.device=4K@0xfec11000:7"
	if got := m.Platform.VirtioMMIOCmdline(); got != want {
		t.Errorf("virtio-mmio devices %q, want %q (the disk, then the rng)", got, want)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if res, err := m.VM.Run(ctx); err != nil || res.Reason != hv.StopExit || res.Status != 0 {
		t.Fatalf("run: %v, %v", res, err)
	}
}

// TestBuildFailureLeavesNothing: a device that cannot be made (a vsock
// socket path that exists) fails the build with its reason, and the VM,
// the disk it had opened and every fd go with it.
func TestBuildFailureLeavesNothing(t *testing.T) {
	hc := openService(t)
	dir := t.TempDir()
	img := filepath.Join(dir, "disk.img")
	sock := filepath.Join(dir, "taken")
	for _, f := range []string{img, sock} {
		if err := os.WriteFile(f, make([]byte, 4096), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	p, err := Config{Disks: []Disk{{Path: img}}, Vsock: &Vsock{CID: 3, Socket: sock}}.Prepare()
	if err != nil {
		t.Fatal(err)
	}
	before := kvmtest.OpenFDs(t)
	for range 3 {
		if _, err := Build(hc, p, Options{}); err == nil || !strings.Contains(err.Error(), "vsock") {
			t.Fatalf("Build: %v, want a vsock error", err)
		}
	}
	if after := kvmtest.OpenFDs(t); after != before {
		t.Errorf("%d fds open before, %d after three failed builds", before, after)
	}
}

// TestBackendDiskLeavesNothing: a machine whose disk a back-end serves
// (Disk.Backend; the back-end runs here, backend.Serve on a listening
// socket) runs the demo, and closing it, three times over, leaves no
// descriptor and no goroutine behind, ember's side or the back-end's.
func TestBackendDiskLeavesNothing(t *testing.T) {
	hc := openService(t)
	dir := t.TempDir()
	img, sock := filepath.Join(dir, "disk.img"), filepath.Join(dir, "disk.sock")
	if err := os.WriteFile(img, make([]byte, 64<<10), 0o600); err != nil {
		t.Fatal(err)
	}
	before, goroutines := kvmtest.OpenFDs(t), runtime.NumGoroutine()
	func() {
		disk, err := blk.Open(blk.Config{Path: img})
		if err != nil {
			t.Fatal(err)
		}
		defer disk.Close()
		ln, err := net.ListenUnix("unixpacket", &net.UnixAddr{Name: sock, Net: "unixpacket"})
		if err != nil {
			t.Fatal(err)
		}
		served := make(chan struct{})
		go func() {
			defer close(served)
			for {
				c, err := ln.AcceptUnix()
				if err != nil {
					return
				}
				backend.Serve(c, disk, nil)
				c.Close()
			}
		}()
		defer func() { ln.Close(); <-served }()
		p, err := Config{Disks: []Disk{{Backend: sock}}}.Prepare()
		if err != nil {
			t.Fatal(err)
		}
		for range 3 {
			var out bytes.Buffer
			m, err := Build(hc, p, Options{Console: &out})
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			res, err := m.VM.Run(ctx)
			cancel()
			if err != nil || res.Reason != hv.StopExit || res.Status != 0 {
				t.Fatalf("run: %v, %v", res, err)
			}
			if err := m.Close(); err != nil {
				t.Fatal(err)
			}
		}
	}()
	for deadline := time.Now().Add(5 * time.Second); runtime.NumGoroutine() > goroutines; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d goroutines before, %d after", goroutines, runtime.NumGoroutine())
		}
	}
	if after := kvmtest.OpenFDs(t); after != before {
		t.Errorf("%d fds open before, %d after three machines with a back-end disk", before, after)
	}
}
