package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"ember/internal/kvmtest"
	"ember/internal/linuxguest"
	"ember/kvm"
)

// kernelEnv names the Linux kernel the real-kernel tests boot (Debian's cloud
// kernel in CI; see .ci/run), as in package vmm.
const kernelEnv = "EMBER_KERNEL"

// testInitramfs is the initramfs of one test run, written to a file.
type testInitramfs struct {
	path   string
	sum    string // sha256 of the blob the init checks
	virtio bool   // the init loads the kernel's virtio modules
}

// requireLinux returns the kernel to boot and the initramfs, or skips (fails
// under EMBER_REQUIRE_KVM) when KVM, the kernel or busybox-static is missing.
func requireLinux(t *testing.T, extra ...linuxguest.File) (string, testInitramfs) {
	t.Helper()
	kvmtest.Require(t)
	if kvm.Backend() == kvm.BackendPVM {
		// Not a failure to hide: this KVM cannot run a kernel past its
		// early boot (DESIGN.md); CI runs these tests in the lab.
		t.Skip("skipping: kvm-pvm emulates guest ring 0 and stops Linux in its early boot; run these in the lab: go run ./lab test ./cmd/ember -run Linux")
	}
	kernel := os.Getenv(kernelEnv)
	if kernel == "" {
		if os.Getenv(kvmtest.RequireEnv) != "" {
			t.Fatalf("%s is not set: CI must boot a real kernel (see .ci/run)", kernelEnv)
		}
		t.Skipf("skipping: set %s to a bzImage (e.g. Debian's vmlinuz) to boot a real kernel", kernelEnv)
	}
	ird, err := linuxguest.BuildFromSystem(kernel, extra...)
	if err != nil {
		if os.Getenv(kvmtest.RequireEnv) != "" {
			t.Fatal(err)
		}
		t.Skipf("skipping: %v", err)
	}
	path := filepath.Join(t.TempDir(), "initramfs.cpio")
	if err := os.WriteFile(path, ird.Data, 0o644); err != nil {
		t.Fatal(err)
	}
	return kernel, testInitramfs{path: path, sum: ird.SHA256, virtio: ird.Modules > 0}
}

// bootResult is one `ember run --kernel` as the user sees it.
type bootResult struct {
	out, summary string
	status       int
	took         time.Duration
	con          *linuxguest.Console
}

// kernelLogLine is one line of the kernel's log on the console. The kernel
// writes to the serial port whenever it logs, so its lines can land in the
// middle of a line the init is writing.
var kernelLogLine = regexp.MustCompile(`\[ *\d+\.\d+\] [^\n]*\n`)

// user is the console without the kernel's log lines: what the guest's
// programs printed, each of their lines whole again.
func (r bootResult) user() string { return kernelLogLine.ReplaceAllString(r.out, "") }

// printed reports whether the guest's programs printed w.
func (r bootResult) printed(w string) bool {
	return strings.Contains(r.out, w) || strings.Contains(r.user(), w)
}

// bootLinux runs `ember run` on kernel and initrd with args added; its
// console types a line when the init asks and calls onSeen for every mark.
func bootLinux(t *testing.T, ctx context.Context, kernel string, ird testInitramfs, onSeen func(string, int), args ...string) bootResult {
	t.Helper()
	inR, inW := io.Pipe()
	defer inW.Close()
	con := linuxguest.NewConsole(inW, onSeen)
	var summary bytes.Buffer
	root := newRootCmd()
	root.SetArgs(append([]string{"run", "--kernel", kernel, "--initrd", ird.path, "--memory", "256M"}, args...))
	root.SetIn(inR)
	root.SetOut(con)
	root.SetErr(&summary)
	err := root.ExecuteContext(ctx)
	r := bootResult{out: con.String(), summary: summary.String(), took: con.Elapsed(), con: con}
	var ee exitError
	switch {
	case errors.As(err, &ee):
		r.status = ee.code
	case err != nil:
		t.Fatalf("ember run: %v\n%s", err, r.summary)
	}
	return r
}

// labBootLimit bounds one boot inside the lab, where a boot takes about 20 s
// and a stuck one is the lab's (see bootLinuxRetryingInLab).
const labBootLimit = 2 * time.Minute

