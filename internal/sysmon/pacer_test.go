package sysmon

import (
	"fmt"
	"os"
	"runtime"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"ember/internal/threadstat"
)

// TestPacerYieldsOnlyWhenDue: the interval is honoured, a TSC that went
// backwards counts as due rather than as never, and no interval means no
// yield.
func TestPacerYieldsOnlyWhenDue(t *testing.T) {
	now := Cputicks()
	tests := []struct {
		name  string
		every int64
		last  int64
		want  bool
	}{
		{"not due", 1 << 62, now, false},
		{"due", 1, now - 1000, true},
		{"TSC went backwards", 1 << 62, now + 1<<40, true},
		{"no interval", 0, now - 1<<40, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := Pacer{every: tc.every, last: tc.last}
			now := Cputicks()
			after, yielded := p.Maybe(now)
			if yielded != tc.want {
				t.Errorf("yielded = %v, want %v", yielded, tc.want)
			}
			if moved := p.last != tc.last; moved != tc.want {
				t.Errorf("interval restarted = %v, want %v", moved, tc.want)
			}
			// The loop times its next step from the returned TSC: the
			// yield's own time is not part of it.
			switch {
			case !yielded && after != now:
				t.Errorf("no yield, but the loop's clock moved from %d to %d", now, after)
			case yielded && after != p.last:
				t.Errorf("yielded, but the loop's clock is %d, not the TSC read after the yield (%d)", after, p.last)
			}
		})
	}
}

// TestNewPacerInterval: the interval is EveryMs at the rate given; a rate
// not known makes a Pacer that never yields.
func TestNewPacerInterval(t *testing.T) {
	for _, tc := range []struct {
		rate, want int64
	}{
		{2_000_000, 2_000_000 * EveryMs},
		{0, 0},
		{-1, 0},
	} {
		if got := NewPacer(tc.rate).every; got != tc.want {
			t.Errorf("NewPacer(%d).every = %d, want %d", tc.rate, got, tc.want)
		}
	}
}

// TestTicksPerMsMatchesTheClock: the measured rate counts the ticks of a
// sleep measured again now, within 5 % (a sleep of 50 ms, long beside
// both clocks' reads).
func TestTicksPerMsMatchesTheClock(t *testing.T) {
	rate := TicksPerMs()
	if rate <= 0 {
		t.Fatalf("TicksPerMs() = %d", rate)
	}
	t0, c0 := time.Now(), Cputicks()
	time.Sleep(50 * time.Millisecond)
	ticks, elapsed := Cputicks()-c0, time.Since(t0)
	want := float64(ticks) / (float64(elapsed) / float64(time.Millisecond))
	if r := float64(rate) / want; r < 0.95 || r > 1.05 {
		t.Errorf("TicksPerMs() = %d, but the TSC ran at %.0f a millisecond over %v", rate, want, elapsed)
	}
	if again := TicksPerMs(); again != rate {
		t.Errorf("TicksPerMs() changed from %d to %d: it is measured once", rate, again)
	}
}

// switches reads the context switches of every thread of the process.
func switches(t *testing.T) map[int]uint64 {
	t.Helper()
	threads, err := threadstat.ReadProcess("/proc", os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	m := make(map[int]uint64, len(threads))
	for id, th := range threads {
		m[id] = th.Switches
	}
	return m
}

// othersSince is how often the threads but tid switched since before, a
// reading of switches: threads that came or went in between left out.
func othersSince(t *testing.T, before map[int]uint64, tid int) uint64 {
	t.Helper()
	var n uint64
	for id, now := range switches(t) {
		if then, ok := before[id]; ok && id != tid {
			n += now - then
		}
	}
	return n
}

// TestUnlockedYieldWakesNoThread: a goroutine locked to its thread that
// yields through an unlocked Pacer wakes no other thread of the process,
// where a locked Pacer's Gosched hands the thread's P to another thread
// and back, waking spinning threads as it goes. The goroutine is locked to
// its thread again after the yields: when it returns, Go ends the thread,
// as it ends only a locked goroutine's.
func TestUnlockedYieldWakesNoThread(t *testing.T) {
	const yields = 2000
	type result struct {
		others, moves uint64
		tid           int // the thread the goroutine ended on
	}
	run := func(p Pacer) result {
		done := make(chan result)
		go func() {
			runtime.LockOSThread() // not undone: the thread ends with the goroutine
			var r result
			r.tid = unix.Gettid()
			before := switches(t)
			for range yields {
				p.last = Cputicks() - p.every // due
				p.Maybe(Cputicks())
				if now := unix.Gettid(); now != r.tid {
					r.moves, r.tid = r.moves+1, now
				}
			}
			r.others = othersSince(t, before, r.tid)
			done <- r
		}()
		return <-done
	}
	locked := run(NewPacer(1))
	unlocked := run(NewUnlockedPacer(1))
	t.Logf("%d yields: other threads switched %d times under Gosched, %d under the unlocked yield (which moved the goroutine %d times)",
		yields, locked.others, unlocked.others, unlocked.moves)
	if unlocked.others > yields/10 {
		t.Errorf("other threads switched %d times in %d unlocked yields: the yield wakes them", unlocked.others, yields)
	}
	if unlocked.tid == os.Getpid() {
		return // Go never ends the main thread: nothing to see
	}
	task := fmt.Sprintf("/proc/self/task/%d", unlocked.tid)
	for deadline := time.Now().Add(2 * time.Second); ; time.Sleep(time.Millisecond) {
		if _, err := os.Stat(task); os.IsNotExist(err) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("thread %d outlived its goroutine: the goroutine was not locked to it after the unlocked yields", unlocked.tid)
		}
	}
}
