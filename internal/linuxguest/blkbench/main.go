// Command blkbench is the guest's side of the lab's virtio benchmark
// (go run ./lab virtio): built static and put in the test initramfs as
// /bin/blkbench, it measures the first virtio disk from inside the guest,
// bypassing the guest's page cache (O_DIRECT), the same way under ember and
// under QEMU:
//
//	ember-bench: seq-read MB/s 812.3     1 MiB reads over the whole disk
//	ember-bench: rand-read IOPS 15234    4 KiB reads at random offsets, 16 in flight, for 3 s
//	ember-bench: seq-write MB/s 640.1    1 MiB writes over the whole disk, then fdatasync
//
// After each sequential measure a line says how many requests the guest's
// block layer made of a 1 MiB read or write (reads or writes completed,
// from /sys/block/vda/stat), which decides how a device sees them — one
// request, or several in flight together:
//
//	ember-bench: seq-read requests/MiB 1.00   (as the lab reads it: one request a MiB)
//
// and two how long its 1 MiB reads or writes took, the median and the
// slowest, in milliseconds: whether a slow pass was slow throughout or
// stalled once (the fdatasync after the writes is not among them):
//
//	ember-bench: seq-read median ms 9.71
//	ember-bench: seq-read slowest ms 48.2
//
// A line "ember-bench: error ..." says why a measure could not be made.
//
// Given a file's path (blkbench FILE), it measures that file the same way
// through the page cache instead, without O_DIRECT: run on the lab itself
// on the image the VMMs serve, it makes the copies a VMM's device makes
// for the guest and nothing else, the limit of the guest's figures (lab
// virtio -- --limit).
package main

import (
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

const (
	disk     = "/dev/vda"
	seqBlock = 1 << 20
	randSize = 4096
	depth    = 16
	randTime = 3 * time.Second
)

func main() {
	path, flags := disk, os.O_RDWR|unix.O_DIRECT
	if len(os.Args) > 1 {
		path, flags = os.Args[1], os.O_RDWR
	}
	f, err := os.OpenFile(path, flags, 0)
	if err != nil {
		fmt.Printf("ember-bench: error %v\n", err)
		return
	}
	defer f.Close()
	size, err := f.Seek(0, 2)
	if err != nil || size < seqBlock {
		fmt.Printf("ember-bench: error size %d: %v\n", size, err)
		return
	}
	before := diskStat()
	if mbs, took, err := sequential(f, size, false); err != nil {
		fmt.Printf("ember-bench: error seq-read: %v\n", err)
	} else {
		fmt.Printf("ember-bench: seq-read MB/s %.1f\n", mbs)
		printRequests("seq-read", before, diskStat(), statReads, size)
		printLatency("seq-read", took)
	}
	if iops, err := random(f, size); err != nil {
		fmt.Printf("ember-bench: error rand-read: %v\n", err)
	} else {
		fmt.Printf("ember-bench: rand-read IOPS %.0f\n", iops)
	}
	before = diskStat()
	if mbs, took, err := sequential(f, size, true); err != nil {
		fmt.Printf("ember-bench: error seq-write: %v\n", err)
	} else {
		fmt.Printf("ember-bench: seq-write MB/s %.1f\n", mbs)
		printRequests("seq-write", before, diskStat(), statWrites, size)
		printLatency("seq-write", took)
	}
}

// Fields of /sys/block/DEV/stat (Documentation/block/stat.rst).
const (
	statReads  = 0 // read I/Os completed
	statWrites = 4 // write I/Os completed
)

// diskStat returns the fields of the disk's /sys/block/vda/stat, or nil.
func diskStat() []uint64 {
	b, err := os.ReadFile("/sys/block/vda/stat")
	if err != nil {
		return nil
	}
	var v []uint64
	for _, f := range strings.Fields(string(b)) {
		n, err := strconv.ParseUint(f, 10, 64)
		if err != nil {
			return nil
		}
		v = append(v, n)
	}
	return v
}

// printRequests prints how many requests of field's kind each MiB of a
// size-byte sequential pass took, where both stats were read.
func printRequests(name string, before, after []uint64, field int, size int64) {
	if len(before) <= field || len(after) <= field {
		return
	}
	mib := float64(size / seqBlock)
	fmt.Printf("ember-bench: %s requests/MiB %.2f\n", name, float64(after[field]-before[field])/mib)
}

// printLatency prints the median and the slowest of a sequential pass's
// block times, in milliseconds.
func printLatency(name string, took []time.Duration) {
	if len(took) == 0 {
		return
	}
	slices.Sort(took)
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	fmt.Printf("ember-bench: %s median ms %.2f\n", name, ms(took[len(took)/2]))
	fmt.Printf("ember-bench: %s slowest ms %.1f\n", name, ms(took[len(took)-1]))
}

// aligned returns n bytes aligned for O_DIRECT.
func aligned(n int) []byte {
	b := make([]byte, n+4096)
	off := int(4096 - uintptr(unsafe.Pointer(&b[0]))%4096)
	return b[off : off+n]
}

// sequential reads or writes the whole disk in 1 MiB blocks and returns MB/s
// and how long each block took.
func sequential(f *os.File, size int64, write bool) (float64, []time.Duration, error) {
	buf := aligned(seqBlock)
	for i := range buf {
		buf[i] = byte(i)
	}
	took := make([]time.Duration, 0, size/seqBlock)
	start := time.Now()
	var done int64
	for off := int64(0); off+seqBlock <= size; off += seqBlock {
		var err error
		t := time.Now()
		if write {
			_, err = f.WriteAt(buf, off)
		} else {
			_, err = f.ReadAt(buf, off)
		}
		if err != nil {
			return 0, nil, err
		}
		took = append(took, time.Since(t))
		done += seqBlock
	}
	if write {
		if err := unix.Fdatasync(int(f.Fd())); err != nil {
			return 0, nil, err
		}
	}
	return float64(done) / time.Since(start).Seconds() / 1e6, took, nil
}

// random reads 4 KiB blocks at random offsets with depth readers for
// randTime and returns reads per second.
func random(f *os.File, size int64) (float64, error) {
	var n atomic.Int64
	var firstErr atomic.Value
	stop := time.Now().Add(randTime)
	blocks := size / randSize
	var wg sync.WaitGroup
	start := time.Now()
	for g := range depth {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := aligned(randSize)
			r := rand.New(rand.NewPCG(uint64(g), 1))
			for time.Now().Before(stop) {
				if _, err := f.ReadAt(buf, r.Int64N(blocks)*randSize); err != nil {
					firstErr.CompareAndSwap(nil, err)
					return
				}
				n.Add(1)
			}
		}()
	}
	wg.Wait()
	if err, _ := firstErr.Load().(error); err != nil {
		return 0, err
	}
	return float64(n.Load()) / time.Since(start).Seconds(), nil
}
