package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"ember/guest"
	"ember/hv"
	"ember/internal/kvmtest"
)

// execute runs the ember command line with args and returns its output and error.
func execute(t *testing.T, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	var out, errb bytes.Buffer
	root := newRootCmd()
	root.SetArgs(args)
	root.SetOut(&out)
	root.SetErr(&errb)
	err = root.ExecuteContext(context.Background())
	return out.String(), errb.String(), err
}

func TestRunWithNoArgumentsBootsTheDemo(t *testing.T) {
	kvmtest.Require(t)
	out, summary, err := execute(t, "run")
	if err != nil {
		t.Fatalf("ember run: %v\n%s", err, summary)
	}
	for _, want := range []string{"Hello from ember's demo guest", "counted 2262 primes", "Goodbye."} {
		if !strings.Contains(out, want) {
			t.Errorf("console lacks %q:\n%s", want, out)
		}
	}
	if !strings.Contains(summary, "guest exited with status 0") || !strings.Contains(summary, "exits handled in") {
		t.Errorf("summary line = %q", summary)
	}
}

func TestRunExitStatus(t *testing.T) {
	kvmtest.Require(t)
	tests := []struct {
		guest string
		code  int
	}{
		{"real", 0},
		{"prot32", 0},
		{"long64", 0},
		{"ring3", 3},
		{"triple", exitShutdown},
	}
	for _, tt := range tests {
		t.Run(tt.guest, func(t *testing.T) {
			_, _, err := execute(t, "run", "--guest", tt.guest, "-q")
			code := 0
			var ee exitError
			if errors.As(err, &ee) {
				code = ee.code
			} else if err != nil {
				t.Fatal(err)
			}
			if code != tt.code {
				t.Errorf("exit status %d, want %d", code, tt.code)
			}
		})
	}
}

func TestRunRejectsBadFlags(t *testing.T) {
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"run", "--guest", "nope"}, `no built-in guest "nope"`},
		{[]string{"run", "--memory", "lots"}, "bad memory size"},
		{[]string{"run", "--cpus", "0"}, "cpus must be at least 1"},
		{[]string{"run", "extra"}, "unknown command"},
		{[]string{"run", "--disk", "/nonexistent.img"}, "disk: stat /nonexistent.img"},
		{[]string{"run", "--disk", "x.img,cache=unsafe"}, "cache must be none or writeback"},
		{[]string{"run", "--disk", "x.img,bogus"}, `unknown option "bogus"`},
		{[]string{"run", "--disk", "x.img,serial=123456789012345678901"}, "serial longer than 20 bytes"},
		{[]string{"run", "--net", "mac=52:54:00:00:00:01"}, "tap=NAME is required"},
		{[]string{"run", "--net", "tap=t0,mac=01:00:00:00:00:00"}, "mac must be a unicast"},
		{[]string{"run", "--console-device", "usb"}, "console_device must be serial or virtio"},
		{[]string{"run", "--virtio-transport", "ccw"}, "virtio_transport must be pci or mmio"},
		{[]string{"run", "--virtio-transport", "mmio", "--bios", "x.rom"}, "needs a kernel booted directly, not bios"},
		{[]string{"run", "--bios", "/nonexistent.rom"}, "bios: open /nonexistent.rom"},
		{[]string{"run", "--vsock", "cid=2,socket=/tmp/v.sock"}, "cid must be a number from 3"},
		{[]string{"run", "--vsock", "cid=3"}, "both cid=N and socket=PATH are needed"},
		{[]string{"run", "--bios", "x.rom", "--guest", "long64"}, "does not go with a guest"},
		{[]string{"run", "--balloon", "target=2M"}, "not less than the guest's"},
		{[]string{"run", "--balloon", "size=1M"}, `unknown option "size=1M"`},
		{[]string{"run", "--debug-exit-port", "0x501"}, "goes with test_devices"},
		{[]string{"run", "--config", "/nonexistent.json"}, "--config: open /nonexistent.json"},
		{[]string{"run", "--config", "testdata/unknown-field.json"}, `unknown field "cpu"`},
		{[]string{"run", "--cpus", "100000"}, "at most 255"},
		{[]string{"run", "--memory", "64T"}, "more than this host's"},
	}
	for _, tt := range tests {
		_, _, err := execute(t, tt.args...)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%v: err = %v, want %q", tt.args, err, tt.want)
		}
	}
}

