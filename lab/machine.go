package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"ember/lab/job"
)

// machine is one boot of the lab: QEMU in software emulation (multi-threaded
// TCG, -cpu max, which exposes AMD SVM with nested paging), Debian's generic
// kernel with kvm-amd, the lab's init, and the host's root shared read-only
// over virtio-9p.
type machine struct {
	qemu       string
	kernel     string
	initrd     string
	jobFile    string
	consoleLog string // the lab kernel's own log (ttyS0)
	cpus       int
	memMiB     int
}

// args is QEMU's command line. Single-threaded TCG hung most Linux guests
// (spinning in the queued-spinlock slow path), so the default multi-threaded
// TCG is asked for by name.
func (m machine) args() []string {
	return []string{
		"-nodefaults", "-no-user-config", "-no-reboot",
		"-machine", "pc", "-accel", "tcg,thread=multi", "-cpu", "max",
		"-smp", strconv.Itoa(m.cpus), "-m", strconv.Itoa(m.memMiB),
		"-display", "none", "-monitor", "none",
		"-kernel", m.kernel, "-initrd", m.initrd,
		"-append", "console=ttyS0 loglevel=4 panic=-1 " + job.CmdlineKey + "=" + m.jobFile,
		"-serial", "file:" + m.consoleLog,
		"-serial", "stdio",
		"-virtfs", "local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap",
	}
}

// run boots the machine, copies the job's output to out, and returns the
// job's exit status. It stops the machine after timeout, naming the phase it
// was in.
func (m machine) run(ctx context.Context, p *progress, out io.Writer, timeout time.Duration) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, m.qemu, m.args()...)
	cmd.Stdin = nil
	cmd.Stderr = os.Stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return 0, err
	}
	p.say(fmt.Sprintf("booting the lab (QEMU TCG, -cpu max, %d CPUs, %d MiB)", m.cpus, m.memMiB))
	if err := cmd.Start(); err != nil {
		return 0, fmt.Errorf("starting %s: %w", m.qemu, err)
	}
	status, sawExit := m.follow(p, stdout, out)
	werr := cmd.Wait()
	switch {
	case errors.Is(ctx.Err(), context.DeadlineExceeded):
		return 0, fmt.Errorf("lab timed out after %v while %s; the lab kernel's log:\n%s", timeout, p.current(), m.consoleTail())
	case ctx.Err() != nil:
		return 0, fmt.Errorf("lab stopped while %s: %w", p.current(), ctx.Err())
	case !sawExit:
		return 0, fmt.Errorf("the lab machine ended (%v) while %s, before its job finished; the lab kernel's log:\n%s", werr, p.current(), m.consoleTail())
	}
	return status, nil
}

// follow copies the job's output to out, acting on the init's marker lines,
// until the machine's serial port closes.
func (m machine) follow(p *progress, r io.Reader, out io.Writer) (status int, sawExit bool) {
	br := bufio.NewReader(r)
	for {
		line, err := br.ReadString('\n')
		if rest, ok := strings.CutPrefix(line, job.Marker); ok {
			event, arg, _ := strings.Cut(strings.TrimSpace(rest), " ")
			switch event {
			case job.EventReady:
				p.say("/dev/kvm is up (lab kernel uptime " + arg + " s)")
			case job.EventStep:
				p.say("running " + arg)
			case job.EventExit:
				status, _ = strconv.Atoi(arg)
				sawExit = true
			}
		} else if line != "" {
			io.WriteString(out, line)
		}
		if err != nil {
			return status, sawExit
		}
	}
}

// consoleTail is the end of the lab kernel's log, for error messages.
func (m machine) consoleTail() string {
	b, err := os.ReadFile(m.consoleLog)
	if err != nil {
		return "(no log: " + err.Error() + ")"
	}
	return tail(string(b), 30) + "\n(whole log: " + m.consoleLog + ")"
}
