package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	stdnet "net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"ember/internal/gobuild"
	"ember/internal/kvmtest"
	"ember/internal/linuxguest"
)

// TestLinuxUsesVirtioDevices boots Debian's kernel with --rng and a --disk:
// its virtio-pci driver must find both by PCI enumeration, its virtio-rng
// driver must read entropy through the queue, it must read the disk's
// contents as the host wrote them, and a sector it writes and syncs must be
// in the image file when ember has exited. The disk has two request
// queues, which the guest's two vCPUs use as blk-mq's hardware queues.
// The boot log must stay clean.
func TestLinuxUsesVirtioDevices(t *testing.T) {
	kernel, ird := requireLinux(t)
	requireVirtioModules(t, ird)
	image := make([]byte, 1<<20)
	rand.Read(image)
	path := filepath.Join(t.TempDir(), "disk.img")
	if err := os.WriteFile(path, image, 0o644); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(image[:65536])
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	const cmdline = "console=ttyS0 ember.end=poweroff ember.diskwrite=1"
	r := bootLinuxRetryingInLab(t, ctx, kernel, ird, nil, "--cpus", "2", "--rng", "--disk", path+",serial=ember0,queues=2", "--cmdline", cmdline)
	t.Logf("Linux version at %v, /init at %v, exit (status %d) at %v",
		r.con.First(linuxguest.MarkBanner), r.con.First(linuxguest.MarkStarted), r.status, r.took)
	checkUserspace(t, r, ird, cmdline, 2)
	for _, w := range []string{
		"ember-init: virtio devices 0x0002 0x0004 ",             // block and rng, found on the PCI bus
		"ember-init: virtio functions notified through ports 2", // BAR1's notification capability, listed first, chosen
		"ember-init: hwrng 4096 bytes",                          // read through the rng's queue
		"ember-init: vda sha256 " + hex.EncodeToString(sum[:]),
		"ember-init: vda queues 2",
		"ember-init: vda written",
	} {
		if !r.printed(w) {
			t.Errorf("the guest did not print %q; its console:\n%s", w, tailString(r.out, 6000))
		}
	}
	if r.status != 0 {
		t.Errorf("ember exited %d: %s", r.status, strings.TrimSpace(r.summary))
	}
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if want := linuxguest.DiskMarker + "\n"; !strings.HasPrefix(string(got[512:1024]), want) {
		t.Errorf("sector 1 of the image holds %q, want the guest's %q", got[512:512+len(want)], want)
	}
	if string(got[1024:]) != string(image[1024:]) {
		t.Error("the guest's write changed more than sector 1")
	}
}

// TestLinuxMountsExt4FromVirtioBlk: an ext4 image made on the host
// (mkfs.ext4 -d) mounts in the guest from virtio-blk; the guest reads the
// host's file, writes its own, syncs and powers off, and the host reads the
// guest's file back from the image (debugfs). A second disk, read-only,
// refuses the guest's write.
func TestLinuxMountsExt4FromVirtioBlk(t *testing.T) {
	kernel, ird := requireLinux(t)
	requireVirtioModules(t, ird)
	debugfs := requireTool(t, "debugfs")
	const hostText = "hello from the host"
	image := makeExt4(t, hostText)
	ro := filepath.Join(t.TempDir(), "ro.img")
	roBytes := make([]byte, 64<<10)
	rand.Read(roBytes)
	if err := os.WriteFile(ro, roBytes, 0o644); err != nil {
		t.Fatal(err)
	}
	bootExt4Guest(t, kernel, ird, hostText, image, ro+",readonly")
	out, err := exec.Command(debugfs, "-R", "cat /"+linuxguest.GuestFile, image).Output()
	if err != nil || strings.TrimSpace(string(out)) != linuxguest.GuestFileText {
		t.Errorf("the image's %s holds %q (%v), want %q", linuxguest.GuestFile, out, err, linuxguest.GuestFileText)
	}
	if got, _ := os.ReadFile(ro); string(got) != string(roBytes) {
		t.Error("the read-only disk's image changed")
	}
}

