package main

import (
	"context"
	"encoding/binary"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"ember/internal/linuxguest"
	"ember/memory"
	"ember/virtio"
	"ember/virtio/backend"
)

// backendProc is an `ember backend blk` started by a test as a process of
// its own (this test binary, as the ember command).
type backendProc struct {
	sock   string
	proc   *os.Process
	stderr *lockedBuffer
	done   chan error
}

// startBackend runs `ember backend blk --socket DIR/disk.sock --disk SPEC
// [--once]` and waits for its socket.
func startBackend(t *testing.T, spec string, once bool) *backendProc {
	t.Helper()
	p := &backendProc{sock: filepath.Join(t.TempDir(), "disk.sock"), stderr: &lockedBuffer{}, done: make(chan error, 1)}
	args := []string{"backend", "blk", "--socket", p.sock, "--disk", spec}
	if once {
		args = append(args, "--once")
	}
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), asEmberEnv+"=1")
	cmd.Stderr = p.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p.proc = cmd.Process
	go func() { p.done <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-p.done
	})
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if _, err := os.Stat(p.sock); err == nil {
			return p
		}
		if time.Now().After(deadline) {
			t.Fatalf("the back-end never listened:\n%s", p.stderr)
		}
	}
}

// wait waits for the back-end to exit and returns its error.
func (p *backendProc) wait(t *testing.T) error {
	t.Helper()
	select {
	case err := <-p.done:
		p.done <- err // for the cleanup
		return err
	case <-time.After(30 * time.Second):
		t.Fatalf("the back-end did not exit:\n%s", p.stderr)
		return nil
	}
}

// TestBackendBlkServesOneVM: `ember backend blk --once` describes its
// image as a virtio-blk device to the ember that connects (type, size,
// read-only), and exits 0, its socket removed, when that ember hangs up.
func TestBackendBlkServesOneVM(t *testing.T) {
	image := filepath.Join(t.TempDir(), "disk.img")
	if err := os.WriteFile(image, make([]byte, 64*512), 0o644); err != nil {
		t.Fatal(err)
	}
	p := startBackend(t, image+",readonly", true)
	mem, err := memory.NewShared([]memory.Range{{GPA: 0, Size: 1 << 20}})
	if err != nil {
		t.Fatal(err)
	}
	defer mem.Close()
	r, err := backend.Dial(p.sock, backend.Config{Mem: mem, Type: virtio.IDBlock})
	if err != nil {
		t.Fatalf("%v\n%s", err, p.stderr)
	}
	var capacity [8]byte
	r.ReadConfig(0, capacity[:])
	if got := binary.LittleEndian.Uint64(capacity[:]); got != 64 {
		t.Errorf("capacity %d sectors, want 64", got)
	}
	if r.Features()&(1<<5) == 0 { // VIRTIO_BLK_F_RO
		t.Error("a read-only image without VIRTIO_BLK_F_RO")
	}
	r.Close()
	if err := p.wait(t); err != nil {
		t.Errorf("the back-end exited: %v\n%s", err, p.stderr)
	}
	if _, err := os.Stat(p.sock); !os.IsNotExist(err) {
		t.Errorf("the socket is still there: %v", err)
	}
}

// TestBackendBlkRefusesBadFlags: the back-end's command line is checked
// before it listens.
func TestBackendBlkRefusesBadFlags(t *testing.T) {
	dir := t.TempDir()
	for _, tt := range []struct {
		name string
		args []string
		want string
	}{
		{"no disk", []string{"--socket", filepath.Join(dir, "a.sock")}, "--socket and --disk are required"},
		{"missing image", []string{"--socket", filepath.Join(dir, "b.sock"), "--disk", filepath.Join(dir, "none.img")}, "no such file"},
		{"a disk that is a back-end", []string{"--socket", filepath.Join(dir, "c.sock"), "--disk", "backend=/x"}, "process of its own"},
		{"unknown option", []string{"--socket", filepath.Join(dir, "d.sock"), "--disk", "x.img,fast"}, "unknown option"},
	} {
		_, _, err := execute(t, append([]string{"backend", "blk"}, tt.args...)...)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: %v, want %q", tt.name, err, tt.want)
		}
	}
}

