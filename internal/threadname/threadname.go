// Package threadname names the calling OS thread, so that ps -T, top -H,
// perf and the kernel's own reports tell ember's threads apart: a vCPU's
// (ember-vcpuN), a device's (ember-net).
package threadname

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"sync"

	"golang.org/x/sys/unix"
)

// Max is the longest thread name Linux keeps (TASK_COMM_LEN, 16, with its
// NUL); Set cuts a longer one.
const Max = 15

// Cut returns name as the kernel keeps it: its first Max bytes.
func Cut(name string) string {
	if len(name) > Max {
		return name[:Max]
	}
	return name
}

// Set names the calling thread, through its comm file in /proc (the same
// as PR_SET_NAME, without a pointer handed to the kernel). Call it from a
// goroutine locked to its thread for good (runtime.LockOSThread, undone
// only for a yield, after which Follow moves the name if the thread
// changed): the name stays with the thread, and Go ends a thread whose
// locked goroutine returns, so no other goroutine inherits the name. The
// process's main thread, which a locked goroutine may happen to run on, is
// left alone: its name is the process's, which ps shows, and Go never ends
// that thread. An error (no /proc) leaves the thread unnamed; a name is
// only cosmetic.
func Set(name string) error {
	tid := unix.Gettid()
	if tid == unix.Getpid() {
		return nil
	}
	comm := fmt.Sprintf("/proc/self/task/%d/comm", tid)
	if err := os.WriteFile(comm, []byte(Cut(name)), 0); err != nil {
		return fmt.Errorf("naming thread %d %q: %w", tid, name, err)
	}
	return nil
}

// Move gives name to the calling thread, which a goroutine locked to
// thread from for its name has come back on after a yield (a yield that
// unlocks it: sysmon.NewUnlockedPacer), and gives from the process's name
// back, so that only the goroutine's thread bears the name. The main
// thread is left alone, as Set leaves it.
func Move(from int, name string) error {
	if err := unname(from); err != nil {
		return err
	}
	return Set(name)
}

// unname gives thread tid the process's name back; the main thread, which
// bears it, is left alone.
func unname(tid int) error {
	if tid == unix.Getpid() {
		return nil
	}
	proc, err := os.ReadFile("/proc/self/comm")
	if err == nil {
		err = os.WriteFile(fmt.Sprintf("/proc/self/task/%d/comm", tid), bytes.TrimSpace(proc), 0)
	}
	if err != nil {
		return fmt.Errorf("giving thread %d back its name: %w", tid, err)
	}
	return nil
}

// unnameStrays gives the process's name back to every thread that bears
// name but holds it for no goroutine (Hold, Follow): a thread Go clones
// from a named one while its goroutine is unlocked (a yield) inherits the
// name, as clone(2) copies it, and Go keeps such threads in its pool, so
// without this a device's name would outlive the device on threads that
// never served it. It reads /proc/self/task, so it runs only where a
// holder starts or ends, never on a device's data path (a yield's Follow):
// a stray named while a device runs keeps the name until then. The
// caller holds holdersMu.
func unnameStrays(name string) {
	tasks, err := os.ReadDir("/proc/self/task")
	if err != nil {
		return
	}
	for _, task := range tasks {
		tid, err := strconv.Atoi(task.Name())
		if err != nil || holders[tid] > 0 {
			continue
		}
		comm, err := os.ReadFile(fmt.Sprintf("/proc/self/task/%d/comm", tid))
		if err == nil && string(bytes.TrimSpace(comm)) == Cut(name) {
			unname(tid) // a name is only cosmetic: a thread gone meanwhile is no matter
		}
	}
}

// holders counts, by thread, the goroutines that hold a name there
// (Hold, Follow). Two goroutines that swap threads in their yields each
// find the other on the thread they left: the name stays on it while a
// holder is there, so both threads keep it whichever moves first.
var (
	holdersMu sync.Mutex
	holders   = map[int]int{}
	heldName  = map[int]string{} // the name each thread in holders bears
)

// Holders counts the goroutines holding name (Hold, not yet Dropped): the
// threads that serve under it, whichever threads they run on now.
func Holders(name string) int {
	holdersMu.Lock()
	defer holdersMu.Unlock()
	n := 0
	for tid, c := range holders {
		if heldName[tid] == Cut(name) {
			n += c
		}
	}
	return n
}

// Hold names the calling thread (Set) for a goroutine that will keep the
// name through its yields (Follow), and returns the thread's id. Drop it
// when the goroutine ends.
func Hold(name string) (int, error) {
	holdersMu.Lock()
	defer holdersMu.Unlock()
	tid := unix.Gettid()
	holders[tid]++
	heldName[tid] = Cut(name)
	err := Set(name)
	unnameStrays(name)
	return tid, err
}

// Drop forgets a holder of name on thread tid whose goroutine ends (and
// its thread with it, unless it is the main thread), and takes name from
// every thread that bears it for no holder, tid's among them.
func Drop(tid int, name string) {
	holdersMu.Lock()
	defer holdersMu.Unlock()
	release(tid)
	unnameStrays(name)
}

// release takes one holder from tid and reports whether none is left.
// The caller holds holdersMu.
func release(tid int) bool {
	if holders[tid] <= 1 {
		delete(holders, tid)
		delete(heldName, tid)
		return true
	}
	holders[tid]--
	return false
}

// Follow keeps name on the thread that a goroutine holding it on thread
// tid runs on now, after a yield that unlocks it: if that is another
// thread, the name goes there (Set), and tid gets the process's name back
// (Move) unless another holder has come to run on it. It returns the
// calling thread's id, which bears the name from then on, even when the
// move failed.
func Follow(tid int, name string) (int, error) {
	now := unix.Gettid()
	if now == tid {
		return tid, nil
	}
	holdersMu.Lock()
	defer holdersMu.Unlock()
	holders[now]++
	heldName[now] = Cut(name)
	if !release(tid) {
		return now, Set(name)
	}
	return now, Move(tid, name)
}
