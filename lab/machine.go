package main

import (
	"bufio"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
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
	cpus       int    // the machine's, CPU 0 included (the job runs on the others: labinit)
	memMiB     int
	// powerOffGrace is how long the machine has, after its job's last step
	// reported done, to report the job's end and power off (0: 2 minutes).
	powerOffGrace time.Duration
	// bootLimit is how long the machine has from QEMU's start to its init
	// reporting /dev/kvm up (0: 3 minutes).
	bootLimit time.Duration
	// haltLimit is how long a machine running its job may send nothing,
	// neither output nor its init's heartbeat, before it counts as halted
	// (halt.go; 0: 2 minutes).
	haltLimit time.Duration
	// records, if not nil, gets every record (job.EventRecord) the job
	// prints, one a line as it comes: a benchmark's boots, kept for lab
	// pool (--records).
	records io.Writer
}

// defaultPowerOffGrace is machine.powerOffGrace's default. Powering off takes
// the init a sync and a fifth of a second; the rest is slack for a slow lab.
const defaultPowerOffGrace = 2 * time.Minute

// defaultBootLimit is machine.bootLimit's default. The lab is up in about 7
// s, 30 on a busy host; a CI run of 2026-12-04 saw one whose kernel never
// got there (QEMU busy on both CPUs for 6 minutes, nothing on either serial
// port), which the whole run's time-out would have ended as a failure.
const defaultBootLimit = 3 * time.Minute

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

// outcome is how far a boot of the machine got through its job.
type outcome struct {
	up       bool  // the init reported /dev/kvm up
	status   int   // the job's exit status, when finished
	finished bool  // the init reported the job's end
	done     []int // the exit status of each step that completed
	// records are the records (job.EventRecord) the running step printed,
	// the step after those done: what it has done, for a run in a lab
	// booted afresh to go on from (job.Step.ResumeFlag); for a GoTest
	// step, the top-level tests that passed in this boot.
	records []string
}

// errLabDied says the lab machine ended before its job did: its kernel
// crashed, QEMU died, it never came up (bootLimit), or it halted in the
// middle of the job (haltLimit).
var errLabDied = errors.New("the lab machine ended before its job finished")

// run boots the machine for job j (the job in m.jobFile), copies the job's
// output to out, and reports how far the job got. It stops the machine after
// timeout, naming the phase it was in; a machine that dies on its own gives
// errLabDied (with the steps that completed in the outcome).
//
// A machine that is not up within bootLimit, or that halts while its job
// runs (halt.go), is stopped and counts as one that died (errLabDied), so
// the caller boots it again.
//
// A machine whose every step has reported done but which then neither
// reports the job's end nor powers off (its kernel wedged on the way out:
// seen in CI) is stopped after powerOffGrace, and the steps' statuses stand
// as the job's: the work was done and its results reported.
func (m machine) run(ctx context.Context, p *progress, out io.Writer, j job.Job, timeout time.Duration) (outcome, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, m.qemu, m.args()...)
	cmd.Stdin = nil
	cmd.Stderr = os.Stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return outcome{}, err
	}
	p.say(fmt.Sprintf("booting the lab (QEMU TCG, -cpu max, %d CPUs: %d for the job, %d MiB)", m.cpus, max(m.cpus-1, 1), m.memMiB))
	if err := cmd.Start(); err != nil {
		return outcome{}, fmt.Errorf("starting %s: %w", m.qemu, err)
	}
	grace := m.powerOffGrace
	if grace == 0 {
		grace = defaultPowerOffGrace
	}
	bootLimit := m.bootLimit
	if bootLimit == 0 {
		bootLimit = defaultBootLimit
	}
	var neverUp atomic.Bool
	bootTimer := time.AfterFunc(bootLimit, func() {
		neverUp.Store(true)
		cmd.Process.Kill()
	})
	defer bootTimer.Stop()
	var stoppedAfterJob atomic.Bool
	var powerOff *time.Timer
	var halted atomic.Bool
	haltLimit := cmp.Or(m.haltLimit, defaultHaltLimit)
	activity := &activityReader{r: stdout}
	stopWatch := func() {}
	defer func() { stopWatch() }()
	o := m.follow(p, activity, out, j, func() {
		bootTimer.Stop()
		stopWatch = watchQuiet(activity, haltLimit, func() {
			halted.Store(true)
			cmd.Process.Kill()
		})
	}, func() {
		stopWatch() // the job is over: powerOffGrace watches the machine from here
		if powerOff != nil {
			return
		}
		powerOff = time.AfterFunc(grace, func() {
			stoppedAfterJob.Store(true)
			cmd.Process.Kill()
		})
	})
	werr := cmd.Wait()
	if powerOff != nil {
		powerOff.Stop()
	}
	switch {
	case neverUp.Load() && !o.up:
		return o, fmt.Errorf("%w: not up within %v of its start; the lab kernel's log:\n%s", errLabDied, bootLimit, m.consoleTail())
	case halted.Load() && !o.finished:
		return o, fmt.Errorf("%w: it sent nothing, not even its heartbeat, for %v while %s (halted); the lab kernel's log:\n%s",
			errLabDied, haltLimit, p.current(), m.consoleTail())
	case stoppedAfterJob.Load() && !o.finished:
		p.say(fmt.Sprintf("the lab did not power off within %v of its last step; stopped it (the steps' results stand)", grace))
		o.finished = true
		return o, nil
	case errors.Is(ctx.Err(), context.DeadlineExceeded):
		return o, fmt.Errorf("lab timed out after %v while %s; the lab kernel's log:\n%s", timeout, p.current(), m.consoleTail())
	case ctx.Err() != nil:
		return o, fmt.Errorf("lab stopped while %s: %w", p.current(), ctx.Err())
	case !o.finished:
		return o, fmt.Errorf("%w (QEMU: %v) while %s; the lab kernel's log:\n%s", errLabDied, werr, p.current(), m.consoleTail())
	}
	return o, nil
}