// TestLinuxMountsExt4FromBackendBlk: the ext4 check of
// TestLinuxMountsExt4FromVirtioBlk with the disk served by `ember backend
// blk` in a process of its own: the guest finds the disk by PCI, mounts
// it, reads the host's file, writes its own, syncs and powers off; the
// back-end flushes when ember hangs up and exits on SIGINT, and the host
// reads the guest's file back from the image.
func TestLinuxMountsExt4FromBackendBlk(t *testing.T) {
	kernel, ird := requireLinux(t)
	requireVirtioModules(t, ird)
	debugfs := requireTool(t, "debugfs")
	const hostText = "hello from the host, through a back-end"
	image := makeExt4(t, hostText)
	p := startBackend(t, image+",serial=backend0", false) // a lab retry connects again
	r := bootExt4Guest(t, kernel, ird, hostText, "backend="+p.sock)
	if w := "ember-init: virtio devices 0x0002 "; !strings.Contains(r.out, w) {
		t.Errorf("the guest did not print %q; its console:\n%s", w, tailString(r.out, 6000))
	}
	if r.status != 0 {
		t.Errorf("ember exited %d: %s", r.status, strings.TrimSpace(r.summary))
	}
	p.proc.Signal(os.Interrupt)
	if err := p.wait(t); err != nil {
		t.Errorf("the back-end exited: %v\n%s", err, p.stderr)
	}
	out, err := exec.Command(debugfs, "-R", "cat /"+linuxguest.GuestFile, image).Output()
	if err != nil || strings.TrimSpace(string(out)) != linuxguest.GuestFileText {
		t.Errorf("the image's %s holds %q (%v), want %q", linuxguest.GuestFile, out, err, linuxguest.GuestFileText)
	}
}

// TestLinuxKeepsRunningWhenBackendDies: the disk's back-end process is
// killed while Debian's kernel runs with the disk mounted and written: ember
// logs the device's failure (the back-end gone, DEVICE_NEEDS_RESET), and
// the VM goes on to power off and exit 0.
func TestLinuxKeepsRunningWhenBackendDies(t *testing.T) {
	kernel, ird := requireLinux(t)
	requireVirtioModules(t, ird)
	image := makeExt4(t, "x")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	const cmdline = "console=ttyS0 ember.end=poweroff ember.ext4=1"
	var killed chan struct{}
	r := retryingInLab(t, ctx, func(ctx context.Context) bootResult {
		// Each try has a back-end of its own: a failed try killed its own.
		p := startBackend(t, image, false)
		killed = make(chan struct{})
		k := killed
		// The init asks for a line once it is done with the disk: kill the
		// back-end then, and wait until it is gone, before the line is typed.
		onSeen := func(mark string, _ int) {
			if mark == linuxguest.MarkPrompt {
				select {
				case <-k:
				default:
					p.proc.Kill()
					p.wait(t)
					close(k)
				}
			}
		}
		return bootLinux(t, ctx, kernel, ird, onSeen, "--disk", "backend="+p.sock, "--cmdline", cmdline)
	})
	if !strings.Contains(r.out, "ember-init: ext4 written") {
		t.Errorf("the guest did not write the disk; its console:\n%s", tailString(r.out, 6000))
	}
	select {
	case <-killed:
	default:
		t.Fatal("the back-end was never killed")
	}
	if r.status != 0 {
		t.Errorf("ember exited %d: %s", r.status, strings.TrimSpace(r.summary))
	}
	if !strings.Contains(r.summary, "virtio-backend: back-end gone") {
		t.Errorf("ember did not log the back-end's death: %s", r.summary)
	}
}
