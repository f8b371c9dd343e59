package threadstat

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// statLine is a stat line of 52 fields for command comm with utime,
// stime and guest_time as given and every other field 1.
func statLine(comm, utime, stime, guest string) string {
	f := make([]string, 52-2) // from field 3 on
	for i := range f {
		f[i] = "1"
	}
	f[utimeField-3], f[stimeField-3], f[guestTimeField-3] = utime, stime, guest
	return "1234 (" + comm + ") " + strings.Join(f, " ") + "\n"
}

// TestParseStat: the times are fields 14, 15 and 43 counted past the
// command name, whatever the name holds, in USER_HZ ticks; a line cut
// short, without a name or with a field that is not a number is an error.
func TestParseStat(t *testing.T) {
	for _, tt := range []struct {
		name, line string
		want       Times
		wantErr    bool
	}{
		{"plain", statLine("ember", "300", "40", "250"), Times{CPU: 3400 * time.Millisecond, Guest: 2500 * time.Millisecond, System: 400 * time.Millisecond}, false},
		{"spaces and parens", statLine("a (b) c", "300", "40", "250"), Times{CPU: 3400 * time.Millisecond, Guest: 2500 * time.Millisecond, System: 400 * time.Millisecond}, false},
		{"short", "1234 (ember) S 1 2 3", Times{}, true},
		{"no parenthesis", "no parenthesis here", Times{}, true},
		{"not a number", statLine("ember", "300", "40", "x"), Times{}, true},
	} {
		got, err := ParseStat([]byte(tt.line))
		if got != tt.want || (err != nil) != tt.wantErr {
			t.Errorf("%s: %+v, %v; want %+v, error %v", tt.name, got, err, tt.want, tt.wantErr)
		}
	}
}

// TestParseSwitches reads the two switch counts apart and ignores the rest.
func TestParseSwitches(t *testing.T) {
	tests := []struct {
		name, status         string
		voluntary, preempted uint64
	}{
		{"both", "Name:\tember\nvoluntary_ctxt_switches:\t120\nnonvoluntary_ctxt_switches:\t7\nThreads:\t9\n", 120, 7},
		{"garbage", "voluntary_ctxt_switches:\tmany\n", 0, 0},
		{"only preempted", "nonvoluntary_ctxt_switches:\t3\n", 0, 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, p := ParseSwitches([]byte(tt.status))
			if v != tt.voluntary || p != tt.preempted {
				t.Errorf("ParseSwitches = %d, %d, want %d, %d", v, p, tt.voluntary, tt.preempted)
			}
		})
	}
}

// TestReadThreadOfThisProcess: this (non-VMM) process's main thread ran no
// guest, and has switched context and used CPU time, or at least was read.
func TestReadThreadOfThisProcess(t *testing.T) {
	pid := strconv.Itoa(os.Getpid())
	got, err := ReadThread("/proc/" + pid + "/task/" + pid)
	if err != nil || got.Guest != 0 || got.Switches == 0 {
		t.Errorf("ReadThread(main thread) = %+v, %v; want no guest time and some switches", got, err)
	}
	if g := GuestTime(os.Getpid()); g != 0 {
		t.Errorf("GuestTime(main thread) = %v, want 0", g)
	}
}

// TestReadProcessOfThisProcess: the real /proc lists this process's
// threads, none of which ran a guest, and at least one that switched.
func TestReadProcessOfThisProcess(t *testing.T) {
	threads, err := ReadProcess("/proc", os.Getpid())
	if err != nil || len(threads) == 0 {
		t.Fatalf("ReadProcess(self) = %v, %v", threads, err)
	}
	var switches uint64
	for tid, th := range threads {
		if th.Guest != 0 {
			t.Errorf("thread %d: guest time %v, want 0", tid, th.Guest)
		}
		switches += th.Switches
	}
	if switches == 0 {
		t.Error("no thread of this process switched context")
	}
}

// TestFirstThread: the first thread after the main one is the lowest id
// but the process's own, wherever the main one falls; none without another.
func TestFirstThread(t *testing.T) {
	for _, tc := range []struct {
		name string
		pid  int
		tids []int
		want int
	}{
		{"main lowest", 100, []int{100, 103, 101, 102}, 101},
		{"main not lowest", 100, []int{104, 100, 99}, 99},
		{"main alone", 100, []int{100}, 0},
	} {
		threads := map[int]Times{}
		for _, tid := range tc.tids {
			threads[tid] = Times{}
		}
		if got := FirstThread(tc.pid, threads); got != tc.want {
			t.Errorf("%s: FirstThread = %d, want %d", tc.name, got, tc.want)
		}
	}
}

// TestThreadGroup: a thread's process is its status file's Tgid line; a
// thread whose file cannot be read, or has no such line, stands for
// itself.
func TestThreadGroup(t *testing.T) {
	proc := t.TempDir()
	for tid, status := range map[int]string{
		103: "Name:\tember\nTgid:\t100\nPid:\t103\n",
		104: "Name:\tember\nPid:\t104\n",
		105: "Name:\tember\nTgid:\tx\n",
	} {
		dir := filepath.Join(proc, strconv.Itoa(tid))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "status"), []byte(status), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		name      string
		tid, want int
	}{
		{"a thread of process 100", 103, 100},
		{"no Tgid line", 104, 104},
		{"a Tgid that is not a number", 105, 105},
		{"no status file", 106, 106},
	} {
		if got := ThreadGroup(proc, tc.tid); got != tc.want {
			t.Errorf("%s: ThreadGroup(%d) = %d, want %d", tc.name, tc.tid, got, tc.want)
		}
	}
}

// TestThreadGroupOfAnotherThread: in /proc, each thread of this process
// other than the main one (a Go program always has sysmon's) belongs to
// this process.
func TestThreadGroupOfAnotherThread(t *testing.T) {
	threads, err := ReadProcess("/proc", os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	others := 0
	for tid := range threads {
		if tid == os.Getpid() {
			continue
		}
		others++
		if got := ThreadGroup("/proc", tid); got != os.Getpid() {
			t.Errorf("ThreadGroup(/proc, %d) = %d, want this process, %d", tid, got, os.Getpid())
		}
	}
	if others == 0 {
		t.Fatal("the process has no thread but its main one")
	}
}
