package machine

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"ember/hv"
	"ember/hypercall"
	"ember/internal/kvmtest"
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