// TestLinuxMountsExt4FromQcow2: the ext4 check of
// TestLinuxMountsExt4FromVirtioBlk with both disks qcow2 images (the
// file system converted by qemu-img, compressed, so the guest's first
// writes land in compressed clusters; the read-only disk converted from
// raw): the guest mounts the file system, reads the host's file, writes
// its own, syncs and powers off, and fails to write the read-only disk.
// Afterwards qemu-img finds the image consistent, with no leak, and the
// host reads the guest's file back from it.
func TestLinuxMountsExt4FromQcow2(t *testing.T) {
	kernel, ird := requireLinux(t)
	requireVirtioModules(t, ird)
	debugfs := requireTool(t, "debugfs")
	img := requireToolPkg(t, "qemu-img", "qemu-utils")
	const hostText = "hello from the host, in a qcow2 image"
	dir := t.TempDir()
	qcow := filepath.Join(dir, "ext4.qcow2")
	qemuImg(t, img, "convert", "-c", "-O", "qcow2", makeExt4(t, hostText), qcow)
	roRaw, ro := filepath.Join(dir, "ro.raw"), filepath.Join(dir, "ro.qcow2")
	if err := os.WriteFile(roRaw, bytes.Repeat([]byte("ember"), 20<<10), 0o644); err != nil {
		t.Fatal(err)
	}
	qemuImg(t, img, "convert", "-O", "qcow2", roRaw, ro)
	roBefore, err := os.ReadFile(ro)
	if err != nil {
		t.Fatal(err)
	}
	bootExt4Guest(t, kernel, ird, hostText, qcow, ro+",readonly,format=qcow2")
	if out := qemuImg(t, img, "check", qcow); !strings.Contains(out, "No errors were found") || strings.Contains(out, "leaked") {
		t.Errorf("qemu-img check after the guest:\n%s", out)
	}
	raw := filepath.Join(dir, "ext4.raw")
	qemuImg(t, img, "convert", "-O", "raw", qcow, raw)
	out, err := exec.Command(debugfs, "-R", "cat /"+linuxguest.GuestFile, raw).Output()
	if err != nil || strings.TrimSpace(string(out)) != linuxguest.GuestFileText {
		t.Errorf("the image's %s holds %q (%v), want %q", linuxguest.GuestFile, out, err, linuxguest.GuestFileText)
	}
	if got, _ := os.ReadFile(ro); !bytes.Equal(got, roBefore) {
		t.Error("the read-only qcow2 image changed")
	}
}

// bootExt4Guest boots the guest's ext4 check (ember.ext4=1) with disks,
// each a --disk value, and fails t unless the guest read hostText from
// the file system on vda and wrote its own file, and, given a second
// disk, failed to write vdb (read-only). It returns the boot's result.
func bootExt4Guest(t *testing.T, kernel string, ird testInitramfs, hostText string, disks ...string) bootResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	const cmdline = "console=ttyS0 ember.end=poweroff ember.ext4=1"
	var args []string
	for _, d := range disks {
		args = append(args, "--disk", d)
	}
	r := bootLinuxRetryingInLab(t, ctx, kernel, ird, nil, append(args, "--cmdline", cmdline)...)
	checkUserspace(t, r, ird, cmdline, 1)
	want := []string{"ember-init: ext4 read [" + hostText + "]", "ember-init: ext4 written"}
	if len(disks) > 1 {
		want = append(want, "ember-init: vdb write refused")
	}
	for _, w := range want {
		if !r.printed(w) {
			t.Errorf("the guest did not print %q; its console:\n%s", w, tailString(r.out, 6000))
		}
	}
	return r
}