// bootLinuxRetryingInLab is bootLinux, with one more try for a boot that
// triple-faults or stalls past labBootLimit inside the lab (retryingInLab).
func bootLinuxRetryingInLab(t *testing.T, ctx context.Context, kernel string, ird testInitramfs, onSeen func(string, int), args ...string) bootResult {
	t.Helper()
	return retryingInLab(t, ctx, func(ctx context.Context) bootResult {
		return bootLinux(t, ctx, kernel, ird, onSeen, args...)
	})
}

// labBootTries is how many times retryingInLab boots a guest the lab
// triple-faulted or stalled: three, as `lab net` and `lab blk` try a boot
// (on 2026-12-04 a third of the lab's Linux boots triple-faulted, and a
// CI run lost a test to two in a row).
const labBootTries = 3

// retryingInLab runs boot once and, inside the lab (kvmtest.InLab), again,
// up to labBootTries in all, while the guest triple-faulted or the boot
// stalled past labBootLimit:
// QEMU's software SVM under the lab's KVM now and then does either to a
// guest. boot makes afresh whatever a try uses up (a back-end the last try
// killed). The retry is logged with the end of the first try's console, so
// a guest that panicked, rather than the lab, is there to see. Anywhere
// else the first boot is the result.
func retryingInLab(t *testing.T, ctx context.Context, boot func(context.Context) bootResult) bootResult {
	t.Helper()
	return retrying(t, ctx, kvmtest.InLab(), boot)
}

// retrying is retryingInLab with the lab's presence as a parameter, for
// TestRetryingBootsAgainOnlyInTheLab.
func retrying(t testing.TB, ctx context.Context, inLab bool, boot func(context.Context) bootResult) bootResult {
	t.Helper()
	if !inLab {
		return boot(ctx)
	}
	for attempt := 1; ; attempt++ {
		bootCtx, cancel := context.WithTimeout(ctx, labBootLimit)
		r := boot(bootCtx)
		stalled := errors.Is(bootCtx.Err(), context.DeadlineExceeded)
		cancel()
		if attempt == labBootTries || (r.status != exitShutdown && !stalled) {
			return r
		}
		t.Logf("%s (%s), booting again: %s\nthe console's end:\n%s", kvmtest.FlakeMark,
			map[bool]string{true: "stalled", false: "triple fault"}[stalled], strings.TrimSpace(r.summary), tailString(r.out, 2000))
	}
}

// parallelOutsideLab runs the boots of a test side by side, except in the
// lab: there two guests booting at once made the lab's own flaws (README,
// "Host notes") strike several times as often.
func parallelOutsideLab(t *testing.T) {
	if !kvmtest.InLab() {
		t.Parallel()
	}
}

// kernelTrouble finds what a healthy boot never prints.
var kernelTrouble = regexp.MustCompile(`(?m)^.*(WARNING:|Oops|BUG:|unchecked MSR access|Call Trace).*$`)

// TestLinuxToUserspace boots Debian's kernel through each boot path with 1
// and 4 vCPUs into a busybox initramfs whose /init checks what ember handed
// it, answers a line typed on ember's console and powers off: `ember run`
// must then exit with status 0, and the boot log must be clean.
func TestLinuxToUserspace(t *testing.T) {
	kernel, ird := requireLinux(t)
	for _, mode := range []string{"decompress", "bzimage", "pvh"} {
		for _, cpus := range []int{1, 4} {
			t.Run(fmt.Sprintf("%s/%dcpu", mode, cpus), func(t *testing.T) {
				parallelOutsideLab(t)
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
				defer cancel()
				marker := make([]byte, 8)
				rand.Read(marker)
				cmdline := "console=ttyS0 ember.marker=" + hex.EncodeToString(marker) + " ember.end=poweroff"
				r := bootLinuxRetryingInLab(t, ctx, kernel, ird, nil, "--boot", mode, "--cpus", strconv.Itoa(cpus), "--cmdline", cmdline)
				t.Logf("%s, %d vCPUs: Linux version at %v, /init at %v, exit (status %d) at %v",
					mode, cpus, r.con.First(linuxguest.MarkBanner), r.con.First(linuxguest.MarkStarted), r.status, r.took)
				checkUserspace(t, r, ird, cmdline, cpus)
				if r.status != 0 || !strings.Contains(r.summary, "powered off") {
					t.Errorf("poweroff: ember exited %d with %q, want 0 and \"powered off\"", r.status, strings.TrimSpace(r.summary))
				}
			})
		}
	}
}

