package console

import (
	"errors"
	"io"
	"log/slog"
	"os"
	"time"
)

// inputChunk is the most bytes one Read of Config.Input asks for.
const inputChunk = 4096

// maxEmptyReads is how many Reads in a row may return nothing and no error
// before the reader gives up on Input, as bufio does (io.ErrNoProgress).
const maxEmptyReads = 100

// inputReader is the goroutine that reads Config.Input for the life of a
// Device and hands what it reads, one chunk at a time, to whichever receive
// worker is running. It lives as long as the Device, not an activation:
// a Read cannot be abandoned, so a goroutine per activation would leave one
// behind, blocked in Read and eating input, at every reset.
type inputReader struct {
	r    io.Reader
	log  *slog.Logger
	data chan []byte   // unbuffered; closed when Input ends (EOF or an error)
	quit chan struct{} // closed by close
	done chan struct{} // closed when the goroutine returns
}

// startInput starts reading r.
func startInput(r io.Reader, log *slog.Logger) *inputReader {
	in := &inputReader{r: r, log: log, data: make(chan []byte), quit: make(chan struct{}), done: make(chan struct{})}
	go in.run()
	return in
}

// run reads until Input ends or close is called. A chunk it read waits for a
// receive worker to take it: the next Read comes only after that, so Input
// is read no faster than the guest takes it.
func (in *inputReader) run() {
	defer close(in.done)
	defer close(in.data)
	empty := 0
	for {
		buf := make([]byte, inputChunk)
		n, err := in.r.Read(buf)
		if n > 0 && !in.hand(buf[:n]) {
			return
		}
		if n > 0 || err != nil {
			empty = 0
		} else if empty++; empty == maxEmptyReads {
			err = io.ErrNoProgress
		}
		if err != nil {
			in.stopped(err)
			return
		}
		select {
		case <-in.quit:
			return
		default:
		}
	}
}

// hand gives b to the receive worker, or returns false if close came first.
func (in *inputReader) hand(b []byte) bool {
	select {
	case in.data <- b:
		return true
	case <-in.quit:
		return false
	}
}

// stopped logs why Input ended, unless it is EOF or close's own deadline.
func (in *inputReader) stopped(err error) {
	select {
	case <-in.quit:
		return
	default:
	}
	if errors.Is(err, io.EOF) {
		in.log.Debug("virtio-console: input ended")
		return
	}
	in.log.Warn("virtio-console: reading input failed; the guest gets no more", "err", err)
}

// deadliner is an Input whose Read close can end: *os.File (on a pipe or a
// socket; not a terminal in blocking mode), net.Conn.
type deadliner interface {
	SetReadDeadline(t time.Time) error
}

// close stops the goroutine: it takes no more input and returns as soon as
// it is not inside Read. If Input takes a read deadline, close sets one in
// the past, which ends a Read in progress, and waits for the goroutine.
func (in *inputReader) close() {
	close(in.quit)
	dl, ok := in.r.(deadliner)
	if !ok {
		return
	}
	if err := dl.SetReadDeadline(time.Now()); err != nil {
		if !errors.Is(err, os.ErrNoDeadline) {
			in.log.Debug("virtio-console: cannot interrupt the input's Read", "err", err)
		}
		return
	}
	<-in.done
}
