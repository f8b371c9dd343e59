package hv

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"ember/guest"
	"ember/internal/gobuild"
	"ember/internal/kvmtest"
)

// buildDeviceModel builds examples/devicemodel into a temporary directory of tb.
func buildDeviceModel(tb testing.TB) string {
	tb.Helper()
	bin, err := gobuild.Build(context.Background(), tb.TempDir(), "ember/examples/devicemodel")
	if err != nil {
		tb.Fatal(err)
	}
	return bin
}

// externalModel is a running examples/devicemodel process and its stdout lines.
type externalModel struct {
	cmd   *exec.Cmd
	lines <-chan string
}

// startExternalModel runs bin against socket and waits for it to be ready
// (its ranges claimed and the client attached).
func startExternalModel(tb testing.TB, bin, socket string, args ...string) *externalModel {
	tb.Helper()
	cmd := exec.Command(bin, append([]string{"-socket", socket}, args...)...)
	r, w, err := os.Pipe()
	if err != nil {
		tb.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = w, os.Stderr
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	w.Close()
	ch := make(chan string, 1024)
	go func() {
		defer close(ch)
		sc := bufio.NewScanner(r)
		for sc.Scan() {
			ch <- sc.Text()
		}
	}()
	tb.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		r.Close()
	})
	m := &externalModel{cmd: cmd, lines: ch}
	m.expect(tb, "ready")
	return m
}

// expect waits for the model's next line that starts with prefix.
func (m *externalModel) expect(tb testing.TB, prefix string) string {
	tb.Helper()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case l, ok := <-m.lines:
			if !ok {
				tb.Fatalf("device model exited before printing %q", prefix)
			}
			if strings.HasPrefix(l, prefix) {
				return l
			}
		case <-timeout:
			tb.Fatalf("no %q line from the device model in 10s", prefix)
		}
	}
}

// syncBuffer is a log sink tests read while the VM writes to it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestExternalDeviceModelServesAGuest: examples/devicemodel, a separate
// process connected to the VM's device-model socket, serves a guest's port
// and MMIO accesses (the guest reports what it read; the model records what
// it was written); killed with SIGKILL while the guest waits on a read, it
// costs that read all ones and a logged error, and the VM goes on: its
// in-process devices answer and the guest exits 0. Closing the VM removes the
// socket.
func TestExternalDeviceModelServesAGuest(t *testing.T) {
	h := openHV(t)
	bin := buildDeviceModel(t)
	socket := filepath.Join(t.TempDir(), "vm.ioreq")
	var logs syncBuffer
	vm, err := h.NewVM(Config{MemorySize: 2 << 20, DeviceModelSocket: socket,
		Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer vm.Close()
	rep := kvmtest.NewReporter()
	if err := vm.PIO.Register(guest.PortReport, 4, "report", rep); err != nil {
		t.Fatal(err)
	}
	dm := startExternalModel(t, bin, socket, "-stall", "0x50c")
	vm.LoadImage(guest.DeviceModel.Code, guest.LoadAddr)
	vm.SetEntry(0, guest.DeviceModel.Entry())
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	type ran struct {
		res Result
		err error
	}
	done := make(chan ran, 1)
	go func() {
		res, err := vm.Run(ctx)
		done <- ran{res, err}
	}()

	for _, want := range []string{
		"write PORTIO 0x508 size 4 value 0xfeedbeef",
		"write MMIO 0xd0000010 size 4 value 0xcafef00d",
	} {
		if l := dm.expect(t, "write"); l != want {
			t.Errorf("device model recorded %q, want %q", l, want)
		}
	}
	dm.expect(t, "stall PORTIO 0x50c") // the guest's read is in the model's hands
	rep.Await(t, 4)
	start := time.Now()
	if err := dm.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	r := <-done
	t.Logf("device model killed mid-request: the guest went on and exited %v later", time.Since(start))
	if r.err != nil || r.res.Reason != StopExit || r.res.Status != 0 {
		t.Fatalf("Run = %v, %v; want exit 0", r.res, r.err)
	}
	want := []uint64{
		0xc0de0504, // port 0x504 as the model serves it
		0xfeedbeef, // port 0x508 read back
		0xcafef00d, // MMIO 0xd0000010 read back
		0x00000040, // MMIO 0xd0000040, never written: low half of 0xfeed0000_00000040
		0xffffffff, // port 0x50c: the model died holding the read
		0x600d,     // the in-process report port still answers
		0xffffffff, // port 0x504: unclaimed since the death
	}
	if got := rep.Values(); fmt.Sprintf("%#x", got) != fmt.Sprintf("%#x", want) {
		t.Errorf("guest reported %#x, want %#x", got, want)
	}
	// The server logs the death once its cleanup has run; wait for that.
	for deadline := time.Now().Add(5 * time.Second); vm.DeviceModelSocket().Clients() != 0 && time.Now().Before(deadline); {
		time.Sleep(time.Millisecond)
	}
	l := logs.String()
	for _, s := range []string{`msg="ioreq: request failed"`, "addr=1292", `err="ioreq: client went away"`, `msg="devicemodel: device model gone"`} {
		if !strings.Contains(l, s) {
			t.Errorf("log lacks %s:\n%s", s, l)
		}
	}
	if err := vm.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(socket); !os.IsNotExist(err) {
		t.Errorf("socket after Close: %v, want it gone", err)
	}
}