// checkUserspace checks what the init reported.
func checkUserspace(t *testing.T, r bootResult, ird testInitramfs, cmdline string, cpus int) {
	t.Helper()
	want := []string{
		"ember-init: initrd sha256 " + ird.sum,
		"ember-init: cmdline " + cmdline,
		fmt.Sprintf("ember-init: cpus %d\r\n", cpus),
		linuxguest.Echo,
	}
	for _, w := range want {
		if !r.printed(w) {
			t.Errorf("the guest did not print %q; its console:\n%s", w, tailString(r.out, 4000))
		}
	}
	m := regexp.MustCompile(`ember-init: memtotal (\d+) kB`).FindStringSubmatch(r.user())
	if m == nil {
		t.Errorf("no memory report")
	} else if kb, _ := strconv.Atoi(m[1]); kb > 256<<10 || kb < 200<<10 {
		t.Errorf("the guest has %d KiB, ember gave it 256 MiB", kb)
	}
	for _, bad := range kernelTrouble.FindAllString(r.out, -1) {
		t.Errorf("boot log: %s", bad)
	}
}

// TestLinuxReboot: a guest's reboot ends `ember run` (status 0) by default,
// and with --reboot=restart boots the same kernel again.
func TestLinuxReboot(t *testing.T) {
	kernel, ird := requireLinux(t)
	const cmdline = "console=ttyS0 ember.end=reboot"
	t.Run("exit", func(t *testing.T) {
		parallelOutsideLab(t)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		r := bootLinuxRetryingInLab(t, ctx, kernel, ird, nil, "--cmdline", cmdline)
		checkUserspace(t, r, ird, cmdline, 1)
		if r.status != 0 || !strings.Contains(r.summary, "reset") {
			t.Errorf("reboot: ember exited %d with %q, want 0 and \"reset\"", r.status, strings.TrimSpace(r.summary))
		}
	})
	t.Run("restart", func(t *testing.T) {
		parallelOutsideLab(t)
		limit := 8 * time.Minute
		if kvmtest.InLab() {
			limit = 2 * labBootLimit // two boots
		}
		ctx, cancel := context.WithTimeout(context.Background(), limit)
		defer cancel()
		// Stop from the host once the second boot has reached its prompt.
		var stopped atomic.Bool
		stop := func(mark string, n int) {
			if mark == linuxguest.MarkPrompt && n == 2 {
				stopped.Store(true)
				cancel()
			}
		}
		r := bootLinux(t, ctx, kernel, ird, stop, "--cmdline", cmdline, "--reboot", "restart")
		if !stopped.Load() && kvmtest.InLab() && r.con.Count(linuxguest.MarkStarted) < 2 {
			t.Logf("%s (%s), booting again", kvmtest.FlakeMark, strings.TrimSpace(r.summary))
			ctx, cancel = context.WithTimeout(context.Background(), limit)
			defer cancel()
			r = bootLinux(t, ctx, kernel, ird, stop, "--cmdline", cmdline, "--reboot", "restart")
		}
		if got := r.con.Count(linuxguest.MarkStarted); got != 2 {
			t.Errorf("/init ran %d times, want 2 (a boot, a reboot, a second boot)", got)
		}
		if got := strings.Count(r.out, linuxguest.Echo); got < 1 {
			t.Errorf("the first boot did not read its line")
		}
		if r.status != exitHost {
			t.Errorf("ember exited %d after a host stop, want %d", r.status, exitHost)
		}
	})
}