// follow copies the job's output to out, acting on the init's marker lines,
// until the machine's serial port closes. It calls up when the init reports
// /dev/kvm up, and over when the steps of job j that will run have all
// reported done (and again at any later done step; over must be idempotent).
// Of a GoTest step's output it keeps the tests that passed as the step's
// records. It writes each line to out in one Write (quietWriter counts on
// it).
func (m machine) follow(p *progress, r io.Reader, out io.Writer, j job.Job, up, over func()) outcome {
	var o outcome
	br := bufio.NewReader(r)
	for {
		line, err := br.ReadString('\n')
		if rest, ok := strings.CutPrefix(line, job.Marker); ok {
			event, arg, _ := strings.Cut(strings.TrimSpace(rest), " ")
			switch event {
			case job.EventReady:
				o.up = true
				up()
				p.say("/dev/kvm is up (lab kernel uptime " + arg + " s)")
			case job.EventStep:
				p.say("running " + arg)
			case job.EventRecord:
				o.records = append(o.records, arg)
				if m.records != nil {
					io.WriteString(m.records, arg+"\n")
				}
			case job.EventDone:
				n, _ := strconv.Atoi(arg)
				o.done = append(o.done, n)
				o.records = nil
				if jobOver(j, o.done) {
					over()
				}
			case job.EventExit:
				o.status, _ = strconv.Atoi(arg)
				o.finished = true
			case job.EventAlive:
				// the init's heartbeat: activityReader has seen it
			}
		} else if line != "" {
			if running := len(o.done); running < len(j.Steps) && j.Steps[running].GoTest {
				if name, ok := passedTest(line); ok {
					o.records = append(o.records, name)
				}
			}
			io.WriteString(out, line)
		}
		if err != nil {
			return o
		}
	}
}

// jobOver reports whether no step of j is left to run after the steps that
// reported done with statuses done: all have, or one failed and is not
// KeepGoing (the init stops there).
func jobOver(j job.Job, done []int) bool {
	n := len(done)
	if n >= len(j.Steps) {
		return true
	}
	return n > 0 && done[n-1] != 0 && !j.Steps[n-1].KeepGoing
}

// consoleTail is the part of the lab kernel's log worth reading in an error
// message: from its first oops, panic or warning if there is one, else its
// end.
func (m machine) consoleTail() string {
	b, err := os.ReadFile(m.consoleLog)
	if err != nil {
		return "(no log: " + err.Error() + ")"
	}
	log := string(b)
	if loc := troubleRE.FindStringIndex(log); loc != nil {
		start := strings.LastIndexByte(log[:loc[0]], '\n') + 1
		lines := strings.SplitN(log[start:], "\n", 41)
		log = strings.Join(lines[:min(len(lines), 40)], "\n")
	} else {
		log = tail(log, 30)
	}
	return log + "\n(whole log: " + m.consoleLog + ")"
}

// troubleRE finds the start of a kernel oops, panic or warning.
var troubleRE = regexp.MustCompile(`BUG:|Oops|Kernel panic|WARNING:|watchdog: BUG|rcu: INFO`)
