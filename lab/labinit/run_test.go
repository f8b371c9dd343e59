package main

import (
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// testLimits are stepLimits shortened for tests; quiet is long enough never
// to fire (it would write to this machine's /proc/sysrq-trigger).
var testLimits = limits{
	quiet:     time.Hour,
	exitGrace: 300 * time.Millisecond,
	killGrace: 5 * time.Second,
	pipeGrace: 300 * time.Millisecond,
	every:     50 * time.Millisecond,
}

// runShell runs script under sh through runCmd with testLimits and returns
// its status and what labinit and the script printed.
func runShell(t *testing.T, script string) (int, string) {
	t.Helper()
	var b strings.Builder
	saved := out
	out = &lineWriter{w: &b, bol: true}
	t.Cleanup(func() { out = saved })
	w := &activityWriter{w: out}
	w.touch()
	cmd := exec.Command("/bin/sh", "-c", script)
	cmd.Stdout, cmd.Stderr = w, w
	start := time.Now()
	code := runCmd("step", cmd, w, testLimits)
	if took := time.Since(start); took > 20*time.Second {
		t.Errorf("runCmd took %v", took)
	}
	return code, b.String()
}

// TestRunCmdEndsATestBinaryThatWillNotExit: a step whose last line is go
// test's verdict and which is still there exitGrace later is listed with
// its threads (and, as root, their kernel stacks) and killed, and its
// status is the verdict's; a step that printed more after such a line, or
// whose last line only ends in PASS, is left alone.
func TestRunCmdEndsATestBinaryThatWillNotExit(t *testing.T) {
	for _, tt := range []struct {
		name   string
		script string
		code   int
		want   []string
	}{
		{"PASS then stuck", "echo '--- ok'; echo PASS; exec sleep 60", 0,
			[]string{"step printed PASS and had not exited", "sleep (S)", "labinit:     tid ", "step killed; its verdict PASS stands"}},
		{"FAIL then stuck", "echo FAIL; exec sleep 60", 1,
			[]string{"step printed FAIL and had not exited", "its verdict FAIL stands"}},
		{"a PASS line mid-output", "echo PASS; echo more; sleep 0.6; exit 3", 3, nil},
		{"PASS inside a line", "printf 'NOT PASS\\n'; sleep 0.6; exit 4", 4, nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			code, got := runShell(t, tt.script)
			if code != tt.code {
				t.Errorf("status %d, want %d; output:\n%s", code, tt.code, got)
			}
			for _, w := range tt.want {
				if !strings.Contains(got, w) {
					t.Errorf("output lacks %q:\n%s", w, got)
				}
			}
			if tt.want == nil && strings.Contains(got, "had not exited") {
				t.Errorf("a step that had not printed its verdict last was killed:\n%s", got)
			}
		})
	}
}

// TestRunCmdKillsWhatAStepLeftBehind: a process the step started and left
// running (here holding the step's output open) neither holds the step
// past pipeGrace nor outlives it; it is named in the output.
func TestRunCmdKillsWhatAStepLeftBehind(t *testing.T) {
	code, got := runShell(t, "sleep 30 & echo started; exit 0")
	if code != 0 {
		t.Errorf("status %d, want 0; output:\n%s", code, got)
	}
	for _, w := range []string{"its output was still open", "step left 1 processes behind", "sleep (S)"} {
		if !strings.Contains(got, w) {
			t.Errorf("output lacks %q:\n%s", w, got)
		}
	}
	if strings.Contains(got, "had not exited") {
		t.Errorf("an exited step was taken for a stuck one:\n%s", got)
	}
}

// TestRunCmdStatus: a step's own exit status is its status, a command
// that cannot start is 127.
func TestRunCmdStatus(t *testing.T) {
	for _, tt := range []struct {
		script string
		code   int
	}{{"exit 0", 0}, {"exit 7", 7}, {"echo FAIL; exit 1", 1}, {"kill -9 $$", 128}} {
		if code, got := runShell(t, tt.script); code != tt.code {
			t.Errorf("%q: status %d, want %d; output:\n%s", tt.script, code, tt.code, got)
		}
	}
	saved := out
	var b strings.Builder
	out = &lineWriter{w: &b, bol: true}
	defer func() { out = saved }()
	w := &activityWriter{w: out}
	if code := runCmd("missing", &exec.Cmd{Path: "/nonexistent/x", Args: []string{"x"}}, w, testLimits); code != 127 {
		t.Errorf("a missing command: status %d, want 127", code)
	}
}