func TestKVMInfoJSON(t *testing.T) {
	kvmtest.Require(t)
	out, _, err := execute(t, "kvm-info", "--json")
	if err != nil {
		t.Fatal(err)
	}
	var info kvmInfo
	if err := json.Unmarshal([]byte(out), &info); err != nil {
		t.Fatalf("%v:\n%s", err, out)
	}
	if info.APIVersion != 12 || info.SupportedCPUID == 0 || info.Capabilities["KVM_CAP_IRQCHIP"] == 0 {
		t.Errorf("kvm-info = %+v", info)
	}
}

func TestVersion(t *testing.T) {
	out, _, err := execute(t, "version")
	if err != nil || !strings.HasPrefix(out, "ember ") || !strings.Contains(out, "kvm api 12") {
		t.Errorf("version = %q, %v", out, err)
	}
}

func TestHelpOnEveryCommand(t *testing.T) {
	for _, c := range newRootCmd().Commands() {
		if c.Short == "" {
			t.Errorf("%s has no short help", c.Name())
		}
		out, _, err := execute(t, c.Name(), "--help")
		if err != nil || !strings.Contains(out, "Usage:") {
			t.Errorf("%s --help: %v\n%s", c.Name(), err, out)
		}
	}
}

func TestStatusOf(t *testing.T) {
	tests := []struct {
		res  hv.Result
		code int
	}{
		{hv.Result{Reason: hv.StopExit, Status: 0}, 0},
		{hv.Result{Reason: hv.StopExit, Status: 7}, 7},
		{hv.Result{Reason: hv.StopExit, Status: 0x1ff}, 0xff},
		{hv.Result{Reason: hv.StopShutdown}, exitShutdown},
		{hv.Result{Reason: hv.StopError}, exitVMError},
		{hv.Result{Reason: hv.StopHost}, exitHost},
	}
	for _, tt := range tests {
		err := statusOf(tt.res)
		code := 0
		var ee exitError
		if errors.As(err, &ee) {
			code = ee.code
		}
		if code != tt.code {
			t.Errorf("statusOf(%v) = %d, want %d", tt.res, code, tt.code)
		}
	}
}

// TestRebootPolicy runs a guest that resets through the i8042: with
// --reboot=exit the run ends after one boot; with --reboot=restart ember boots
// it again and again until the timeout stops it.
func TestRebootPolicy(t *testing.T) {
	kvmtest.Require(t)
	_, summary, err := execute(t, "run", "--guest", "reset", "--reboot", "exit")
	if err != nil || strings.Count(summary, "ember: reset: reset") != 1 {
		t.Errorf("--reboot=exit: err %v, summary:\n%s", err, summary)
	}
	_, summary, err = execute(t, "run", "--guest", "reset", "--reboot", "restart", "--timeout", "500ms")
	var ee exitError
	if !errors.As(err, &ee) || ee.code != exitHost {
		t.Errorf("--reboot=restart: err %v, want exit status %d after the timeout", err, exitHost)
	}
	if n := strings.Count(summary, "ember: reset: reset"); n < 2 {
		t.Errorf("--reboot=restart booted %d times before the timeout:\n%s", n, summary)
	}
	if _, _, err := execute(t, "run", "--reboot", "sometimes"); err == nil || !strings.Contains(err.Error(), "reboot must be exit or restart") {
		t.Errorf("bad --reboot: %v", err)
	}
}

