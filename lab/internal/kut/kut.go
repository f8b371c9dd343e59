// Package kut runs a built kvm-unit-tests tree's x86 tests under ember and
// under QEMU inside the lab (`go run ./lab kut DIR`), as the suite's own
// runner (run_tests.sh, scripts/runtime.bash, x86/run) drives QEMU: one test
// per process, with the kernel, -append arguments, -smp and QEMU parameters
// of its section of x86/unittests.cfg, its time-out, and its arch, accel,
// check and disabled_if lines. The host (package main of lab, which owns the
// lab machine) opens the tree (OpenTree), plans the run (NewPlan), builds
// ember and the lab program, and has the lab run one step per test: the lab
// program's hidden kut-test command (TestCommand), which runs the test under
// both VMMs and prints its result as one marker line; a Collector gathers
// those lines into the table (WriteTable, WriteMarkdown, WriteJSON).
package kut

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"

	"ember/x86"
)

// qemuBinary is the QEMU the lab provides (lab's deps.go installs it).
const qemuBinary = "qemu-system-x86_64"

const (
	// TestCmd is the hidden command `lab kut` runs inside the lab, once
	// per test.
	TestCmd = "kut-test"
	// kutMarker starts the line on which kut-test reports a test's result
	// (JSON) to the host.
	kutMarker = "@@ember-kut@@ "
	// kutDefaultTimeout is a test's time-out when its section names none:
	// the suite's default (scripts/runtime.bash: ${TIMEOUT:-${11:-90s}}).
	kutDefaultTimeout = 90 * time.Second
	// kutDefaultMemory is the guest RAM when a test's parameters give no -m:
	// the suite passes none, so QEMU's pc machine gives its default, 128 MiB.
	kutDefaultMemory = "128M"
	// kutOutputLimit bounds each run's output carried back to the host.
	kutOutputLimit = 512 << 10
)

// Results of one run, as the suite prints them (it calls a time-out a FAIL
// with the reason "timeout"; here it has its own name).
const (
	kutPass    = "PASS"
	kutFail    = "FAIL"
	kutSkip    = "SKIP"
	kutTimeout = "TIMEOUT"
)

// kutQEMUBase is the QEMU command line of x86/run, before the kernel: what
// the suite's runner gives every test, minus -device pci-testdev (ember has
// no PCI test device; of the x86 tests only vmexit looks for it, and runs
// its pci tests only when it finds one). The suite probes for pc-testdev
// and the PCI test device with `-device ?`; Debian's QEMU has both.
var kutQEMUBase = []string{
	"--no-reboot", "-nodefaults",
	"-global", "kvm-pit.lost_tick_policy=discard",
	"-device", "pc-testdev", "-device", "isa-debug-exit,iobase=0xf4,iosize=0x4",
	"-display", "none", "-serial", "stdio",
	"-machine", "accel=kvm",
}

// Test is one section of x86/unittests.cfg, its values as written (the
// suite evaluates smp, test_args and the parameters with bash when it runs
// the test; kutEval does the same inside the lab).
type Test struct {
	Name       string   `json:"name"`
	File       string   `json:"file"`                  // the kernel, relative to the tests' directory (x86/)
	SMP        string   `json:"smp"`                   // "1" when the section has no smp line
	TestArgs   string   `json:"test_args,omitempty"`   // the guest's command line: QEMU's -append
	Params     string   `json:"params,omitempty"`      // extra_params or qemu_params: more QEMU options
	Groups     []string `json:"groups,omitempty"`      // e.g. nodefault: run only when asked for
	Arch       string   `json:"arch,omitempty"`        // i386 or x86_64: the only build it runs on
	Machine    string   `json:"machine,omitempty"`     // unused on x86
	Check      string   `json:"check,omitempty"`       // PATH=VALUE ...: files that must hold these values
	Accel      string   `json:"accel,omitempty"`       // kvm or tcg: the only accelerator it runs on
	Timeout    string   `json:"timeout,omitempty"`     // a duration as timeout(1) takes it
	DisabledIf string   `json:"disabled_if,omitempty"` // a bash condition that skips the test
}

var (
	kutSectionRE   = regexp.MustCompile(`^\[(.*)\]$`)
	kutKeyRE       = regexp.MustCompile(`^(file|smp|test_args|extra_params|qemu_params|groups|arch|machine|check|disabled_if|accel|timeout) *= *(.*)$`)
	kutTripleRE    = regexp.MustCompile(`^(extra_params|qemu_params) *= *"""(.*)$`)
	kutTripleEndRE = regexp.MustCompile(`^(.*)"""[ \t]*$`)
	kutOddEscapeRE = regexp.MustCompile(`(^|[^\\])(\\\\)*\\\n$`)
)

