package hv

import (
	"fmt"
	"os"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"ember/guest"
	"ember/hv/internal/vcputhread"
	"ember/kvm"
	"ember/x86"
)

// TestVCPUFollowsItsGoroutine: when the vCPU's yield brings its goroutine
// back on another thread, the vCPU moves there (followThread): the new
// thread is the vCPU's (its guest time is the one counted) and bears its
// name, the old one gets the process's name back, and a kick reaches the
// guest running on the new thread. A kick to the old thread would leave the guest spinning.
func TestVCPUFollowsItsGoroutine(t *testing.T) {
	vm, err := openHV(t).NewVM(Config{MemorySize: 1 << 20, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer vm.Close()
	// movb $1, %cs:0x100 (tell the test the guest runs); jmp .
	if err := vm.LoadImage([]byte{0x2e, 0xc6, 0x06, 0x00, 0x01, 0x01, 0xeb, 0xfe}, guest.LoadAddr); err != nil {
		t.Fatal(err)
	}
	if err := vm.SetEntry(0, x86.Entry{Mode: x86.RealMode, RIP: guest.LoadAddr}); err != nil {
		t.Fatal(err)
	}
	flag, err := vm.Memory().Slice(guest.LoadAddr+0x100, 1)
	if err != nil {
		t.Fatal(err)
	}
	c := vm.vcpus[0]

	// The loop's start, on a first thread that stays locked until the test
	// ends, so that the second is another thread. Not the main thread,
	// which keeps the process's name: a goroutine that lands there keeps it
	// locked and another tries.
	release := make(chan struct{})
	defer close(release)
	var firstTID int
	for firstTID == 0 {
		first := make(chan int)
		go func() {
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			if unix.Gettid() == os.Getpid() {
				first <- 0
				<-release
				return
			}
			vcputhread.Name(0)
			c.startThread()
			c.kvm.BindThread()
			first <- unix.Gettid()
			<-release
		}()
		firstTID = <-first
	}

	var kicked atomic.Bool
	second := make(chan int, 1)
	done := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		c.followThread()
		second <- unix.Gettid()
		for {
			exit, err := c.kvm.Run()
			if err != nil || exit.Reason == kvm.ExitIntr && kicked.Load() {
				done <- err
				return
			}
		}
	}()
	secondTID := <-second
	if got := int(c.tid.Load()); got != secondTID {
		t.Errorf("the vCPU's thread is %d, want %d, the one its goroutine runs on", got, secondTID)
	}
	want := vcputhread.ThreadName(0)
	if secondTID == os.Getpid() {
		want = comm(t, secondTID) // the main thread keeps the process's name
		t.Logf("the goroutine came back on the main thread, which keeps its name %q", want)
	}
	if got := comm(t, secondTID); got != want {
		t.Errorf("the new thread is named %q, want %q", got, want)
	}
	if got, want := comm(t, firstTID), comm(t, os.Getpid()); got != want {
		t.Errorf("the old thread is named %q, want the process's %q back", got, want)
	}

	for deadline := time.Now().Add(5 * time.Second); flag[0] == 0; {
		if time.Now().After(deadline) {
			c.kvm.Kick()
			t.Fatal("the guest did not start within 5 s")
		}
		runtime.Gosched()
	}
	kicked.Store(true)
	if err := c.kvm.Kick(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(5 * time.Second):
		unix.Tgkill(unix.Getpid(), secondTID, unix.SIGURG) // free the guest's thread
		t.Fatal("the kick did not reach the vCPU on its new thread; the guest spins on")
	}
}

// comm is thread tid's name.
func comm(t *testing.T, tid int) string {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/self/task/%d/comm", tid))
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}
