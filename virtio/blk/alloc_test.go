package blk

import (
	"encoding/binary"
	"fmt"
	"testing"
)

// TestReadAllocatesNothing checks what README's Performance section says of
// the in-process disk: serving a read — popping its chain, reading the
// image into guest RAM, pushing it back and interrupting — allocates
// nothing on the Go heap (it took 8 allocations before Queue.PopInto and
// the worker's reused buffers): a 4 KiB read and a 1 MiB one (with no
// request behind it) the thread serves itself, and a 2 MiB read it hands
// to a goroutine, which swaps chains with it.
func TestReadAllocatesNothing(t *testing.T) {
	for _, size := range []int{4 << 10, maxAloneLen, 2 * maxAloneLen} {
		t.Run(fmt.Sprintf("%d KiB", size>>10), func(t *testing.T) {
			rig := benchDisk(t, false, calls, benchRaw)
			const head = 0
			hdrAddr, err := setupSlot(rig.drv, head, size)
			if err != nil {
				t.Fatal(err)
			}
			var hdr [headerSize]byte
			step, sectors := uint64(size/SectorSize), uint64(benchImageSize/SectorSize)
			sector := uint64(0)
			read := func() {
				sector = (sector + step) % (sectors - step)
				binary.LittleEndian.PutUint64(hdr[8:], sector)
				if err := rig.drv.Write(hdrAddr, hdr[:]); err != nil {
					t.Fatal(err)
				}
				if err := rig.drv.Offer(head); err != nil {
					t.Fatal(err)
				}
				rig.kick()
				for {
					if u, ok, err := rig.drv.Used(); err != nil {
						t.Fatal(err)
					} else if ok {
						if u.Len != uint32(size)+1 {
							t.Fatalf("used %d bytes, want %d", u.Len, size+1)
						}
						return
					}
					rig.wait()
				}
			}
			read() // the worker's buffers grow once, a goroutine is started once
			if n := testing.AllocsPerRun(100, read); n != 0 {
				t.Errorf("a read through the queue allocated %v times, want 0", n)
			}
			d := rig.dev.(*Disk)
			d.mu.Lock()
			started := d.queues[0].started.Load()
			d.mu.Unlock()
			if handed := size > maxAloneLen; handed != (started > 0) {
				t.Errorf("%d goroutines started on the queue for %d-byte reads", started, size)
			}
		})
	}
}