// parseUnittests reads a unittests.cfg as scripts/common.bash's
// for_each_unittest does: a [name] line starts a test, key = value lines
// set its fields (the last one wins), everything else (comments, unknown
// keys) is ignored, and extra_params/qemu_params may span lines between
// triple quotes, a backslash at a line's end joining it to the next.
func parseUnittests(r io.Reader) ([]Test, error) {
	var tests []Test
	var cur *Test
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		// bash's `read -r line` strips the blanks at both ends.
		line := strings.Trim(sc.Text(), " \t\r")
		if m := kutSectionRE.FindStringSubmatch(line); m != nil {
			tests = append(tests, Test{Name: m[1], SMP: "1"})
			cur = &tests[len(tests)-1]
			continue
		}
		if cur == nil {
			continue
		}
		if m := kutTripleRE.FindStringSubmatch(line); m != nil {
			opts, closed := m[2]+"\n", false
			for sc.Scan() {
				if kutOddEscapeRE.MatchString(opts) {
					opts = strings.TrimSuffix(opts, "\\\n")
				}
				reply := sc.Text()
				if e := kutTripleEndRE.FindStringSubmatch(reply); e != nil {
					opts += e[1]
					closed = true
					break
				}
				opts += reply + "\n"
			}
			if !closed {
				return nil, fmt.Errorf("unittests.cfg: [%s]: %s has no closing \"\"\"", cur.Name, m[1])
			}
			cur.Params = opts
			continue
		}
		m := kutKeyRE.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		v := m[2]
		switch m[1] {
		case "file":
			cur.File = v
		case "smp":
			cur.SMP = v
		case "test_args":
			cur.TestArgs = v
		case "extra_params", "qemu_params":
			cur.Params = v
		case "groups":
			cur.Groups = strings.Fields(v)
		case "arch":
			cur.Arch = v
		case "machine":
			cur.Machine = v
		case "check":
			cur.Check = v
		case "disabled_if":
			cur.DisabledIf = v
		case "accel":
			cur.Accel = v
		case "timeout":
			cur.Timeout = v
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("reading unittests.cfg: %w", err)
	}
	// A section with an empty name is dropped, as the suite's run() does.
	return slices.DeleteFunc(tests, func(t Test) bool { return t.Name == "" }), nil
}

// Tree is a built kvm-unit-tests tree.
type Tree struct {
	Dir     string // absolute
	Arch    string // ARCH of config.mak: x86_64 or i386
	TestDir string // TEST_DIR of config.mak: x86
	Tests   []Test
}

// OpenTree reads DIR/config.mak and DIR/x86/unittests.cfg.
func OpenTree(dir string) (*Tree, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("kvm-unit-tests tree %s: %w", dir, err)
	}
	mak, err := os.ReadFile(filepath.Join(abs, "config.mak"))
	if err != nil {
		return nil, fmt.Errorf("%s is not a configured kvm-unit-tests tree (./configure && make there; docs/kvm-unit-tests.md): %w", abs, err)
	}
	t := &Tree{Dir: abs, Arch: makeVar(mak, "ARCH"), TestDir: makeVar(mak, "TEST_DIR")}
	if t.TestDir != "x86" {
		return nil, fmt.Errorf("%s is configured for %s (TEST_DIR=%s); lab kut runs the x86 tests", abs, t.Arch, t.TestDir)
	}
	cfg := filepath.Join(abs, t.TestDir, "unittests.cfg")
	f, err := os.Open(cfg)
	if err != nil {
		return nil, fmt.Errorf("kvm-unit-tests tree: %w", err)
	}
	defer f.Close()
	if t.Tests, err = parseUnittests(f); err != nil {
		return nil, fmt.Errorf("%s: %w", cfg, err)
	}
	if m, _ := filepath.Glob(filepath.Join(abs, t.TestDir, "*.flat")); len(m) == 0 {
		return nil, fmt.Errorf("%s has no built tests (no %s/*.flat): run make there", abs, t.TestDir)
	}
	return t, nil
}

