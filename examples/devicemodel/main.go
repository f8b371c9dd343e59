// Command devicemodel is a small out-of-process device model for ember: it
// connects to a VM's I/O request socket (docs/ioreq-protocol.md), claims a
// port range and an MMIO range, and serves them as a register file. A read of
// a register never written returns a recognisable pattern (0xc0de0000 | port
// for ports, 0xfeed0000_00000000 | offset for MMIO); a write stores the value
// and is logged on stdout as
//
//	write PORTIO 0x500 size 4 value 0x12345678
//
// The lines are written out within flushDelay, or when 4 KiB of them have
// gathered, not one write(2) per access: a device model that made a system
// call for each access would spend more on its log than on the access.
//
// With -quiet the writes are stored but not logged: what is left is the
// hand-off itself and a map lookup, the least a device does (ember bench's
// external rows measure that, next to an in-process device that does nothing).
//
// With -stall, a read of that port is never answered, to show what ember
// does with a device model that hangs (or is killed) mid-request.
//
//	devicemodel -socket /run/ember/vm1.ioreq -pio 0x500-0x50f -mmio 0xd0000000-0xd0000fff
package main

import (
	"bufio"
	"flag"
	"fmt"
	"log"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"ember/acrn/iorequest"
	"ember/devicemodel"
	"ember/ioreq"
)

func main() {
	socket := flag.String("socket", "", "ember's I/O request socket")
	name := flag.String("name", "devicemodel", "client name")
	pio := flag.String("pio", "0x500-0x50f", "port range to claim, start-end inclusive (empty: none)")
	mmio := flag.String("mmio", "0xd0000000-0xd0000fff", "MMIO range to claim, start-end inclusive (empty: none)")
	stall := flag.Int("stall", -1, "a port whose reads are never answered")
	futex := flag.Bool("futex", true, "use the futex hand-off where ember offers it (false: the eventfds)")
	poll := flag.Duration("poll", 0, "shortest time to look at the request buffer before sleeping (0: the default; negative: never)")
	quiet := flag.Bool("quiet", false, "do not log each write")
	flag.Parse()
	log.SetFlags(0)
	log.SetPrefix("devicemodel: ")

	c, err := devicemodel.Dial(*socket, *name)
	if err != nil {
		log.Fatal(err)
	}
	c.SetPollWindow(*poll)
	c.SetFutexHandoff(*futex)
	regs := newRegisterFile(os.Stdout, *stall)
	regs.quiet = *quiet
	for _, claim := range []struct {
		t iorequest.ReqType
		s string
	}{{iorequest.ReqPortIO, *pio}, {iorequest.ReqMMIO, *mmio}} {
		if claim.s == "" {
			continue
		}
		r, err := parseRange(claim.t, claim.s)
		if err != nil {
			log.Fatal(err)
		}
		if err := c.Claim(r); err != nil {
			log.Fatalf("claim %v: %v", r, err)
		}
		regs.base[claim.t] = r.Start
	}
	if err := c.Attach(); err != nil {
		log.Fatal(err)
	}
	regs.printf("ready client %d\n", c.Info().ClientID)
	err = c.Serve(regs)
	regs.flush() // the lines of the last accesses, before the process goes
	if err != nil {
		log.Fatal(err)
	}
}

func parseRange(t iorequest.ReqType, s string) (ioreq.Range, error) {
	a, b, ok := strings.Cut(s, "-")
	start, err1 := strconv.ParseUint(a, 0, 64)
	end, err2 := strconv.ParseUint(b, 0, 64)
	if !ok || err1 != nil || err2 != nil {
		return ioreq.Range{}, fmt.Errorf("bad range %q, want start-end", s)
	}
	return ioreq.Range{Type: t, Start: start, End: end}, nil
}

// flushDelay bounds how long a line of the log waits in the buffer.
const flushDelay = 10 * time.Millisecond

// registerFile serves reads from what was written, or a pattern.
type registerFile struct {
	mu       sync.Mutex
	out      *bufio.Writer
	flushing bool                 // a flush is due within flushDelay
	regs     map[[2]uint64]uint64 // {type, offset} -> value
	base     map[iorequest.ReqType]uint64
	stall    int
	quiet    bool // no line per write
}

func newRegisterFile(out *os.File, stall int) *registerFile {
	return &registerFile{out: bufio.NewWriter(out), regs: map[[2]uint64]uint64{}, base: map[iorequest.ReqType]uint64{}, stall: stall}
}

// printf adds a line to the log, which is written out within flushDelay.
func (f *registerFile) printf(format string, args ...any) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fmt.Fprintf(f.out, format, args...)
	if !f.flushing {
		f.flushing = true
		time.AfterFunc(flushDelay, f.flush)
	}
}

// flush writes the log out.
func (f *registerFile) flush() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.out.Flush()
	f.flushing = false
}

// HandleIORequest is the device: ember's client library calls it for each
// request in a claimed range.
func (f *registerFile) HandleIORequest(req *iorequest.IORequest) {
	addr, size := ioreq.Target(req)
	key := [2]uint64{uint64(req.Type), addr - f.base[req.Type]}
	if ioreq.Dir(req) == iorequest.DirWrite {
		f.mu.Lock()
		f.regs[key] = ioreq.Value(req)
		f.mu.Unlock()
		if !f.quiet {
			f.printf("write %v %#x size %d value %#x\n", req.Type, addr, size, ioreq.Value(req))
		}
		return
	}
	if req.Type == iorequest.ReqPortIO && int(addr) == f.stall {
		f.printf("stall %v %#x\n", req.Type, addr)
		select {} // never answer
	}
	f.mu.Lock()
	v, ok := f.regs[key]
	f.mu.Unlock()
	if !ok {
		if req.Type == iorequest.ReqPortIO {
			v = 0xc0de0000 | addr
		} else {
			v = 0xfeed0000_00000000 | key[1]
		}
	}
	ioreq.SetValue(req, v)
}