// TestVerdictLine: only a whole last line of PASS or FAIL, newline ended,
// is a verdict; a tail cut mid-line cannot vouch for its first line.
func TestVerdictLine(t *testing.T) {
	for _, tt := range []struct {
		tail  string
		whole bool
		want  string
	}{
		{"PASS\n", true, "PASS"},
		{"PASS\n", false, ""},
		{"x\nPASS\n", false, "PASS"},
		{"--- FAIL: TestX (0.1s)\nFAIL\n", true, "FAIL"},
		{"PASS", true, ""},
		{"PASS\nok\n", true, ""},
		{"NOT PASS\n", true, ""},
		{"\n", true, ""},
		{"", true, ""},
	} {
		if got := verdictLine([]byte(tt.tail), tt.whole); got != tt.want {
			t.Errorf("verdictLine(%q, %v) = %q, want %q", tt.tail, tt.whole, got, tt.want)
		}
	}
}

// TestActivityWriterVerdict: the verdict is seen across writes, through
// a tail longer than tailKeep, and forgotten when output follows it.
func TestActivityWriterVerdict(t *testing.T) {
	var b strings.Builder
	w := &activityWriter{w: &b}
	w.Write([]byte(strings.Repeat("x", 3*tailKeep) + "\nPA"))
	if v, _ := w.verdict(); v != "" {
		t.Fatalf("verdict %q before the line ended", v)
	}
	w.Write([]byte("SS\n"))
	if v, at := w.verdict(); v != "PASS" || at.IsZero() {
		t.Errorf("verdict %q at %v, want PASS now", v, at)
	}
	w.Write([]byte("more\n"))
	if v, _ := w.verdict(); v != "" {
		t.Errorf("verdict %q after more output", v)
	}
	if b.Len() != 3*tailKeep+len("\nPASS\nmore\n") {
		t.Errorf("passed on %d bytes", b.Len())
	}
}

// TestStatFields: the command name may hold spaces and parentheses.
func TestStatFields(t *testing.T) {
	comm, rest, ok := statFields("42 (a (b) c) S 1 42 42 0 -1")
	if !ok || comm != "a (b) c" || rest[0] != "S" || rest[3] != "42" {
		t.Errorf("got %q %q %v", comm, rest, ok)
	}
	if _, _, ok := statFields("42 (x) S 1"); ok {
		t.Error("a short line parsed")
	}
}

// TestSessionProcsFindsThisProcess: this test's process is in its own
// session's list, with its threads.
func TestSessionProcsFindsThisProcess(t *testing.T) {
	sid, err := unix.Getsid(0)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range sessionProcs(sid) {
		if p.pid == os.Getpid() {
			if len(p.threads) == 0 || !strings.Contains(p.summary(), "threads: ") {
				t.Errorf("this process: %+v, %s", p, p.summary())
			}
			return
		}
	}
	t.Errorf("pid %d not in session %d's list", os.Getpid(), sid)
}

// TestSummaryCountsThreads: threads are counted by state and wait,
// the most common first.
func TestSummaryCountsThreads(t *testing.T) {
	p := proc{pid: 9, comm: "x", state: "S", threads: []thread{
		{1, "S", "futex_wait_queue"}, {2, "R", ""}, {3, "S", "futex_wait_queue"}, {4, "D", "synchronize_srcu"},
	}}
	want := "pid 9 x (S), 4 threads: 2× S futex_wait_queue, 1× D synchronize_srcu, 1× R"
	if got := p.summary(); got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
}

// TestLiveLeavesOutZombies: a process all of whose tasks are zombies is
// gone for our purposes; one whose leader alone has exited is not.
func TestLiveLeavesOutZombies(t *testing.T) {
	ps := []proc{
		{pid: 1, state: "Z", threads: []thread{{1, "Z", ""}}},
		{pid: 2, state: "Z"},
		{pid: 3, state: "Z", threads: []thread{{3, "Z", ""}, {4, "S", "futex_wait_queue"}}},
		{pid: 5, state: "S", threads: []thread{{5, "S", "ep_poll"}}},
	}
	var got []int
	for _, p := range live(ps) {
		got = append(got, p.pid)
	}
	if !slices.Equal(got, []int{3, 5}) {
		t.Errorf("live pids %v, want [3 5]", got)
	}
}
