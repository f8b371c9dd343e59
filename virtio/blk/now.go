package blk

import (
	"errors"
	"sync/atomic"

	"golang.org/x/sys/unix"

	"ember/virtio"
)

// Reads served without waiting.
//
// The disk's thread serves a request where it takes it, unless the
// request may wait for the host's disk: then it hands it to a goroutine,
// so the requests behind it are not held up (queue.go). For a read it
// finds that out by trying: a read of at most maxNowLen bytes (maxAloneLen
// with no request behind it) is made from the page cache alone (preadv2 with
// RWF_NOWAIT), which answers EAGAIN once it would wait; where the image's
// file system keeps its files in memory (tmpfs and ramfs, which refuse
// RWF_NOWAIT) an ordinary read cannot wait for a device and is made
// outright (a page of a tmpfs the host swapped out is the exception, read
// while the thread waits). On a file system that refuses RWF_NOWAIT and is
// not memory (an overlay, a network file system), and with cache=none,
// every read and write may wait.

// maxNowLen is the longest read or write the disk's thread serves itself
// with other requests behind it: a longer one takes long enough to copy
// that the next request should not wait behind it (1 MiB sequential reads
// all served by one goroutine lost a tenth to a fifth in the lab, and 1 MiB
// writes served so half, in the one round measured).
const maxNowLen = 64 << 10

// maxAloneLen is the longest the thread serves itself when no request is
// behind the one it holds (a guest reading or writing one request at a
// time, as dd does): no one waits for its copy but a request the driver
// adds meanwhile (on this queue or another of the disk's, which the same
// thread serves), and handing it on would cost a goroutine's wake-up (on
// the build machine of 2026-12-07, a 1 MiB read one at a time through the
// kick and interrupt eventfds took 105–114 µs handed on, 88 µs served so,
// pread 39 µs). A Linux guest's requests are at most 1 MiB unless it
// raised max_sectors_kb.
const maxAloneLen = 1 << 20

// nowMode is how a disk reads without waiting, if it can.
type nowMode int32

const (
	nowNever  nowMode = iota // cache=none, or the file system refused RWF_NOWAIT: everything may wait
	nowNoWait                // a read tries preadv2 with RWF_NOWAIT; writes may wait
	nowMemory                // the file system is memory (tmpfs, ramfs): nothing waits for a device
)

// Magic numbers of statfs(2)'s f_type for the file systems that keep
// files in memory.
const (
	tmpfsMagic = 0x01021994
	ramfsMagic = 0x858458f6
)

// nowModeOf is how reads of the image open as fd can be served without
// waiting.
func nowModeOf(fd int, direct bool) nowMode {
	if direct {
		return nowNever
	}
	var st unix.Statfs_t
	if err := unix.Fstatfs(fd, &st); err == nil && (st.Type == tmpfsMagic || st.Type == ramfsMagic) {
		return nowMemory
	}
	return nowNoWait
}

// nowState is a disk's nowMode, which it lowers to nowNever the first time
// the file system refuses RWF_NOWAIT; the thread and goroutines read it.
type nowState struct{ mode atomic.Int32 }

func (s *nowState) get() nowMode  { return nowMode(s.mode.Load()) }
func (s *nowState) set(m nowMode) { s.mode.Store(int32(m)) }

// readNow fills bufs from the image at sector if that cannot wait for the
// host's disk and is at most limit bytes, and reports whether it did; a
// read outside the disk it answers with read's error, which makes no I/O.
// It leaves a read it does not serve (too long, not all in the page cache,
// or on a disk that cannot tell) to read, with nothing written to bufs the
// driver relies on.
func (d *Disk) readNow(bufs [][]byte, sector, limit uint64) (uint64, byte, bool) {
	mode := d.now.get()
	n := virtio.Len(bufs)
	if mode == nowNever || n > limit {
		return 0, 0, false
	}
	off, ok := d.span(sector, n)
	if !ok {
		n, st := d.read(bufs, sector) // refused without I/O: nothing to wait for
		return n, st, true
	}
	op := opReadNow
	if mode == nowMemory {
		op = opRead
	}
	got, err := d.xfer(bufs, off, op)
	if err == nil && uint64(got) == n {
		return n, statusOK, true
	}
	if errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.EINVAL) {
		d.now.set(nowNever)
		d.log.Info("virtio-blk: the image's file system cannot read without waiting (RWF_NOWAIT); every read may wait", "err", err)
	}
	return 0, 0, false
}