// TestLinuxSuspendToRAM: a guest's `echo mem > /sys/power/state` with the
// RTC's wake alarm set suspends it to RAM (ACPI S3), and ember resumes it at
// its waking vector when the alarm fires: Linux brings its other CPUs back
// with INIT/SIPI, and the init carries on, reads its line and powers off,
// with a clean kernel log.
func TestLinuxSuspendToRAM(t *testing.T) {
	kernel, ird := requireLinux(t)
	const cmdline = "console=ttyS0 ember.s3=1 ember.end=poweroff"
	for _, tt := range []struct {
		cpus   int
		online string // /sys/devices/system/cpu/online after the resume
	}{{1, "0"}, {2, "0-1"}} {
		t.Run(fmt.Sprintf("%dcpu", tt.cpus), func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
			defer cancel()
			r := bootLinuxRetryingInLab(t, ctx, kernel, ird, nil, "--cmdline", cmdline, "--cpus", strconv.Itoa(tt.cpus))
			checkUserspace(t, r, ird, cmdline, tt.cpus)
			// "mem" must have been S3 ("deep"), not suspend-to-idle, which
			// an RTC interrupt ends without any sleep state: the kernel
			// says which.
			for _, w := range []string{
				"mem_sleep [s2idle [deep]]",
				"ACPI: PM: Preparing to enter system sleep state S3",
				"ACPI: PM: Waking up from system sleep state S3",
				linuxguest.S3Resumed + " (cpus online " + tt.online + ")",
			} {
				if !r.printed(w) {
					t.Errorf("the console lacks %q:\n%s", w, tailString(r.out, 6000))
				}
			}
			t.Logf("suspend and resume as the guest saw them:\n%s",
				strings.Join(regexp.MustCompile(`(?m)^.*(ember-init: (sleep|resumed|S3)|PM: ).*$`).FindAllString(r.out, -1), "\n"))
			if r.status != 0 || !strings.Contains(r.summary, "powered off") {
				t.Errorf("ember exited %d with %q, want 0 and \"powered off\"", r.status, strings.TrimSpace(r.summary))
			}
		})
	}
}

func tailString(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// TestRetryingBootsAgainOnlyInTheLab: a boot whose guest triple-faulted
// is tried once more inside the lab, through the same function, so a try
// makes afresh what the last used up; a second failure, any other failure,
// or a boot outside the lab stands.
func TestRetryingBootsAgainOnlyInTheLab(t *testing.T) {
	for _, tt := range []struct {
		name     string
		inLab    bool
		statuses []int // of the tries, in turn
		want     int   // the status that stands
		tries    int
	}{
		{"outside the lab a triple fault stands", false, []int{exitShutdown}, exitShutdown, 1},
		{"in the lab a triple fault is tried again", true, []int{exitShutdown, 0}, 0, 2},
		{"in the lab a second triple fault is tried again", true, []int{exitShutdown, exitShutdown, 0}, 0, 3},
		{"in the lab a third triple fault stands", true, []int{exitShutdown, exitShutdown, exitShutdown}, exitShutdown, 3},
		{"in the lab a boot that passed is not tried again", true, []int{0}, 0, 1},
		{"in the lab another failure stands", true, []int{1}, 1, 1},
	} {
		t.Run(tt.name, func(t *testing.T) {
			tries := 0
			r := retrying(t, context.Background(), tt.inLab, func(context.Context) bootResult {
				tries++
				return bootResult{status: tt.statuses[tries-1], out: "console"}
			})
			if r.status != tt.want || tries != tt.tries {
				t.Errorf("status %d after %d tries, want %d after %d", r.status, tries, tt.want, tt.tries)
			}
		})
	}
}

// TestKernelLogCutFromInitLines checks that a line the init printed is found
// whole when the kernel's log landed in the middle of it, as it did in a CI
// run (the init's "cpus 1" split from its line end by a clocksource warning).
func TestKernelLogCutFromInitLines(t *testing.T) {
	for _, c := range []struct {
		name, out, want string
	}{
		{"clean", "ember-init: cpus 1\r\nember-init: memtotal 5 kB\r\n", "ember-init: cpus 1\r\n"},
		{"split", "ember-init: cpus 1[   20.049349] clocksource: watchdog on CPU0\r\n[   20.191198] tsc: Marking TSC unstable\r\n\r\nember-init: memtotal 5 kB\r\n", "ember-init: cpus 1\r\nember-init: memtotal"},
		{"before", "[    0.000000] Linux version 6.1\r\nember-init: started\r\n", "ember-init: started\r\n"},
	} {
		t.Run(c.name, func(t *testing.T) {
			if r := (bootResult{out: c.out}); !r.printed(c.want) {
				t.Errorf("%q not found in %q (without the kernel's log: %q)", c.want, c.out, r.user())
			}
		})
	}
	if r := (bootResult{out: "ember-init: cpus 12\r\n"}); r.printed("ember-init: cpus 1\r\n") {
		t.Errorf("cpus 12 read as cpus 1")
	}
}