// makeVar is the value of NAME=value in a config.mak.
func makeVar(mak []byte, name string) string {
	for _, line := range strings.Split(string(mak), "\n") {
		if v, ok := strings.CutPrefix(line, name+"="); ok {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// kutLabAccel is the accelerator the suite picks in the lab (it has
// /dev/kvm): set_qemu_accelerator's ACCEL.
const kutLabAccel = "kvm"

// kutPreSkip is why the suite's runner would skip t before looking at the
// machine (scripts/runtime.bash's run(), in its order: nodefault unless the
// test was asked for by name, arch, accel), or "".
func kutPreSkip(t Test, arch string, named bool) string {
	switch {
	case slices.Contains(t.Groups, "nodefault") && !named:
		return "test marked as manual run only"
	case t.Arch != "" && t.Arch != arch:
		return t.Arch + " only"
	case t.Accel != "" && !accelMatches(t.Accel, kutLabAccel):
		return t.Accel + " only, but ACCEL=" + kutLabAccel
	}
	return ""
}

// accelMatches is the suite's [[ ! "$ACCEL" =~ ^$accel(,|$) ]], negated.
func accelMatches(want, accel string) bool {
	re, err := regexp.Compile(`^(?:` + want + `)(,|$)`)
	return err == nil && re.MatchString(accel)
}

// kutTestTimeout is a test's time-out: override if set (the suite's TIMEOUT
// variable), else its timeout line, else 90 s. A value that is not a
// timeout(1) duration is an error.
func kutTestTimeout(t Test, override time.Duration) (time.Duration, error) {
	if override > 0 {
		return override, nil
	}
	if t.Timeout == "" {
		return kutDefaultTimeout, nil
	}
	d, err := parseTimeoutDuration(t.Timeout)
	if err != nil {
		return 0, fmt.Errorf("[%s] timeout: %w", t.Name, err)
	}
	return d, nil
}

var timeoutDurationRE = regexp.MustCompile(`^([0-9]+(?:\.[0-9]*)?|\.[0-9]+)([smhd]?)$`)

// parseTimeoutDuration reads a duration as timeout(1) does: a number, of
// seconds unless followed by m, h or d.
func parseTimeoutDuration(s string) (time.Duration, error) {
	m := timeoutDurationRE.FindStringSubmatch(strings.TrimSpace(s))
	if m == nil {
		return 0, fmt.Errorf("%q is not a duration (a number with an optional s, m, h or d)", s)
	}
	n, err := strconv.ParseFloat(m[1], 64)
	if err != nil {
		return 0, fmt.Errorf("%q: %w", s, err)
	}
	unit := map[string]time.Duration{"": time.Second, "s": time.Second, "m": time.Minute, "h": time.Hour, "d": 24 * time.Hour}[m[2]]
	return time.Duration(n * float64(unit)), nil
}

// kutRun is how one VMM ran one test.
type kutRun struct {
	Result  string   `json:"result"`            // PASS, FAIL, SKIP or TIMEOUT
	Status  int      `json:"status"`            // the process's exit status; -1 when it did not exit by itself or never ran
	Seconds float64  `json:"seconds,omitempty"` // wall time of the process
	Summary string   `json:"summary,omitempty"` // the test's SUMMARY line
	Detail  string   `json:"detail,omitempty"`  // the first failing (or skipping) line, or why it did not run
	Argv    []string `json:"argv,omitempty"`
	Output  string   `json:"-"` // the guest's console, at most kutOutputLimit (carried to the host as "output")
	Stderr  string   `json:"-"` // the VMM's own messages
}

// Result is one test under both VMMs.
type Result struct {
	Test  string `json:"test"`
	Ember kutRun `json:"ember"`
	QEMU  kutRun `json:"qemu"`
	// Why is the difference between the two results, as far as the
	// output tells it (empty when they agree and ember's failures are
	// QEMU's too).
	Why string `json:"why,omitempty"`
	// NotApplied lists the test's QEMU parameters ember has no equivalent
	// for (its CPU model, devices, machine options): ember runs without them.
	NotApplied []string `json:"ember_not_applied,omitempty"`
}

// kutWire is a Result as kut-test sends it to the host, outputs included.
type kutWire struct {
	Result
	EmberOutput string `json:"ember_output,omitempty"`
	EmberStderr string `json:"ember_stderr,omitempty"`
	QEMUOutput  string `json:"qemu_output,omitempty"`
	QEMUStderr  string `json:"qemu_stderr,omitempty"`
}

// kutClassify is the suite's verdict on a run that ended with status (after
// timedOut, if the time-out stopped it), as scripts/runtime.bash and
// vmm.bash's qemu_fixup_return_code give it: the guest's exit(code) writes
// code to isa-debug-exit, which ends QEMU (and ember) with (code << 1) | 1.
// So 1 is a pass (code 0), unless the VMM also wrote something other than
// warnings on its standard error (a VMM that failed may exit 1 too); 77 is
// report_summary's "everything skipped" (code 38); anything else fails: 3 is
// a test with failures, 127 an abort(), 0 a VMM that ended without the
// debug exit (for ember also 125, the guest shut down; 126, the VM failed).
func kutClassify(status int, timedOut bool, stderr string) string {
	switch {
	case timedOut:
		return kutTimeout
	case status == 1 && onlyWarnings(stderr):
		return kutPass
	case status == 77:
		return kutSkip
	}
	return kutFail
}

// onlyWarnings reports whether every non-empty line of s is a warning (the
// suite's `grep -qvi warning`; ember's log says level=WARN).
func onlyWarnings(s string) bool {
	for _, line := range strings.Split(s, "\n") {
		l := strings.ToLower(strings.TrimSpace(line))
		if l != "" && !strings.Contains(l, "warning") && !strings.Contains(l, "level=warn") {
			return false
		}
	}
	return true
}

var (
	// kutFailLineRE finds what kvm-unit-tests prints when something goes
	// wrong: report lines (lib/report.c), assertions (lib/libcflat.h),
	// unexpected exceptions (lib/x86/desc.c); some tests print their own
	// "...: FAIL: ..." (access).
	kutFailLineRE = regexp.MustCompile(`(^|\s)(FAIL|XPASS|ABORT): |assert failed|Unhandled \S*\s?exception`)
	kutSkipLineRE = regexp.MustCompile(`^SKIP: `)
	kutSummaryRE  = regexp.MustCompile(`^SUMMARY: `)
)

// lines splits console output into lines without their \r.
func lines(s string) []string {
	out := strings.Split(strings.ReplaceAll(s, "\r", ""), "\n")
	if len(out) > 0 && out[len(out)-1] == "" {
		out = out[:len(out)-1]
	}
	return out
}

// firstMatch is the first line of s that re matches, or "".
func firstMatch(s string, re *regexp.Regexp) string {
	for _, l := range lines(s) {
		if re.MatchString(l) {
			return strings.TrimSpace(l)
		}
	}
	return ""
}

// failLines are the failing lines of s (see kutFailLineRE).
func failLines(s string) []string {
	var out []string
	for _, l := range lines(s) {
		if kutFailLineRE.MatchString(l) {
			out = append(out, strings.TrimSpace(l))
		}
	}
	return out
}

// lastLine is the last non-empty line of s.
func lastLine(s string) string {
	ls := lines(s)
	for i := len(ls) - 1; i >= 0; i-- {
		if l := strings.TrimSpace(ls[i]); l != "" {
			return l
		}
	}
	return ""
}

// kutDetail says in one line why a run ended as it did, from its output: the
// first failing line of a FAIL, the first SKIP line of a SKIP, the last line
// before a time-out; failing that, the VMM's first complaint or what its exit
// status means.
func kutDetail(r kutRun, timeout time.Duration, ember bool) string {
	switch r.Result {
	case kutPass:
		return ""
	case kutTimeout:
		d := fmt.Sprintf("timed out after %v", timeout)
		if l := lastLine(r.Output); l != "" {
			d += "; last line: " + l
		}
		return d
	case kutSkip:
		if l := firstMatch(r.Output, kutSkipLineRE); l != "" {
			return l
		}
		return r.Summary
	}
	if l := firstMatch(r.Output, kutFailLineRE); l != "" {
		return l
	}
	for _, l := range lines(r.Stderr) {
		if l = strings.TrimSpace(l); l != "" && !onlyWarnings(l) {
			return l
		}
	}
	switch {
	case r.Status == 0 && !ember:
		return "exited with status 0, without the debug exit (with --no-reboot: the guest reset, e.g. a triple fault); last line: " + lastLine(r.Output)
	case r.Status == 0:
		return "exited with status 0, without the debug exit"
	case r.Status == 127:
		return "the test called abort() (status 127); last line: " + lastLine(r.Output)
	case ember && r.Status == 125:
		return "the guest shut down (triple fault) (status 125); last line: " + lastLine(r.Output)
	case ember && r.Status == 126:
		return "the VM failed (status 126)"
	case r.Status < 0:
		return "killed"
	}
	return fmt.Sprintf("exit status %d; last line: %s", r.Status, lastLine(r.Output))
}

// kutWhy explains how ember's run differs from QEMU's: when the results
// differ, ember's detail (or QEMU's, where QEMU is the one that did not
// pass); when both fail or both time out, the first failing line ember
// printed and QEMU did not (before QEMU's guest stopped, if it stopped
// early), or else how the numbers of failing lines and the statuses differ.
func kutWhy(r Result) string {
	e, q := r.Ember, r.QEMU
	if e.Result == q.Result {
		if e.Result != kutFail && e.Result != kutTimeout {
			return ""
		}
		ef, qf := failLines(e.Output), failLines(q.Output)
		for i, l := range ef {
			if q.Result == kutFail && q.Summary == "" && i >= len(qf) {
				break // QEMU's guest stopped before it got this far
			}
			if !slices.Contains(qf, l) {
				return "ember only: " + l
			}
		}
		if len(ef) != len(qf) || e.Result == kutFail && kutEnding(e.Status, true) != kutEnding(q.Status, false) {
			return fmt.Sprintf("ember: %d failing lines, status %d; QEMU: %d, status %d", len(ef), e.Status, len(qf), q.Status)
		}
		return ""
	}
	if e.Result == kutPass {
		return "QEMU: " + q.Detail
	}
	return e.Detail
}

// kutEnding names how a VMM's run ended, so that ember and QEMU can be
// compared: a guest that shut down (triple fault) ends ember with 125 and
// QEMU, under --no-reboot, with 0.
func kutEnding(status int, ember bool) string {
	if ember && status == 125 || !ember && status == 0 {
		return "shutdown"
	}
	return strconv.Itoa(status)
}

// emberParams is what a test's QEMU parameters become on ember's command
// line.
type emberParams struct {
	memory     string   // --memory, from -m; "" for the default
	mask       []string // --cpuid-mask, the features a -cpu option removes
	hyperV     bool     // --hyperv, from -cpu's hv_* enlightenments
	hvTestDev  bool     // --hyperv-testdev, from -device hyperv-testdev (with hyperV)
	iommu      bool     // --iommu, from -device intel-iommu (without eim=on)
	edu        bool     // --edu, from -device edu
	notApplied []string // what ember has no equivalent for
}

// kutEmberParams turns a test's QEMU parameters (evaluated to words) into
// ember's equivalents: -m gives the memory, features a -cpu option removes
// that ember can hide give the CPUID mask, and -cpu's Hyper-V enlightenments
// (hv_passthrough, hv_*) give --hyperv, which offers every enlightenment the
// host's KVM supports, as hv_passthrough does; with them, -device
// hyperv-testdev gives --hyperv-testdev. -device intel-iommu gives --iommu
// (ember's unit has no extended interrupt mode: not with eim=on), -device
// edu gives --edu. The rest is listed as not
// applied: a CPU model (ember's CPUID is KVM's supported set, as QEMU's
// -cpu host), added features and properties, other devices and machine
// options.
func kutEmberParams(params []string) (p emberParams, err error) {
	known := x86.CPUIDFeatures()
	hvTestDev := false
	for i := 0; i < len(params); i++ {
		opt := params[i]
		arg := ""
		if i+1 < len(params) && !strings.HasPrefix(params[i+1], "-") {
			arg = params[i+1]
			i++
		}
		switch strings.TrimPrefix(opt, "-") {
		case "m":
			p.memory, err = qemuMemory(arg)
			if err != nil {
				return emberParams{}, err
			}
		case "cpu":
			fields := strings.Split(arg, ",")
			rest := []string{fields[0]}
			for _, f := range fields[1:] {
				name, off := strings.CutPrefix(f, "-")
				if n, v, ok := strings.Cut(f, "="); ok && (v == "off" || v == "false") {
					name, off = n, true
				}
				name = strings.ReplaceAll(name, "-", "_")
				if off && slices.Contains(known, name) {
					p.mask = append(p.mask, name)
					continue
				}
				if !off && strings.HasPrefix(name, "hv_") {
					p.hyperV = true
					continue
				}
				rest = append(rest, f)
			}
			if len(rest) > 1 || (rest[0] != "host" && rest[0] != "max") {
				p.notApplied = append(p.notApplied, "-cpu "+strings.Join(rest, ","))
			}
		case "enable-kvm":
			// ember is KVM.
		case "device":
			if arg == "hyperv-testdev" {
				hvTestDev = true
				continue
			}
			if arg == "edu" {
				p.edu = true
				continue
			}
			if name, props, _ := strings.Cut(arg, ","); name == "intel-iommu" && !slices.Contains(strings.Split(props, ","), "eim=on") {
				p.iommu = true
				continue
			}
			p.notApplied = append(p.notApplied, opt+" "+arg)
		case "machine", "M":
			if arg != "accel=kvm" {
				p.notApplied = append(p.notApplied, opt+" "+arg)
			}
		default:
			p.notApplied = append(p.notApplied, strings.TrimSpace(opt+" "+arg))
		}
	}
	// ember's hyperv-testdev drives the SynICs of --hyperv; QEMU's, on a
	// CPU without them, fails its commands.
	if hvTestDev {
		if p.hyperV {
			p.hvTestDev = true
		} else {
			p.notApplied = append(p.notApplied, "-device hyperv-testdev")
		}
	}
	return p, nil
}

var qemuMemoryRE = regexp.MustCompile(`^(?:size=)?([0-9]+)([kKmMgGtT]?)[bB]?$`)

// qemuMemory converts QEMU's -m value (MiB unless suffixed) into ember's
// --memory, in MiB.
func qemuMemory(s string) (string, error) {
	m := qemuMemoryRE.FindStringSubmatch(s)
	if m == nil {
		return "", fmt.Errorf("-m %q: not a size ember's runner understands", s)
	}
	n, err := strconv.ParseUint(m[1], 10, 64)
	if err != nil {
		return "", fmt.Errorf("-m %q: %w", s, err)
	}
	switch strings.ToLower(m[2]) {
	case "k":
		n /= 1024
	case "g":
		n <<= 10
	case "t":
		n <<= 20
	}
	return fmt.Sprintf("%dM", n), nil
}

// ---- the host side: `lab kut DIR` ----

// Plan is which tests run in the lab and which the runner skips before.
type Plan struct {
	order  []string          // every selected test, in unittests.cfg order
	ToRun  []Test            // those that go to the lab
	skip   map[string]Result // those skipped on the host, with the reason
	Budget time.Duration     // a time-out for the whole lab run
}

// NewPlan selects the tests (all, or the comma-separated names) and applies
// the suite's rules that need no machine.
func NewPlan(tree *Tree, names string, override time.Duration) (*Plan, error) {
	byName := map[string]Test{}
	for _, t := range tree.Tests {
		byName[t.Name] = t
	}
	var selected []Test
	named := names != ""
	if named {
		for _, n := range strings.Split(names, ",") {
			n = strings.TrimSpace(n)
			t, ok := byName[n]
			if !ok {
				return nil, fmt.Errorf("no test %q in %s/x86/unittests.cfg", n, tree.Dir)
			}
			selected = append(selected, t)
		}
	} else {
		selected = tree.Tests
	}
	p := &Plan{skip: map[string]Result{}, Budget: 10 * time.Minute}
	for _, t := range selected {
		p.order = append(p.order, t.Name)
		if why := kutPreSkip(t, tree.Arch, named); why != "" {
			r := kutRun{Result: kutSkip, Status: -1, Detail: why}
			p.skip[t.Name] = Result{Test: t.Name, Ember: r, QEMU: r}
			continue
		}
		d, err := kutTestTimeout(t, override)
		if err != nil {
			return nil, err
		}
		// Two runs, QEMU's check for a premature failure, booting.
		p.Budget += 3*d + 2*time.Minute
		p.ToRun = append(p.ToRun, t)
	}
	return p, nil
}

// Merge puts the lab's results and the host's skips in unittests.cfg order;
// a test the lab never reported (it died) is a FAIL of both with that said.
func (p *Plan) Merge(lab map[string]Result) []Result {
	var out []Result
	for _, n := range p.order {
		if r, ok := p.skip[n]; ok {
			out = append(out, r)
		} else if r, ok := lab[n]; ok {
			out = append(out, r)
		} else {
			none := kutRun{Result: kutFail, Status: -1, Detail: "no result: the lab did not finish this test"}
			out = append(out, Result{Test: n, Ember: none, QEMU: none, Why: none.Detail})
		}
	}
	return out
}

// Verdict fails when ember does not pass a test QEMU passes.
func Verdict(results []Result) error {
	var behind []string
	for _, r := range results {
		if r.QEMU.Result == kutPass && r.Ember.Result != kutPass {
			behind = append(behind, r.Test)
		}
	}
	if len(behind) > 0 {
		return fmt.Errorf("ember does not pass %d test(s) QEMU passes: %s", len(behind), strings.Join(behind, ", "))
	}
	return nil
}

// NewCollector returns a Collector of the results of total tests, which
// passes the lab's other output to progress.
func NewCollector(total int, progress io.Writer) *Collector {
	return &Collector{total: total, progress: progress}
}

// Collector receives the lab's output: result lines are decoded and
// kept, everything else goes to progress.
type Collector struct {
	mu       sync.Mutex
	buf      []byte
	got      []kutWire
	total    int
	progress io.Writer
}

// Write takes the lab's output as it streams in, line by line.
func (c *Collector) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.buf = append(c.buf, p...)
	for {
		i := bytes.IndexByte(c.buf, '\n')
		if i < 0 {
			return len(p), nil
		}
		c.line(string(c.buf[:i+1]))
		c.buf = c.buf[i+1:]
	}
}

// Flush handles a last line without its newline.
func (c *Collector) Flush() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.buf) > 0 {
		c.line(string(c.buf))
		c.buf = nil
	}
}

