package threadname

import (
	"bytes"
	"fmt"
	"os"
	"runtime"
	"testing"

	"golang.org/x/sys/unix"
)

// comm reads the name of thread tid of this process.
func comm(t *testing.T, tid int) string {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/self/task/%d/comm", tid))
	if err != nil {
		t.Fatal(err)
	}
	return string(bytes.TrimSpace(b))
}

// offMain runs f on a goroutine locked to a thread other than the main
// one, and returns the thread's id and a function that ends the
// goroutine and, with it, the thread. A goroutine that locked the main
// thread instead keeps it until then.
func offMain(t *testing.T, f func(tid int)) (int, func()) {
	t.Helper()
	end := make(chan struct{})
	for range 10 {
		tid := make(chan int)
		go func() {
			runtime.LockOSThread() // never undone: the thread ends with the goroutine
			id := unix.Gettid()
			if id != os.Getpid() {
				f(id)
			}
			tid <- id
			<-end
		}()
		if id := <-tid; id != os.Getpid() {
			return id, func() { close(end) }
		}
	}
	close(end)
	t.Fatal("no goroutine got a thread but the main one")
	return 0, nil
}

// TestMoveGivesTheNameToTheCallingThread: after Move, the calling thread
// bears the name and the thread that bore it bears the process's again,
// so that ps -T shows one thread of that name.
func TestMoveGivesTheNameToTheCallingThread(t *testing.T) {
	proc := comm(t, os.Getpid())
	from, endFrom := offMain(t, func(int) {
		if err := Set("ember-moved"); err != nil {
			t.Error(err)
		}
	})
	defer endFrom()
	if got := comm(t, from); got != "ember-moved" {
		t.Fatalf("Set named thread %d %q, want ember-moved", from, got)
	}
	to, endTo := offMain(t, func(int) {
		if err := Move(from, "ember-moved"); err != nil {
			t.Error(err)
		}
	})
	defer endTo()
	if got := comm(t, to); got != "ember-moved" {
		t.Errorf("the calling thread is %q after Move, want ember-moved", got)
	}
	if got := comm(t, from); got != proc {
		t.Errorf("thread %d, which bore the name, is %q after Move, want the process's %q", from, got, proc)
	}
}

// TestFollowMovesTheNameOnlyWhenTheThreadChanged: on the thread that bears
// the name, Follow changes nothing and returns it; on another, it moves the
// name there and returns the new thread.
func TestFollowMovesTheNameOnlyWhenTheThreadChanged(t *testing.T) {
	proc := comm(t, os.Getpid())
	var same int
	from, endFrom := offMain(t, func(tid int) {
		if err := Set("ember-follow"); err != nil {
			t.Error(err)
		}
		now, err := Follow(tid, "ember-other")
		if err != nil || now != tid {
			t.Errorf("Follow on the thread itself = %d, %v; want %d, nil", now, err, tid)
		}
		same = now
	})
	defer endFrom()
	if got := comm(t, same); got != "ember-follow" {
		t.Errorf("Follow on the thread itself renamed it %q", got)
	}
	var moved int
	to, endTo := offMain(t, func(int) {
		var err error
		if moved, err = Follow(from, "ember-follow"); err != nil {
			t.Error(err)
		}
	})
	defer endTo()
	if moved != to {
		t.Errorf("Follow from another thread returned %d, want the calling thread %d", moved, to)
	}
	if got := comm(t, to); got != "ember-follow" {
		t.Errorf("the calling thread is %q after Follow, want ember-follow", got)
	}
	if got := comm(t, from); got != proc {
		t.Errorf("thread %d is %q after Follow, want the process's %q", from, got, proc)
	}
}

// TestFollowKeepsBothNamesWhenHoldersSwapThreads: two goroutines holding
// the name on threads A and B that come back from their yields on each
// other's thread leave both threads named, whichever follows first.
func TestFollowKeepsBothNamesWhenHoldersSwapThreads(t *testing.T) {
	a, runA, endA := onThread(t)
	defer endA()
	b, runB, endB := onThread(t)
	defer endB()
	runA(func() { Hold("ember-swap") })
	runB(func() { Hold("ember-swap") })
	runB(func() { Follow(a, "ember-swap") }) // the goroutine of A, now on B
	runA(func() { Follow(b, "ember-swap") }) // the goroutine of B, now on A
	for _, tid := range []int{a, b} {
		if got := comm(t, tid); got != "ember-swap" {
			t.Errorf("thread %d is %q after the swap, want ember-swap", tid, got)
		}
	}
	runA(func() { Drop(a, "ember-swap") })
	runB(func() { Drop(b, "ember-swap") })
	holdersMu.Lock()
	defer holdersMu.Unlock()
	if holders[a] != 0 || holders[b] != 0 {
		t.Errorf("holders left after Drop: %d on A, %d on B", holders[a], holders[b])
	}
}

// onThread starts a goroutine locked to a thread other than the main one
// and returns the thread's id, a function that runs a function on that
// thread, and one that ends the goroutine and, with it, the thread.
func onThread(t *testing.T) (int, func(func()), func()) {
	t.Helper()
	for range 10 {
		work, done, ids := make(chan func()), make(chan struct{}), make(chan int)
		go func() {
			runtime.LockOSThread() // never undone: the thread ends with the goroutine
			ids <- unix.Gettid()
			for f := range work {
				f()
				done <- struct{}{}
			}
		}()
		if id := <-ids; id != os.Getpid() {
			run := func(f func()) { work <- f; <-done }
			return id, run, func() { close(work) }
		}
		close(work)
	}
	t.Fatal("no goroutine got a thread but the main one")
	return 0, nil, nil
}

// TestStraysLoseTheName: a thread that bears a held name for no holder —
// as one Go clones from a named thread does, inheriting its name — gets
// the process's name back when a holder of that name starts or ends, so
// a device's name does not outlive the device on Go's spare threads.
func TestStraysLoseTheName(t *testing.T) {
	proc := comm(t, os.Getpid())
	stray, runStray, endStray := onThread(t)
	defer endStray()
	runStray(func() {
		if err := Set("ember-stray"); err != nil { // named as if inherited: no Hold
			t.Error(err)
		}
	})
	holder, runHolder, endHolder := onThread(t)
	defer endHolder()
	runHolder(func() { Hold("ember-stray") })
	if got := comm(t, stray); got != proc {
		t.Errorf("the stray thread is %q after a holder started, want the process's %q", got, proc)
	}
	if got := comm(t, holder); got != "ember-stray" {
		t.Errorf("the holder's thread is %q, want ember-stray", got)
	}
	runStray(func() { Set("ember-stray") }) // inherited again, while the holder runs
	runHolder(func() { Drop(holder, "ember-stray") })
	for _, tid := range []int{stray, holder} {
		if got := comm(t, tid); got != proc {
			t.Errorf("thread %d is %q after the last holder dropped, want the process's %q", tid, got, proc)
		}
	}
}
