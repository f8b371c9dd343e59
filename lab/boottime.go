package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"ember/internal/linuxguest"
)

// timeBootsCmd is the hidden command `lab linux` runs inside the lab.
const timeBootsCmd = "time-boots"

// qemuMachine is the QEMU machine type ember is compared with: microvm,
// QEMU's own minimal machine for direct kernel boot (no firmware, like
// ember), with its RTC on so Linux does not wait for a CMOS clock it cannot
// find (rtc_cmos: "broken or not accessible", ~4 s).
const qemuMachine = "microvm,rtc=on"

// bootCmdline is the guest command line of every timed boot.
const bootCmdline = "console=ttyS0 ember.end=poweroff"

func newTimeBootsCmd() *cobra.Command {
	var ember, kernel, initrd, sum string
	var reps int
	cmd := &cobra.Command{
		Use:    timeBootsCmd,
		Hidden: true,
		Args:   cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			subjects := []subject{}
			for _, mode := range []string{"decompress", "bzimage", "pvh"} {
				subjects = append(subjects, subject{
					name: "ember --boot=" + mode,
					argv: []string{ember, "run", "--kernel", kernel, "--initrd", initrd, "--memory", "256M",
						"--cpus", "1", "--boot", mode, "--cmdline", bootCmdline},
				})
			}
			subjects = append(subjects, subject{
				name: "QEMU -M " + qemuMachine,
				argv: qemuGuest(qemuMachine, 256, 1, "-kernel", kernel, "-initrd", initrd, "-append", bootCmdline),
			})
			return timeBoots(cmd.Context(), os.Stdout, subjects, reps, sum)
		},
	}
	f := cmd.Flags()
	f.StringVar(&ember, "ember", "", "ember binary")
	f.StringVar(&kernel, "kernel", "", "kernel")
	f.StringVar(&initrd, "initrd", "", "initramfs")
	f.StringVar(&sum, "sha256", "", "checksum the init must report")
	f.IntVar(&reps, "reps", 3, "boots per subject")
	return cmd
}

// subject is one way of booting the kernel.
type subject struct {
	name string
	argv []string
}

// bootTimes is one boot, timed from process start.
type bootTimes struct {
	banner, init, exit time.Duration
	exits              string // ember's count of exits handled, from its summary
}

// timeBoots boots every subject reps times, one boot of each a round in
// alternating order (roundOrder), and prints the medians with ember's
// ratio to QEMU (the last subject).
func timeBoots(ctx context.Context, w io.Writer, subjects []subject, reps int, sum string) error {
	times := make([][]bootTimes, len(subjects))
	failed := make([]int, len(subjects))
	for r := 0; r < reps; r++ {
		for _, i := range roundOrder(len(subjects), r) {
			s := subjects[i]
			t, err := timeBoot(ctx, s.argv, sum)
			if err != nil {
				// The lab's software SVM now and then stalls or
				// triple-faults a guest (README, "Host notes"): one
				// more try, said out loud.
				fmt.Fprintf(w, "boot %d/%d %-26s failed, booting again (lab flake?): %v\n", r+1, reps, s.name, firstLine(err))
				t, err = timeBoot(ctx, s.argv, sum)
			}
			if err != nil {
				fmt.Fprintf(w, "boot %d/%d %-26s failed again: %v\n", r+1, reps, s.name, firstLine(err))
				failed[i]++
				continue
			}
			fmt.Fprintf(w, "boot %d/%d %-26s Linux version %5.2fs  /init %5.2fs  exit %5.2fs%s\n",
				r+1, reps, s.name, t.banner.Seconds(), t.init.Seconds(), t.exit.Seconds(), t.exits)
			times[i] = append(times[i], t)
		}
	}
	med := func(ts []bootTimes, f func(bootTimes) time.Duration) time.Duration {
		v := make([]float64, len(ts))
		for i, t := range ts {
			v[i] = float64(f(t))
		}
		slices.Sort(v)
		return time.Duration(median(v)) // the same median as lab net's and lab virtio's
	}
	if len(times[len(times)-1]) == 0 {
		return fmt.Errorf("QEMU, the baseline, never booted")
	}
	qemuInit := med(times[len(times)-1], func(t bootTimes) time.Duration { return t.init })
	fmt.Fprintf(w, "\nDebian cloud kernel, busybox initramfs, 1 vCPU, 256 MiB, inside the lab; seconds from process start, median of %d\n", reps)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "subject\tLinux version\t/init\texit\t/init ÷ QEMU")
	for i, s := range subjects {
		if len(times[i]) == 0 {
			fmt.Fprintf(tw, "%s\tfailed %d of %d boots (twice each)\t\t\t\n", s.name, failed[i], reps)
			continue
		}
		init := med(times[i], func(t bootTimes) time.Duration { return t.init })
		fmt.Fprintf(tw, "%s\t%.2f\t%.2f\t%.2f\t%.2f\n", s.name,
			med(times[i], func(t bootTimes) time.Duration { return t.banner }).Seconds(),
			init.Seconds(),
			med(times[i], func(t bootTimes) time.Duration { return t.exit }).Seconds(),
			init.Seconds()/qemuInit.Seconds())
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for i, n := range failed {
		if n > 0 {
			return fmt.Errorf("%s failed %d of %d boots, twice each", subjects[i].name, n, reps)
		}
	}
	return nil
}