func (c *Collector) line(l string) {
	rest, ok := strings.CutPrefix(l, kutMarker)
	if !ok {
		io.WriteString(c.progress, l)
		return
	}
	var w kutWire
	if err := json.Unmarshal([]byte(rest), &w); err != nil {
		fmt.Fprintf(c.progress, "lab kut: a result line that does not decode: %v\n", err)
		return
	}
	c.got = append(c.got, w)
	fmt.Fprintf(c.progress, "lab kut: [%d/%d] %s: ember %s, QEMU %s\n", len(c.got), c.total, w.Test, w.Ember.Result, w.QEMU.Result)
}

// Results are the tests reported, by name (a test run again after the lab
// died and came back counts once: the last report).
func (c *Collector) Results() map[string]Result {
	m := map[string]Result{}
	for _, w := range c.Wires() {
		m[w.Test] = w.Result
	}
	return m
}

// Wires returns every test's report as the lab sent it, outputs included
// (for WriteLogs).
func (c *Collector) Wires() []kutWire {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.got)
}

// WriteLogs writes each test's outputs and command lines into dir.
func WriteLogs(dir string, ws []kutWire) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("--logs: %w", err)
	}
	for _, w := range ws {
		for _, s := range []struct {
			vmm            string
			run            kutRun
			output, stderr string
		}{{"ember", w.Ember, w.EmberOutput, w.EmberStderr}, {"qemu", w.QEMU, w.QEMUOutput, w.QEMUStderr}} {
			var b strings.Builder
			fmt.Fprintf(&b, "# %s\n# %s, status %d, %.1fs\n", strings.Join(s.run.Argv, " "), s.run.Result, s.run.Status, s.run.Seconds)
			if s.run.Detail != "" {
				fmt.Fprintf(&b, "# %s\n", s.run.Detail)
			}
			b.WriteString(s.output)
			if s.stderr != "" {
				fmt.Fprintf(&b, "\n# standard error:\n%s", s.stderr)
			}
			if err := os.WriteFile(filepath.Join(dir, w.Test+"."+s.vmm+".log"), []byte(b.String()), 0o644); err != nil {
				return fmt.Errorf("--logs: %w", err)
			}
		}
	}
	return nil
}