// TestEscapeFilter: keystrokes pass to the guest, Ctrl-A x quits, Ctrl-A
// Ctrl-A sends one Ctrl-A, and a sequence split across reads still counts.
func TestEscapeFilter(t *testing.T) {
	tests := []struct {
		name  string
		in    []string
		guest string
		quits int
	}{
		{"plain keys pass", []string{"ls -l\r"}, "ls -l\r", 0},
		{"Ctrl-A x quits", []string{"ab\x01xcd"}, "abcd", 1},
		{"Ctrl-A Ctrl-A sends one", []string{"\x01\x01"}, "\x01", 0},
		{"split across reads", []string{"a\x01", "x"}, "a", 1},
		{"Ctrl-A then another key sends the key", []string{"\x01q"}, "q", 0},
	}
	for _, tt := range tests {
		var got bytes.Buffer
		quits := 0
		f := &escapeFilter{guest: &got, quit: func() { quits++ }}
		for _, s := range tt.in {
			if n, err := f.Write([]byte(s)); err != nil || n != len(s) {
				t.Fatalf("%s: Write = %d, %v", tt.name, n, err)
			}
		}
		if got.String() != tt.guest || quits != tt.quits {
			t.Errorf("%s: guest got %q, quit %d times; want %q, %d", tt.name, got.String(), quits, tt.guest, tt.quits)
		}
	}
}

// TestConsoleDestinations: --console=file writes the guest's console to the
// file and not to stdout; --console=none discards it; a bad value is refused.
func TestConsoleDestinations(t *testing.T) {
	kvmtest.Require(t)
	path := filepath.Join(t.TempDir(), "console.log")
	out, _, err := execute(t, "run", "-q", "--console", "file", "--console-file", path)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(path)
	if !strings.Contains(string(b), "counted 2262 primes") || out != "" {
		t.Errorf("console file has %q, stdout %q", b, out)
	}
	if out, _, err := execute(t, "run", "-q", "--console", "none"); err != nil || out != "" {
		t.Errorf("--console=none: stdout %q, %v", out, err)
	}
	if _, _, err := execute(t, "run", "--console", "tty"); err == nil || !strings.Contains(err.Error(), "--console must be") {
		t.Errorf("--console=tty: %v", err)
	}
	if _, _, err := execute(t, "run", "--console", "file"); err == nil || !strings.Contains(err.Error(), "--console-file") {
		t.Errorf("--console=file without a path: %v", err)
	}
}

// TestRunBIOS boots a firmware ROM with --bios: a 64 KiB reset-vector image
// that prints a line and exits 0.
func TestRunBIOS(t *testing.T) {
	kvmtest.Require(t)
	rom := filepath.Join(t.TempDir(), "hello.rom")
	if err := os.WriteFile(rom, guest.BenchHello.Code, 0o644); err != nil {
		t.Fatal(err)
	}
	out, summary, err := execute(t, "run", "--bios", rom)
	if err != nil || !strings.Contains(summary, "guest exited with status 0") {
		t.Fatalf("ember run --bios: %v\n%s", err, summary)
	}
	if !strings.Contains(out, "ember bench: hello") {
		t.Errorf("the ROM's line is not on the console: %q", out)
	}
}

// TestBenchImagesRunWithBIOS: the benchmark's exit round-trip guests,
// written by ember bench images, run by hand with ember run --bios: the PIO
// and MMIO images make their exits and exit 0, the hello image prints.
func TestBenchImagesRunWithBIOS(t *testing.T) {
	kvmtest.Require(t)
	dir := t.TempDir()
	if _, _, err := execute(t, "bench", "images", "--n", "1600", dir); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"bench_pio.rom", "bench_mmio.rom"} {
		_, summary, err := execute(t, "run", "--bios", filepath.Join(dir, name))
		var exits int
		if i := strings.Index(summary, "; "); i >= 0 {
			fmt.Sscanf(summary[i+2:], "%d exits handled", &exits)
		}
		if err != nil || !strings.Contains(summary, "guest exited with status 0") || exits < 1600 {
			t.Errorf("%s: %v, %d exits\n%s", name, err, exits, summary)
		}
	}
	if out, _, err := execute(t, "run", "--bios", filepath.Join(dir, "bench_hello.rom")); err != nil || !strings.Contains(out, "ember bench: hello") {
		t.Errorf("bench_hello.rom: %v, %q", err, out)
	}
	if _, _, err := execute(t, "bench", "images", "--n", "17", dir); err == nil {
		t.Error("an exit count that is not a multiple of 16 was taken")
	}
}

