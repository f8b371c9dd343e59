package bench

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// StartTimes is one process's start latency: from just before fork/exec to
// the first byte of guest console output on its stdout, and to its exit.
type StartTimes struct {
	FirstByte, Exit time.Duration
	MaxRSS          int64 // ru_maxrss of the child, bytes
}

// MeasureStart runs cmd (whose stdout must be unset) and times it. okStatus
// is the exit status that means the guest ended as it should.
func MeasureStart(cmd *exec.Cmd, okStatus int) (StartTimes, error) {
	out, err := cmd.StdoutPipe()
	if err != nil {
		return StartTimes{}, err
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return StartTimes{}, err
	}
	var st StartTimes
	var b [1]byte
	if n, _ := out.Read(b[:]); n == 1 {
		st.FirstByte = time.Since(start)
	}
	io.Copy(io.Discard, out)
	err = cmd.Wait()
	st.Exit = time.Since(start)
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		st.MaxRSS = ru.Maxrss << 10
	}
	if code := cmd.ProcessState.ExitCode(); code != okStatus {
		return st, fmt.Errorf("%s: %v (want status %d)\n%s", cmd.Path, err, okStatus, stderr.Bytes())
	}
	if st.FirstByte == 0 {
		return st, fmt.Errorf("%s: no console output", cmd.Path)
	}
	return st, nil
}

// MemUse is a VMM process's memory while its guest is alive.
type MemUse struct {
	PeakRSS  int64 // VmHWM: the process's peak resident set
	GuestRSS int64 // resident pages of the guest-RAM mapping: what the guest (and loader) touched
}

// Overhead is the VMM's own memory: peak RSS minus guest memory touched.
func (m MemUse) Overhead() int64 { return m.PeakRSS - m.GuestRSS }

// MeasureMemory starts cmd, whose guest prints a line and then halts for
// ever, waits for that line, reads the process's peak RSS and the resident
// size of its guest-RAM mapping (the anonymous mapping of guestSize bytes, to
// 2 MiB of slack for alignment), then kills it.
func MeasureMemory(cmd *exec.Cmd, guestSize int64) (MemUse, error) {
	out, err := cmd.StdoutPipe()
	if err != nil {
		return MemUse{}, err
	}
	if err := cmd.Start(); err != nil {
		return MemUse{}, err
	}
	defer func() {
		cmd.Process.Kill()
		cmd.Wait()
	}()
	line := make(chan error, 1)
	go func() {
		_, err := bufio.NewReader(out).ReadString('\n')
		line <- err
	}()
	select {
	case err := <-line:
		if err != nil {
			return MemUse{}, fmt.Errorf("%s: no console line: %w", cmd.Path, err)
		}
	case <-time.After(30 * time.Second):
		return MemUse{}, fmt.Errorf("%s: no console line in 30 s", cmd.Path)
	}
	time.Sleep(200 * time.Millisecond) // let the VMM finish whatever follows the first line
	pid := cmd.Process.Pid
	peak, err := statusField(pid, "VmHWM:")
	if err != nil {
		return MemUse{}, err
	}
	guestRSS, err := mappingRSS(pid, guestSize)
	if err != nil {
		return MemUse{}, err
	}
	return MemUse{PeakRSS: peak, GuestRSS: guestRSS}, nil
}

// statusField reads a "kB" field of /proc/pid/status, in bytes.
func statusField(pid int, field string) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == field {
			v, err := strconv.ParseInt(f[1], 10, 64)
			return v << 10, err
		}
	}
	return 0, fmt.Errorf("/proc/%d/status has no %s", pid, field)
}

// mappingRSS finds the mapping of guest RAM in /proc/pid/smaps — the largest
// mapping between size and size+2 MiB — and returns its Rss in bytes.
func mappingRSS(pid int, size int64) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/smaps", pid))
	if err != nil {
		return 0, err
	}
	best, bestRSS := int64(-1), int64(0)
	var cur int64 = -1
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Fields(l)
		if len(f) == 0 {
			continue
		}
		if lo, hi, ok := strings.Cut(f[0], "-"); ok && len(f) >= 5 {
			a, err1 := strconv.ParseUint(lo, 16, 64)
			z, err2 := strconv.ParseUint(hi, 16, 64)
			cur = -1
			if err1 == nil && err2 == nil {
				if n := int64(z - a); n >= size && n <= size+2<<20 {
					cur = n
				}
			}
			continue
		}
		if f[0] == "Rss:" && cur > best && len(f) >= 2 {
			v, _ := strconv.ParseInt(f[1], 10, 64)
			best, bestRSS = cur, v<<10
		}
	}
	if best < 0 {
		return 0, fmt.Errorf("/proc/%d/smaps: no mapping of about %d bytes (guest RAM)", pid, size)
	}
	return bestRSS, nil
}

// withContext binds a command to ctx the way exec.CommandContext does.
func withContext(ctx context.Context, name string, args ...string) *exec.Cmd {
	return exec.CommandContext(ctx, name, args...)
}