// qemuImg runs qemu-img with args and returns its output, failing t if
// it fails.
func qemuImg(t *testing.T, img string, args ...string) string {
	t.Helper()
	out, err := exec.Command(img, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("qemu-img %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// makeExt4 makes an 8 MiB ext4 image (mkfs.ext4 -d) holding
// linuxguest.HostFile with text, for the guest's ext4 check (ember.ext4=1).
func makeExt4(t *testing.T, text string) string {
	t.Helper()
	mkfs := requireTool(t, "mkfs.ext4")
	dir := t.TempDir()
	content := filepath.Join(dir, "content")
	if err := os.Mkdir(content, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(content, linuxguest.HostFile), []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	image := filepath.Join(dir, "ext4.img")
	if out, err := exec.Command(mkfs, "-q", "-F", "-d", content, image, "8M").CombinedOutput(); err != nil {
		t.Fatalf("mkfs.ext4: %v\n%s", err, out)
	}
	return image
}

// requireVirtioModules skips (fails in CI) where the initramfs has no
// virtio modules to load.
func requireVirtioModules(t *testing.T, ird testInitramfs) {
	t.Helper()
	if ird.virtio {
		return
	}
	const why = "the kernel's tree has no virtio modules (.ci/run extracts them next to boot/)"
	if os.Getenv(kvmtest.RequireEnv) != "" {
		t.Fatal(why)
	}
	t.Skip("skipping: " + why)
}

// requireTool returns the path of an e2fsprogs tool the test needs, or
// skips (fails in CI, which installs it).
func requireTool(t *testing.T, name string) string {
	t.Helper()
	return requireToolPkg(t, name, "e2fsprogs")
}

// requireToolPkg is requireTool for a tool of Debian package pkg.
func requireToolPkg(t *testing.T, name, pkg string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err == nil {
		return p
	}
	for _, dir := range []string{"/usr/sbin", "/sbin"} {
		if _, err := os.Stat(filepath.Join(dir, name)); err == nil {
			return filepath.Join(dir, name)
		}
	}
	if os.Getenv(kvmtest.RequireEnv) != "" {
		t.Fatalf("%s is not installed (apt-get install %s; .ci/run does)", name, pkg)
	}
	t.Skipf("skipping: %s is not installed (apt-get install %s)", name, pkg)
	return ""
}

// TestLinuxVirtioConsole boots with --console-device virtio: the init moves
// its stdio to /dev/hvc0 once Linux's virtio_console has found the device,
// and what it prints, and the line typed on ember's console that it reads
// and echoes, go through the virtio-console's queues.
func TestLinuxVirtioConsole(t *testing.T) {
	kernel, ird := requireLinux(t)
	requireVirtioModules(t, ird)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	const cmdline = "console=ttyS0 ember.end=poweroff ember.hvc=1"
	r := bootLinuxRetryingInLab(t, ctx, kernel, ird, nil, "--console-device", "virtio", "--cmdline", cmdline)
	checkUserspace(t, r, ird, cmdline, 1) // the echo proves input through hvc0
	if !r.printed("ember-init: console hvc0") {
		t.Errorf("the init never switched to hvc0; its console:\n%s", tailString(r.out, 6000))
	}
	if r.status != 0 {
		t.Errorf("ember exited %d: %s", r.status, strings.TrimSpace(r.summary))
	}
}

// TestLinuxPingsOverVirtioNet: with --net on a TAP whose host end is
// 10.0.2.1/24, the guest gives its virtio-net interface (eth0) 10.0.2.15/24
// and pings the host, and the replies come back: frames go both ways
// through the device's queues and the TAP — moved by ember, and with
// vhost=on by the kernel's vhost-net. With queues=2 on a multi-queue TAP
// a guest of two vCPUs finds two queue pairs and pings from each CPU,
// whose packets leave by its own transmit queue: with both pairs on one
// thread of ember's, a thread each, and vhost-net's.
func TestLinuxPingsOverVirtioNet(t *testing.T) {
	for _, tc := range []struct {
		opts   string // --net's options after the TAP and MAC
		pairs  int
		vhost  bool
		queues string // what the guest lists in /sys/class/net/eth0/queues
	}{
		{"vhost=off", 1, false, "rx-0 tx-0"},
		{"vhost=on", 1, true, "rx-0 tx-0"},
		{"queues=2,threads=1", 2, false, "rx-0 rx-1 tx-0 tx-1"},
		{"queues=2,threads=2", 2, false, "rx-0 rx-1 tx-0 tx-1"},
		{"queues=2,vhost=on", 2, true, "rx-0 rx-1 tx-0 tx-1"},
	} {
		t.Run(tc.opts, func(t *testing.T) {
			if tc.vhost {
				kvmtest.RequireVhostNet(t)
			}
			kernel, ird := requireLinux(t)
			requireVirtioModules(t, ird)
			tap := hostTAP(t, linuxguest.HostIP+"/24", tc.pairs > 1)
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
			defer cancel()
			const cmdline = "console=ttyS0 ember.end=poweroff ember.net=1"
			r := bootLinuxRetryingInLab(t, ctx, kernel, ird, nil, "--cpus", strconv.Itoa(tc.pairs),
				"--net", "tap="+tap+",mac=52:54:00:12:34:56,"+tc.opts, "--cmdline", cmdline)
			checkUserspace(t, r, ird, cmdline, tc.pairs)
			want := []string{
				"ember-init: ping " + linuxguest.HostIP + " ok",
				"ember-init: eth0 queues " + tc.queues + " \r\n",
			}
			for c := range tc.pairs {
				want = append(want, fmt.Sprintf("ember-init: ping from cpu %d ok", c))
			}
			for _, w := range want {
				if !r.printed(w) {
					t.Errorf("the guest did not print %q; its console:\n%s", w, tailString(r.out, 6000))
				}
			}
		})
	}
}

// hostTAP creates a TAP interface with addr on the host, up, removed when
// the test ends; a multi-queue one if multiQueue. It needs root,
// /dev/net/tun and iproute2, which the lab and CI have; elsewhere it
// skips.
func hostTAP(t *testing.T, addr string, multiQueue bool) string {
	t.Helper()
	ip := requireToolPkg(t, "ip", "iproute2")
	if _, err := os.Stat("/dev/net/tun"); err != nil || os.Geteuid() != 0 {
		why := "a TAP needs root and /dev/net/tun"
		if os.Getenv(kvmtest.RequireEnv) != "" {
			t.Fatal(why)
		}
		t.Skip("skipping: " + why)
	}
	name := fmt.Sprintf("embt%d", os.Getpid()%100000)
	if err := linuxguest.AddTAP(ip, name, addr, multiQueue); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { exec.Command(ip, "link", "del", name).Run() })
	return name
}

// TestLinuxVsock: a guest program (internal/linuxguest/vsockcheck, built for
// the test) talks to the host through --vsock both ways: it connects to
// CID 2 port 1234 and gets its line echoed by the host's listener at
// PATH_1234; then the host connects to PATH, writes "CONNECT 5000", and
// exchanges a line with the guest's listener.
func TestLinuxVsock(t *testing.T) {
	bin, err := gobuild.BuildStatic(context.Background(), t.TempDir(), "ember/internal/linuxguest/vsockcheck")
	if err != nil {
		t.Fatal(err)
	}
	prog, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	kernel, ird := requireLinux(t, linuxguest.File{Path: "bin/vsockcheck", Data: prog})
	requireVirtioModules(t, ird)
	sock := filepath.Join(t.TempDir(), "v.sock")
	ln, err := stdnet.Listen("unix", sock+"_1234")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go echoOnce(ln)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	fromHost := make(chan string, 1)
	go func() { fromHost <- talkToGuest(ctx, sock, 5000, "hello from the host") }()
	const cmdline = "console=ttyS0 ember.end=poweroff ember.vsock=1"
	r := bootLinuxRetryingInLab(t, ctx, kernel, ird, nil, "--vsock", "cid=3,socket="+sock, "--cmdline", cmdline)
	checkUserspace(t, r, ird, cmdline, 1)
	for _, w := range []string{
		"ember-init: vsock to host read [ping from the guest]",
		"ember-init: vsock from host read [hello from the host]",
	} {
		if !r.printed(w) {
			t.Errorf("the guest did not print %q; its console:\n%s", w, tailString(r.out, 6000))
		}
	}
	select {
	case got := <-fromHost:
		if got != "echo hello from the host" {
			t.Errorf("the host read %q from the guest, want its echo", got)
		}
	case <-time.After(10 * time.Second):
		t.Error("the host's connection to the guest never finished")
	}
}

// echoOnce accepts one connection on ln and echoes one line to it.
func echoOnce(ln stdnet.Listener) {
	c, err := ln.Accept()
	if err != nil {
		return
	}
	defer c.Close()
	line, err := bufio.NewReader(c).ReadString('\n')
	if err == nil {
		io.WriteString(c, line)
	}
}

// talkToGuest connects to the guest's port through the vsock socket (again
// and again until the guest listens, or ctx ends), sends line and returns
// the guest's answer.
func talkToGuest(ctx context.Context, sock string, port int, line string) string {
	for ctx.Err() == nil {
		if got, ok := tryGuest(sock, port, line); ok {
			return got
		}
		time.Sleep(200 * time.Millisecond)
	}
	return ""
}

// tryGuest is one attempt of talkToGuest: false if the guest refused.
func tryGuest(sock string, port int, line string) (string, bool) {
	c, err := stdnet.Dial("unix", sock)
	if err != nil {
		return "", false
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(30 * time.Second))
	fmt.Fprintf(c, "CONNECT %d\n", port)
	rd := bufio.NewReader(c)
	if ok, err := rd.ReadString('\n'); err != nil || !strings.HasPrefix(ok, "OK ") {
		return "", false
	}
	fmt.Fprintln(c, line)
	got, err := rd.ReadString('\n')
	if err != nil {
		return "", false
	}
	return strings.TrimSpace(got), true
}

// TestLinuxBalloon: Debian's kernel finds the virtio-balloon device, its
// driver inflates the balloon to the 16 MiB target ember set, and since
// deflate-on-OOM was not offered those pages leave the guest's MemTotal.
func TestLinuxBalloon(t *testing.T) {
	kernel, ird := requireLinux(t)
	requireVirtioModules(t, ird)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	const cmdline = "console=ttyS0 ember.end=poweroff ember.balloon=1"
	r := bootLinuxRetryingInLab(t, ctx, kernel, ird, nil, "--balloon", "target=16M,stats=1s", "--cmdline", cmdline)
	checkUserspace(t, r, ird, cmdline, 1)
	if !r.printed("ember-init: virtio devices 0x0005") {
		t.Errorf("the guest did not find the balloon (virtio device 5); its console:\n%s", tailString(r.out, 6000))
	}
	i := strings.Index(r.out, "ember-init: balloon memtotal ")
	var before, after int
	if i < 0 {
		t.Fatalf("the guest did not report its MemTotal with the balloon; its console:\n%s", tailString(r.out, 6000))
	}
	fmt.Sscanf(r.out[i:], "ember-init: balloon memtotal %d -> %d kB", &before, &after)
	if before-after < 16384 {
		t.Errorf("MemTotal went from %d to %d kB: the 16 MiB balloon did not inflate", before, after)
	}
	if r.status != 0 {
		t.Errorf("ember exited %d: %s", r.status, strings.TrimSpace(r.summary))
	}
}