// kutRow is a result as the tables show it: the why column says why a test
// did not run when neither VMM ran it.
func kutRow(r Result) (ember, qemu, why string) {
	why = r.Why
	if why == "" && r.Ember.Result == kutSkip && r.QEMU.Result == kutSkip && r.Ember.Status == -1 {
		why = "not run: " + r.Ember.Detail
	}
	return r.Ember.Result, r.QEMU.Result, why
}

// WriteTable prints the results for a terminal.
func WriteTable(w io.Writer, results []Result) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "test\tember\tQEMU\twhy they differ")
	for _, r := range results {
		e, q, why := kutRow(r)
		if len(why) > 140 {
			why = why[:137] + "..."
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", r.Test, e, q, why)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	_, err := fmt.Fprintln(w, kutCounts(results))
	return err
}

// WriteMarkdown prints the results as a Markdown table.
func WriteMarkdown(w io.Writer, results []Result) error {
	var b strings.Builder
	b.WriteString("| test | ember | QEMU | why they differ |\n|---|---|---|---|\n")
	esc := strings.NewReplacer("|", `\|`, "`", "'")
	for _, r := range results {
		e, q, why := kutRow(r)
		if why != "" {
			why = "`" + esc.Replace(why) + "`"
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s |\n", r.Test, e, q, why)
	}
	fmt.Fprintf(&b, "\n%s\n", kutCounts(results))
	_, err := io.WriteString(w, b.String())
	return err
}

// kutCounts sums the results up in one line.
func kutCounts(results []Result) string {
	count := func(f func(Result) string) string {
		n := map[string]int{}
		for _, r := range results {
			n[f(r)]++
		}
		return fmt.Sprintf("%d PASS, %d FAIL, %d SKIP, %d TIMEOUT", n[kutPass], n[kutFail], n[kutSkip], n[kutTimeout])
	}
	same := 0
	for _, r := range results {
		if r.Ember.Result == r.QEMU.Result {
			same++
		}
	}
	return fmt.Sprintf("%d tests; ember: %s; QEMU: %s; same result: %d",
		len(results), count(func(r Result) string { return r.Ember.Result }),
		count(func(r Result) string { return r.QEMU.Result }), same)
}

// WriteJSON prints the results as one JSON document.
func WriteJSON(w io.Writer, tree *Tree, results []Result) error {
	doc := struct {
		Dir   string   `json:"dir"`
		Arch  string   `json:"arch"`
		Tests []Result `json:"tests"`
	}{tree.Dir, tree.Arch, results}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(doc); err != nil {
		return fmt.Errorf("--json: %w", err)
	}
	return nil
}

// ---- inside the lab: kut-test NAME ----

// TestCommand is the hidden kut-test command the lab runs for each test:
// it runs the named test under ember and QEMU and prints its result line.
func TestCommand() *cobra.Command {
	var ember, dir string
	var testTimeout time.Duration
	cmd := &cobra.Command{
		Use:    TestCmd + " --ember BIN --dir DIR NAME",
		Hidden: true,
		Args:   cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			tree, err := OpenTree(dir)
			if err != nil {
				return err
			}
			i := slices.IndexFunc(tree.Tests, func(t Test) bool { return t.Name == args[0] })
			if i < 0 {
				return fmt.Errorf("no test %q in %s", args[0], dir)
			}
			w, err := runKutTest(cmd.Context(), tree, tree.Tests[i], ember, testTimeout, os.Stdout)
			if err != nil {
				return err
			}
			b, err := json.Marshal(w)
			if err != nil {
				return fmt.Errorf("kut-test %s: %w", args[0], err)
			}
			_, err = fmt.Fprintf(os.Stdout, "%s%s\n", kutMarker, b)
			return err
		},
	}
	f := cmd.Flags()
	f.StringVar(&ember, "ember", "", "ember binary")
	f.StringVar(&dir, "dir", "", "the kvm-unit-tests tree")
	f.DurationVar(&testTimeout, "test-timeout", 0, "time-out overriding unittests.cfg")
	return cmd
}

// runKutTest runs one test under ember and under QEMU, telling progress
// what each did.
func runKutTest(ctx context.Context, tree *Tree, t Test, ember string, override time.Duration, progress io.Writer) (kutWire, error) {
	w := kutWire{Result: Result{Test: t.Name}}
	skip := func(why string) (kutWire, error) {
		r := kutRun{Result: kutSkip, Status: -1, Detail: why}
		w.Ember, w.QEMU = r, r
		return w, nil
	}
	timeout, err := kutTestTimeout(t, override)
	if err != nil {
		return w, err
	}
	env := kutShellEnv()
	if t.DisabledIf != "" {
		c := exec.CommandContext(ctx, "bash", "-c", t.DisabledIf)
		c.Dir, c.Env = tree.Dir, env
		if c.Run() == nil {
			return skip("disabled because: " + t.DisabledIf)
		}
	}
	if why := kutCheck(t.Check); why != "" {
		return skip(why)
	}
	kernel := filepath.Join(tree.Dir, tree.TestDir, t.File)
	if _, err := os.Stat(kernel); err != nil {
		return skip(fmt.Sprintf("Test file '%s/%s' not found", tree.TestDir, t.File))
	}
	smpWords, err := kutEval(ctx, tree.Dir, env, t.SMP)
	if err != nil || len(smpWords) != 1 {
		return w, fmt.Errorf("[%s] smp = %s: not one number (%v)", t.Name, t.SMP, err)
	}
	smp, err := strconv.Atoi(smpWords[0])
	if err != nil {
		return w, fmt.Errorf("[%s] smp = %s: %w", t.Name, t.SMP, err)
	}
	testArgs, err := kutEval(ctx, tree.Dir, env, t.TestArgs)
	if err != nil {
		return w, fmt.Errorf("[%s] test_args: %w", t.Name, err)
	}
	params, err := kutEval(ctx, tree.Dir, env, t.Params)
	if err != nil {
		return w, fmt.Errorf("[%s] qemu_params: %w", t.Name, err)
	}
	envFile, err := writeKutEnv(ctx, t.Name)
	if err != nil {
		return w, err
	}
	defer os.Remove(envFile)

	p, err := kutEmberParams(params)
	if err != nil {
		return w, fmt.Errorf("[%s]: %w", t.Name, err)
	}
	memory := p.memory
	if memory == "" {
		memory = kutDefaultMemory
	}
	w.NotApplied = p.notApplied
	emberArgv := []string{ember, "run", "--kernel", kernel, "--initrd", envFile, "--cpus", strconv.Itoa(smp),
		"--memory", memory, "--test-devices", "--quiet"}
	if len(testArgs) > 0 {
		emberArgv = append(emberArgv, "--cmdline", strings.Join(testArgs, " "))
	}
	if len(p.mask) > 0 {
		emberArgv = append(emberArgv, "--cpuid-mask", strings.Join(p.mask, ","))
	}
	if p.hyperV {
		emberArgv = append(emberArgv, "--hyperv")
	}
	if p.hvTestDev {
		emberArgv = append(emberArgv, "--hyperv-testdev")
	}
	if p.iommu {
		emberArgv = append(emberArgv, "--iommu")
	}
	if p.edu {
		emberArgv = append(emberArgv, "--edu")
	}
	qemuArgv := func(kernel string) []string {
		a := append([]string{qemuBinary}, kutQEMUBase...)
		a = append(a, "-kernel", kernel, "-smp", strconv.Itoa(smp))
		if len(testArgs) > 0 {
			a = append(a, "-append")
			a = append(a, testArgs...)
		}
		a = append(a, params...)
		return append(a, "-initrd", envFile)
	}

	w.Ember = kutExec(ctx, emberArgv, tree.Dir, timeout)
	w.Ember.Detail = kutDetail(w.Ember, timeout, true)
	fmt.Fprintf(progress, "kut: %s: ember %s in %.1fs %s\n", t.Name, w.Ember.Result, w.Ember.Seconds, w.Ember.Detail)

	// The suite first starts QEMU with a kernel that does not exist: if
	// QEMU fails for another reason (an option or CPU model it does not
	// know), the test is skipped with QEMU's last line.
	pre := kutExec(ctx, qemuArgv("_NO_FILE_4Uhere_"), tree.Dir, timeout)
	log := pre.Output + pre.Stderr
	if !regexp.MustCompile(`[Cc]ould not (load|open) kernel|error loading|failed to load`).MatchString(log) {
		w.QEMU = kutRun{Result: kutSkip, Status: pre.Status, Detail: lastLine(log), Argv: qemuArgv(kernel)}
	} else {
		w.QEMU = kutExec(ctx, qemuArgv(kernel), tree.Dir, timeout)
		w.QEMU.Detail = kutDetail(w.QEMU, timeout, false)
	}
	fmt.Fprintf(progress, "kut: %s: QEMU %s in %.1fs %s\n", t.Name, w.QEMU.Result, w.QEMU.Seconds, w.QEMU.Detail)
	w.Why = kutWhy(w.Result)
	w.EmberOutput, w.EmberStderr = w.Ember.Output, w.Ember.Stderr
	w.QEMUOutput, w.QEMUStderr = w.QEMU.Output, w.QEMU.Stderr
	return w, nil
}

// kutShellEnv is the environment the suite's variables are evaluated in.
func kutShellEnv() []string {
	return append(os.Environ(), "ACCEL="+kutLabAccel, fmt.Sprintf("MAX_SMP=%d", numCPU()))
}

// numCPU is the number of online CPUs (getconf _NPROCESSORS_ONLN).
func numCPU() int {
	var set unix.CPUSet
	if err := unix.SchedGetaffinity(0, &set); err != nil {
		return 1
	}
	return set.Count()
}

// kutEval evaluates a unittests.cfg value as the suite does (its command line
// goes through bash's eval: quotes, backticks and variables) and returns its
// words.
func kutEval(ctx context.Context, dir string, env []string, value string) ([]string, error) {
	if strings.TrimSpace(value) == "" {
		return nil, nil
	}
	c := exec.CommandContext(ctx, "bash", "-c", `eval "set -- $1" && printf '%s\0' "$@"`, "kut-eval", value)
	c.Dir, c.Env = dir, env
	var stderr bytes.Buffer
	c.Stderr = &stderr
	out, err := c.Output()
	if err != nil {
		return nil, fmt.Errorf("bash evaluating %q: %w: %s", value, err, strings.TrimSpace(stderr.String()))
	}
	words := strings.Split(string(out), "\x00")
	return words[:len(words)-1], nil
}

// kutCheck evaluates a check line (space-separated PATH=VALUE: the file must
// exist and hold VALUE) and returns the suite's skip reason, or "".
func kutCheck(check string) string {
	for _, p := range strings.Fields(check) {
		path, value, _ := strings.Cut(p, "=")
		b, err := os.ReadFile(path)
		if err != nil || strings.TrimRight(string(b), "\n") != value {
			return path + " not equal to " + value
		}
	}
	return ""
}

// writeKutEnv writes the environment file the suite gives every test as its
// initrd (scripts/arch-run.bash's initrd_create: the target, QEMU's
// accelerator and version, the host kernel's version; the ERRATA_ lines are
// left out: errata.txt lists only arm64 errata, and no x86 test reads them).
func writeKutEnv(ctx context.Context, name string) (string, error) {
	var b strings.Builder
	b.WriteString("TARGET=\nQEMU_ACCEL=" + kutLabAccel + "\n")
	out, err := exec.CommandContext(ctx, qemuBinary, "-h").Output()
	if err != nil {
		return "", fmt.Errorf("%s -h: %w", qemuBinary, err)
	}
	version, _, _ := strings.Cut(string(out), "\n")
	f := strings.FieldsFunc(version, func(r rune) bool { return r == ' ' || r == '.' })
	f = append(f, "", "", "", "", "", "")
	fmt.Fprintf(&b, "QEMU_VERSION_STRING=%s\nQEMU_MAJOR=%s\nQEMU_MINOR=%s\nQEMU_MICRO=%s\n", version, f[3], f[4], f[5])
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return "", fmt.Errorf("uname: %w", err)
	}
	release := unix.ByteSliceToString(u.Release[:])
	ver, rest, _ := strings.Cut(release, ".")
	patch, rest, _ := strings.Cut(rest, ".")
	sub, extra, _ := strings.Cut(rest, "-")
	digits := func(s string) string { return s[:len(s)-len(strings.TrimLeft(s, "0123456789"))] }
	fmt.Fprintf(&b, "KERNEL_VERSION_STRING=%s\nKERNEL_VERSION=%s\nKERNEL_PATCHLEVEL=%s\nKERNEL_SUBLEVEL=%s\nKERNEL_EXTRAVERSION=%s\n",
		release, ver, patch, digits(sub), digits(extra))
	file, err := os.CreateTemp("", "kut-env-"+name+"-")
	if err != nil {
		return "", fmt.Errorf("environment file: %w", err)
	}
	defer file.Close()
	if _, err := file.WriteString(b.String()); err != nil {
		return "", fmt.Errorf("environment file: %w", err)
	}
	return file.Name(), nil
}

