package devicemodel

import (
	"encoding/binary"
	"os"
	"testing"

	"golang.org/x/sys/unix"
)

type eventPair struct {
	fd int
	r  *os.File
}

func newEventPair(tb testing.TB) *eventPair {
	fd, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		tb.Fatal(err)
	}
	f := os.NewFile(uintptr(fd), "eventfd")
	tb.Cleanup(func() { f.Close() })
	return &eventPair{fd, f}
}

func (e *eventPair) signal() {
	var one [8]byte
	binary.LittleEndian.PutUint64(one[:], 1)
	unix.Write(e.fd, one[:])
}
