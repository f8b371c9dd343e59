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
// A line "ember-bench: error ..." says why a measure could not be made.
package main

import (
	"fmt"
	"math/rand/v2"
	"os"
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
	f, err := os.OpenFile(disk, os.O_RDWR|unix.O_DIRECT, 0)
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
	if mbs, err := sequential(f, size, false); err != nil {
		fmt.Printf("ember-bench: error seq-read: %v\n", err)
	} else {
		fmt.Printf("ember-bench: seq-read MB/s %.1f\n", mbs)
	}
	if iops, err := random(f, size); err != nil {
		fmt.Printf("ember-bench: error rand-read: %v\n", err)
	} else {
		fmt.Printf("ember-bench: rand-read IOPS %.0f\n", iops)
	}
	if mbs, err := sequential(f, size, true); err != nil {
		fmt.Printf("ember-bench: error seq-write: %v\n", err)
	} else {
		fmt.Printf("ember-bench: seq-write MB/s %.1f\n", mbs)
	}
}

// aligned returns n bytes aligned for O_DIRECT.
func aligned(n int) []byte {
	b := make([]byte, n+4096)
	off := int(4096 - uintptr(unsafe.Pointer(&b[0]))%4096)
	return b[off : off+n]
}

// sequential reads or writes the whole disk in 1 MiB blocks and returns MB/s.
func sequential(f *os.File, size int64, write bool) (float64, error) {
	buf := aligned(seqBlock)
	for i := range buf {
		buf[i] = byte(i)
	}
	start := time.Now()
	var done int64
	for off := int64(0); off+seqBlock <= size; off += seqBlock {
		var err error
		if write {
			_, err = f.WriteAt(buf, off)
		} else {
			_, err = f.ReadAt(buf, off)
		}
		if err != nil {
			return 0, err
		}
		done += seqBlock
	}
	if write {
		if err := unix.Fdatasync(int(f.Fd())); err != nil {
			return 0, err
		}
	}
	return float64(done) / time.Since(start).Seconds() / 1e6, nil
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
