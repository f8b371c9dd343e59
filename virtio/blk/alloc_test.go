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
// to a goroutine, which swaps chains with it. The same holds for a qcow2
// image whose L2 tables are in memory (two allocations a read before the
// lookup's extents and the buffers' list were kept off the heap).
func TestReadAllocatesNothing(t *testing.T) {
	for _, tt := range []struct {
		format benchFormat
		size   int
	}{
		{benchRaw, 4 << 10}, {benchRaw, maxAloneLen}, {benchRaw, 2 * maxAloneLen},
		{benchQcow2, 4 << 10}, {benchQcow2, maxAloneLen}, {benchQcow2, 2 * maxAloneLen},
	} {
		size := tt.size
		t.Run(fmt.Sprintf("%s/%d KiB", [...]string{"raw", "qcow2"}[tt.format], size>>10), func(t *testing.T) {
			rig := benchDisk(t, false, calls, tt.format)
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
			d := rig.dev.(*Disk)
			started := func() int32 {
				d.mu.Lock()
				defer d.mu.Unlock()
				return d.queues[0].started.Load()
			}
			// The worker's buffers grow once, a goroutine is started once;
			// a qcow2 image's L2 table is read once, by a goroutine.
			read()
			warm := started()
			if n := testing.AllocsPerRun(100, read); n != 0 {
				t.Errorf("a read through the queue allocated %v times, want 0", n)
			}
			switch {
			case size > maxAloneLen && started() == 0:
				t.Errorf("no goroutine started on the queue for %d-byte reads", size)
			case size <= maxAloneLen && (started() != warm || tt.format == benchRaw && warm != 0):
				t.Errorf("%d goroutines started on the queue for %d-byte reads, %d of them after the first", started(), size, started()-warm)
			}
		})
	}
}
