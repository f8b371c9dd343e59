// Package cli holds what ember's commands (cmd/ember, lab) share at their
// edge with the operating system: how an error becomes an exit status.
package cli

import (
	"errors"
	"fmt"
	"os"
)

// Status is an error that carries the process's exit status (a guest's, a
// test run's) and has nothing more to print.
type Status interface {
	error
	ExitStatus() int
}

// Exit ends the process for err: status 0 for nil, the carried status for a
// Status, otherwise 1 after printing "prog: err" to standard error.
func Exit(prog string, err error) {
	var s Status
	switch {
	case err == nil:
		os.Exit(0)
	case errors.As(err, &s):
		os.Exit(s.ExitStatus())
	default:
		fmt.Fprintf(os.Stderr, "%s: %v\n", prog, err)
		os.Exit(1)
	}
}

// Code is a Status that is only a status: a command returns Code(n) to end
// the process with n and print nothing more.
type Code int

func (c Code) Error() string { return fmt.Sprintf("exit status %d", int(c)) }

// ExitStatus makes Code a Status.
func (c Code) ExitStatus() int { return int(c) }