// TestRunWithVirtioDevices: the demo guest runs with a disk, an entropy
// source, a vsock device and a virtio console attached, and when ember is
// done the vsock's socket is gone again (its listener closed with the VM).
func TestRunWithVirtioDevices(t *testing.T) {
	kvmtest.Require(t)
	dir := t.TempDir()
	disk, sock := filepath.Join(dir, "disk.img"), filepath.Join(dir, "v.sock")
	if err := os.WriteFile(disk, make([]byte, 1<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	out, summary, err := execute(t, "run", "--disk", disk+",serial=d0", "--rng", "--vsock", "cid=3,socket="+sock, "--console-device", "virtio")
	if err != nil || !strings.Contains(summary, "guest exited with status 0") || !strings.Contains(out, "Goodbye.") {
		t.Fatalf("ember run: %v\n%s\n%s", err, summary, out)
	}
	if _, err := os.Stat(sock); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the vsock socket is still there after ember exited (%v)", err)
	}
}

// TestRunMultiboot boots ember's multiboot test kernel with ember run:
// --kernel finds the multiboot header, --initrd and --module become its
// modules, and the kernel reports the command line and each module's
// string (its path first, as GRUB gives it) and first bytes.
func TestRunMultiboot(t *testing.T) {
	kvmtest.Require(t)
	dir := t.TempDir()
	kernel, initrd, mod := filepath.Join(dir, "mb.elf"), filepath.Join(dir, "initrd"), filepath.Join(dir, "mod")
	for path, data := range map[string][]byte{kernel: guest.Multiboot.Code, initrd: []byte("INIT..."), mod: []byte("MODU...")} {
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	out, summary, err := execute(t, "run", "--kernel", kernel, "--memory", "16M", "--cmdline", "answer=42",
		"--initrd", initrd, "--module", mod+",second one")
	if err != nil {
		t.Fatalf("ember run: %v\n%s\n%s", err, out, summary)
	}
	for _, want := range []string{"cmdline=" + kernel + " answer=42", "loader=ember", "mods=00000002",
		"first=54494e49 string=" + initrd, "first=55444f4d string=" + mod + " second one"} {
		if !strings.Contains(out, want) {
			t.Errorf("the kernel did not print %q:\n%s", want, out)
		}
	}
	if _, _, err := execute(t, "run", "--kernel", kernel, "--memory", "16M", "--module", "/nonexistent"); err == nil || !strings.Contains(err.Error(), "module: open /nonexistent") {
		t.Errorf("a missing module: %v", err)
	}
	bad := append([]byte(nil), guest.Multiboot.Code...)
	bad[8] ^= 0xff // the header's checksum
	if err := os.WriteFile(kernel, bad, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, _, err := execute(t, "run", "--kernel", kernel, "--memory", "16M"); err == nil {
		t.Error("a kernel with a broken multiboot header booted")
	}
}

// TestRunConfigFile: ember run --config boots the machine a JSON file
// describes, and a flag given with it overrides the file's field.
func TestRunConfigFile(t *testing.T) {
	kvmtest.Require(t)
	cfg := filepath.Join(t.TempDir(), "vm.json")
	if err := os.WriteFile(cfg, []byte(`{"guest": "long64", "memory": "4M", "cpus": 1}`), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, summary, err := execute(t, "run", "--config", cfg); err != nil || !strings.Contains(summary, "ember: long64:") {
		t.Errorf("ember run --config: %v\n%s", err, summary)
	}
	_, summary, err := execute(t, "run", "--config", cfg, "--guest", "ring3")
	var ee exitError
	if !errors.As(err, &ee) || ee.code != 3 || !strings.Contains(summary, "ember: ring3:") {
		t.Errorf("--guest over the file: %v, want ring3's exit status 3\n%s", err, summary)
	}
}
