package main

import (
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"testing"
)

// TestKeepOffCPU0 runs keepOffCPU0 in a process of its own (it moves the
// whole process): afterwards none of its threads, not those started after
// it, and not a process it starts may run on CPU 0, and every other CPU is
// left to them.
func TestKeepOffCPU0(t *testing.T) {
	if runtime.NumCPU() < 2 {
		t.Skip("this machine has one CPU: keepOffCPU0 leaves a lab of one CPU alone, and there is nothing to move here")
	}
	if os.Getenv("LABINIT_KEEP_OFF_CPU0") == "1" {
		keepOffCPU0Child(t)
		return
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestKeepOffCPU0$", "-test.v")
	cmd.Env = append(os.Environ(), "LABINIT_KEEP_OFF_CPU0=1")
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "--- PASS: TestKeepOffCPU0") {
		t.Fatalf("the child process: %v\n%s", err, out)
	}
}

// keepOffCPU0Child is TestKeepOffCPU0 in its own process.
func keepOffCPU0Child(t *testing.T) {
	if err := keepOffCPU0(); err != nil {
		t.Fatal(err)
	}
	// Threads the runtime starts now, one for each goroutine locked to one.
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			runtime.LockOSThread()
			<-stop
		}()
	}
	defer func() { close(stop); wg.Wait() }()
	ents, err := os.ReadDir("/proc/self/task")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		b, err := os.ReadFile("/proc/self/task/" + e.Name() + "/status")
		if err != nil {
			continue // gone
		}
		checkAllowed(t, "thread "+e.Name(), string(b))
	}
	b, err := exec.Command("cat", "/proc/self/status").Output()
	if err != nil {
		t.Fatal(err)
	}
	checkAllowed(t, "a child process", string(b))
}

// checkAllowed checks the Cpus_allowed_list of a /proc status file: every
// CPU but 0.
func checkAllowed(t *testing.T, who, status string) {
	t.Helper()
	want := "1"
	if n := runtime.NumCPU(); n > 2 {
		want = fmt.Sprintf("1-%d", n-1)
	}
	for line := range strings.Lines(status) {
		if v, ok := strings.CutPrefix(line, "Cpus_allowed_list:"); ok {
			if got := strings.TrimSpace(v); got != want {
				t.Errorf("%s may run on CPUs %s, want %s", who, got, want)
			}
			return
		}
	}
	t.Errorf("%s: no Cpus_allowed_list in its status", who)
}
