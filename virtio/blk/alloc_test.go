package blk

import (
	"encoding/binary"
	"testing"
)

// TestReadAllocatesNothing checks what README's Performance section says of
// the in-process disk: serving a 4 KiB read — popping its chain, reading
// the image into guest RAM, pushing it back and interrupting — allocates
// nothing on the Go heap (it took 8 allocations before Queue.PopInto and
// the worker's reused buffers).
func TestReadAllocatesNothing(t *testing.T) {
	rig := benchDisk(t, false, calls)
	const head = 0
	hdrAddr, err := setupSlot(rig.drv, head, 4096)
	if err != nil {
		t.Fatal(err)
	}
	var hdr [headerSize]byte
	sector := uint64(0)
	read := func() {
		sector = (sector + 8) % (benchImageSize / SectorSize)
		binary.LittleEndian.PutUint64(hdr[8:], sector)
		if err := rig.drv.Write(hdrAddr, hdr[:]); err != nil {
			t.Fatal(err)
		}
		if err := rig.drv.Offer(head); err != nil {
			t.Fatal(err)
		}
		rig.kick()
		for {
			if _, ok, err := rig.drv.Used(); err != nil {
				t.Fatal(err)
			} else if ok {
				return
			}
			rig.wait()
		}
	}
	read() // the worker's buffers grow once
	if n := testing.AllocsPerRun(200, read); n != 0 {
		t.Errorf("a 4 KiB read through the queue allocated %v times, want 0", n)
	}
}
