package vcputhread

import (
	"fmt"
	"os"
	"runtime"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// comm reads thread tid's name ("" if it cannot).
func comm(tid int) string {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/comm", os.Getpid(), tid))
	return strings.TrimSpace(string(b))
}

// onNewLockedThread runs f on a goroutine locked to its thread for good,
// as a vCPU's is, and returns that thread's id.
func onNewLockedThread(f func()) int {
	tids := make(chan int)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread ends with the goroutine
		f()
		tids <- unix.Gettid()
	}()
	return <-tids
}

// TestNameNamesTheCallingThread: the name shows in the thread's comm; a
// vCPU number too long for the kernel's 15 characters is cut; the
// process's main thread, whose name is the process's, is never renamed.
func TestNameNamesTheCallingThread(t *testing.T) {
	process := comm(os.Getpid())
	for _, tt := range []struct {
		vcpu int
		want string
	}{
		{0, "ember-vcpu0"},
		{4095, "ember-vcpu4095"},
		{1234567, "ember-vcpu12345"},
	} {
		named := false
		for try := 0; try < 100 && !named; try++ {
			var got string
			tid := onNewLockedThread(func() {
				if err := Name(tt.vcpu); err != nil {
					t.Error(err)
				}
				got = comm(unix.Gettid())
			})
			named = tid != os.Getpid() // the main thread is checked below
			if named && got != tt.want {
				t.Errorf("vCPU %d: thread named %q, want %q", tt.vcpu, got, tt.want)
			}
		}
		if !named {
			t.Errorf("vCPU %d: every try ran on the main thread", tt.vcpu)
		}
		if got := comm(os.Getpid()); got != process {
			t.Errorf("the main thread was renamed %q from %q", got, process)
		}
	}
}