// kutExec runs one VMM on one test, as the suite's `timeout -k 1s
// --foreground T` does: SIGTERM at the time-out, SIGKILL a second later.
func kutExec(ctx context.Context, argv []string, dir string, timeout time.Duration) kutRun {
	r := kutRun{Argv: argv, Status: -1}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Dir = dir
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = time.Second
	var stdout, stderr capped
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	err := cmd.Run()
	r.Seconds = time.Since(start).Seconds()
	r.Output, r.Stderr = stdout.String(), stderr.String()
	if cmd.ProcessState == nil {
		r.Result, r.Detail = kutFail, fmt.Sprintf("did not start: %v", err)
		return r
	}
	r.Status = cmd.ProcessState.ExitCode()
	r.Result = kutClassify(r.Status, errors.Is(ctx.Err(), context.DeadlineExceeded), r.Stderr)
	r.Summary = firstMatch(r.Output, kutSummaryRE)
	return r
}

// capped keeps the first part and the last part of what is written, at most
// kutOutputLimit in all.
type capped struct {
	head, tail []byte
	dropped    int
}

func (c *capped) Write(p []byte) (int, error) {
	n := len(p)
	if room := kutOutputLimit*3/4 - len(c.head); room > 0 {
		k := min(room, len(p))
		c.head = append(c.head, p[:k]...)
		p = p[k:]
	}
	c.tail = append(c.tail, p...)
	if over := len(c.tail) - kutOutputLimit/4; over > 0 {
		c.dropped += over
		c.tail = append(c.tail[:0], c.tail[over:]...)
	}
	return n, nil
}

func (c *capped) String() string {
	if c.dropped == 0 {
		return string(c.head) + string(c.tail)
	}
	return fmt.Sprintf("%s\n[... %d bytes left out ...]\n%s", c.head, c.dropped, c.tail)
}
