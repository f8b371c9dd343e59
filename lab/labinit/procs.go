package main

import (
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// Looking at a step's processes from /proc: which are still there, what
// each thread waits on, and (for a step that will not end) the kernel's
// stack of each, so a hang in the lab says where it is.

// proc is one process of a step's session.
type proc struct {
	pid     int
	comm    string
	state   string // the leader's state letter: R, S, D, T, Z, ...
	threads []thread
}

// thread is one of a proc's tasks.
type thread struct {
	tid   int
	state string
	wchan string // the kernel function it sleeps in, or "" when running
}

// statFields parses a /proc/PID/stat line into comm and the fields after
// it (state first). The command name is between the first "(" and the
// last ")", for it may hold either, and spaces.
func statFields(line string) (comm string, rest []string, ok bool) {
	open := strings.IndexByte(line, '(')
	shut := strings.LastIndexByte(line, ')')
	if open < 0 || shut < open {
		return "", nil, false
	}
	rest = strings.Fields(line[shut+1:])
	if len(rest) < 4 {
		return "", nil, false
	}
	return line[open+1 : shut], rest, true
}

// sessionProcs lists the processes whose session is sid (a step's command
// runs as a session leader, so this is it and everything it started),
// with their threads, in pid order. Processes that vanish while being
// read are left out.
func sessionProcs(sid int) []proc {
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	var ps []proc
	for _, d := range dirs {
		pid, comm, f, ok := readStat(d)
		if !ok {
			continue
		}
		if s, err := strconv.Atoi(f[3]); err != nil || s != sid {
			continue
		}
		ps = append(ps, proc{pid: pid, comm: comm, state: f[0], threads: threads(d)})
	}
	slices.SortFunc(ps, func(a, b proc) int { return a.pid - b.pid })
	return ps
}

// threads reads the tasks of the process at /proc/PID.
func threads(dir string) []thread {
	tasks, _ := filepath.Glob(filepath.Join(dir, "task", "[0-9]*"))
	var ts []thread
	for _, t := range tasks {
		tid, _, f, ok := readStat(t)
		if !ok {
			continue
		}
		w, _ := os.ReadFile(filepath.Join(t, "wchan"))
		wchan := string(w)
		if wchan == "0" {
			wchan = ""
		}
		ts = append(ts, thread{tid: tid, state: f[0], wchan: wchan})
	}
	slices.SortFunc(ts, func(a, b thread) int { return a.tid - b.tid })
	return ts
}

// readStat reads the stat file of a process or task directory of /proc
// (named for its id); ok is false when it has gone or cannot be parsed.
func readStat(dir string) (id int, comm string, fields []string, ok bool) {
	b, err := os.ReadFile(filepath.Join(dir, "stat"))
	if err != nil {
		return 0, "", nil, false
	}
	comm, fields, ok = statFields(string(b))
	id, err = strconv.Atoi(filepath.Base(dir))
	return id, comm, fields, ok && err == nil
}

// live is ps without the zombies: a process that has exited and waits to
// be reaped (every task of it a zombie) holds nothing. A zombie leader
// whose other threads run on is kept.
func live(ps []proc) []proc {
	return slices.DeleteFunc(slices.Clone(ps), func(p proc) bool {
		return p.state == "Z" && !slices.ContainsFunc(p.threads, func(t thread) bool { return t.state != "Z" })
	})
}

// summary is one line for p: its state and its threads counted by state
// and the kernel function they wait in, most common first.
func (p proc) summary() string {
	count := map[string]int{}
	for _, t := range p.threads {
		k := t.state
		if t.wchan != "" {
			k += " " + t.wchan
		}
		count[k]++
	}
	keys := slices.Collect(maps.Keys(count))
	slices.SortFunc(keys, func(a, b string) int {
		if d := count[b] - count[a]; d != 0 {
			return d
		}
		return strings.Compare(a, b)
	})
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%d× %s", count[k], k)
	}
	return fmt.Sprintf("pid %d %s (%s), %d threads: %s", p.pid, p.comm, p.state, len(p.threads), strings.Join(parts, ", "))
}

// describe writes a line for each of ps, and with stacks each thread's
// kernel stack as well (/proc/PID/task/TID/stack, readable by root).
func describe(w io.Writer, ps []proc, stacks bool) {
	for _, p := range ps {
		fmt.Fprintf(w, "labinit:   %s\n", p.summary())
		if !stacks {
			continue
		}
		for _, t := range p.threads {
			b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/stack", p.pid, t.tid))
			fmt.Fprintf(w, "labinit:     tid %d (%s %s):\n", t.tid, t.state, t.wchan)
			for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
				if l != "" {
					fmt.Fprintf(w, "labinit:       %s\n", l)
				}
			}
		}
	}
}

// killAll sends SIGKILL to each of ps.
func killAll(ps []proc) {
	for _, p := range ps {
		unix.Kill(p.pid, unix.SIGKILL)
	}
}
