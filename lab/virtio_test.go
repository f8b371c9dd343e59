package main

import (
	"bytes"
	"errors"
	"fmt"
	"maps"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"ember/virtio/blk"
	"ember/virtio/blk/qcow2"
)

// daemonEnv, set to "SOCKET,PIDFILE", makes the test binary a stand-in for
// a back-end daemon (TestMain): it listens on SOCKET, writes its pid to
// PIDFILE, says so on standard output and runs until SIGTERM.
const daemonEnv = "EMBER_LAB_TEST_DAEMON"

func TestMain(m *testing.M) {
	if v := os.Getenv(daemonEnv); v != "" {
		os.Exit(standInDaemon(v))
	}
	os.Exit(m.Run())
}

// standInDaemon is the daemon daemonEnv asks for.
func standInDaemon(v string) int {
	sock, pidfile, _ := strings.Cut(v, ",")
	term := make(chan os.Signal, 1)
	signal.Notify(term, syscall.SIGTERM)
	l, err := net.Listen("unix", sock)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer l.Close()
	if err := os.WriteFile(pidfile, []byte(strconv.Itoa(os.Getpid())), 0o644); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Println("stand-in daemon listening")
	<-term
	return 0
}

// TestWithDaemonRunsTheVMMBesideItsDaemon: the command line starts the
// daemon, runs the VMM once the daemon's socket is there, keeps the
// daemon's standard output off the VMM's (the guest's console), exits
// with the VMM's status, and leaves no daemon and no socket behind.
func TestWithDaemonRunsTheVMMBesideItsDaemon(t *testing.T) {
	if _, err := os.Stat("/bin/bash"); err != nil {
		t.Skip("no /bin/bash, which the lab's command lines use")
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	sock, pidfile := filepath.Join(dir, "d.sock"), filepath.Join(dir, "pid")
	vmm := []string{"/bin/sh", "-c", `test -S "$0" && echo "the socket is there"; exit 3`, sock}
	argv := withDaemon(sock, []string{exe}, vmm)

	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), daemonEnv+"="+sock+","+pidfile)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err = cmd.Run()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 3 {
		t.Errorf("the command line ended with %v, want the VMM's exit status 3\nstderr: %s", err, stderr.String())
	}
	if got := stdout.String(); got != "the socket is there\n" {
		t.Errorf("standard output %q, want the VMM's line alone (the socket there before it ran, the daemon's line elsewhere)", got)
	}
	if !strings.Contains(stderr.String(), "stand-in daemon listening") {
		t.Errorf("the daemon's standard output is not on standard error: %q", stderr.String())
	}
	b, err := os.ReadFile(pidfile)
	if err != nil {
		t.Fatalf("the daemon never started: %v", err)
	}
	pid, _ := strconv.Atoi(string(b))
	if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
		t.Errorf("the daemon (pid %d) outlived the command line: kill 0 gave %v", pid, err)
	}
	if _, err := os.Stat(sock); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the socket is left behind: %v", err)
	}
}

// TestWithDaemonFailsWithoutItsSocket: a daemon that exits without making
// its socket fails the command line at once, saying so, and the VMM never
// runs.
func TestWithDaemonFailsWithoutItsSocket(t *testing.T) {
	if _, err := os.Stat("/bin/bash"); err != nil {
		t.Skip("no /bin/bash, which the lab's command lines use")
	}
	dir := t.TempDir()
	sock, ran := filepath.Join(dir, "d.sock"), filepath.Join(dir, "ran")
	argv := withDaemon(sock, []string{"/bin/false"}, []string{"/bin/touch", ran})
	cmd := exec.Command(argv[0], argv[1:]...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	start := time.Now()
	err := cmd.Run()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 1 {
		t.Errorf("the command line ended with %v, want status 1", err)
	}
	if time.Since(start) > 4*time.Second {
		t.Errorf("took %v: it waited out the socket's 5 s for a daemon already gone", time.Since(start))
	}
	if !strings.Contains(stderr.String(), "/bin/false made no socket "+sock) {
		t.Errorf("standard error %q does not say the daemon made no socket", stderr.String())
	}
	if _, err := os.Stat(ran); err == nil {
		t.Error("the VMM ran without its daemon's socket")
	}
}

// TestParseBenchReadsEveryMeasure: the guest program's lines give every
// measure of the table, its block times among them, and a console that
// lacks one is an error.
func TestParseBenchReadsEveryMeasure(t *testing.T) {
	console := `ember-bench: seq-read MB/s 98.5
ember-bench: seq-read requests/MiB 1.00
ember-bench: seq-read median ms 9.71
ember-bench: seq-read slowest ms 48.2
ember-bench: rand-read IOPS 1338
ember-bench: seq-write MB/s 91.0
ember-bench: seq-write requests/MiB 1.00
ember-bench: seq-write median ms 10.02
ember-bench: seq-write slowest ms 31.5
`
	m, err := parseBench(console)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]float64{"seq-read MB/s": 98.5, "rand-read IOPS": 1338, "seq-write MB/s": 91,
		"seq-read median ms": 9.71, "seq-read slowest ms": 48.2, "seq-write median ms": 10.02, "seq-write slowest ms": 31.5}
	if !maps.Equal(m, want) {
		t.Errorf("parseBench = %v, want %v", m, want)
	}
	if _, err := parseBench(strings.Replace(console, "seq-write slowest ms", "seq-write slowest", 1)); err == nil {
		t.Error("a console without seq-write slowest ms parsed")
	}
}

// TestDiskImageFormats: the benchmark's disk is the raw image itself, or
// a qcow2 image qemu-img made of it that ember's disk takes for qcow2 and
// reads as the same bytes; another format is refused by name.
func TestDiskImageFormats(t *testing.T) {
	raw := filepath.Join(t.TempDir(), "ember-bench-disk.img")
	want := bytes.Repeat([]byte{0x5a, 0xa5}, 512<<10)
	if err := os.WriteFile(raw, want, 0o644); err != nil {
		t.Fatal(err)
	}
	if img, err := diskImage(t.Context(), raw, blk.FormatRaw); err != nil || img != raw {
		t.Fatalf("raw: %q, %v; want the raw image itself", img, err)
	}
	if _, err := diskImage(t.Context(), raw, "vmdk"); err == nil || !strings.Contains(err.Error(), "vmdk") {
		t.Fatalf("vmdk: %v, want an error naming it", err)
	}
	if _, err := exec.LookPath("qemu-img"); err != nil {
		t.Skip("qemu-img not installed (apt-get install qemu-utils; .ci/run installs it)")
	}
	img, err := diskImage(t.Context(), raw, blk.FormatQcow2)
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(img)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	im, err := qcow2.Open(f, true)
	if err != nil {
		t.Fatal(err)
	}
	got := make([]byte, im.Size())
	if _, err := im.ReadAt([][]byte{got}, 0, false); err != nil || !bytes.Equal(got, want) {
		t.Fatalf("the qcow2 image reads otherwise than the raw one (%v)", err)
	}
}