var exitsRE = regexp.MustCompile(`; (\d+) exits handled`)

// timeBoot runs one boot to its end and checks the init saw what it should.
func timeBoot(ctx context.Context, argv []string, sum string) (bootTimes, error) {
	con, stderr, err := runBoot(ctx, argv, 2*time.Minute)
	if con == nil {
		return bootTimes{}, err
	}
	t := bootTimes{exit: con.Elapsed(), banner: con.First(linuxguest.MarkBanner), init: con.First(linuxguest.MarkStarted)}
	out := con.String()
	if err != nil {
		return t, err
	}
	for _, want := range []string{linuxguest.Echo, "ember-init: initrd sha256 " + sum} {
		if !strings.Contains(out, want) {
			return t, fmt.Errorf("the guest did not print %q:\n%s", want, tail(out, 20))
		}
	}
	if m := exitsRE.FindStringSubmatch(stderr); m != nil {
		n, _ := strconv.Atoi(m[1])
		t.exits = fmt.Sprintf("  (%d exits)", n)
	}
	return t, nil
}

// runBoot runs one boot of the test initramfs to its end (at most
// timeout), answering its console's prompt, and returns the console and
// the process's standard error; a failed run's error holds both tails.
func runBoot(ctx context.Context, argv []string, timeout time.Duration) (*linuxguest.Console, string, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	// A subject may be a script that starts more than one process (a
	// back-end and ember): the time-out kills them all, and Run does not
	// wait for pipes a straggler still holds.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	// A boot out of time first says where its guest was (reportStuck).
	cmd.Cancel = func() error {
		reportStuck(cmd.Process.Pid)
		return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
	cmd.WaitDelay = 5 * time.Second
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, "", err
	}
	defer stdin.Close()
	con := linuxguest.NewConsole(stdin, nil)
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = con, &stderr
	if err := cmd.Run(); err != nil {
		// Out of time, ember ends by reportStuck's SIGQUIT with Go's exit
		// status 2, which would read as a crash: say what happened.
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			err = fmt.Errorf("out of time after %v (state reports and goroutine stacks taken, then killed): %w", timeout, err)
		}
		return con, stderr.String(), fmt.Errorf("%w\n%s\n%s", err, tail(con.String(), 20), vmmOutput(stderr.String(), 5))
	}
	return con, stderr.String(), nil
}

// firstLine is the first line of err's message.
func firstLine(err error) string {
	line, _, _ := strings.Cut(err.Error(), "\n")
	return line
}
