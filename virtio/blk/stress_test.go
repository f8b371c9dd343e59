package blk

import (
	"bytes"
	"encoding/binary"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"time"

	"ember/memory"
	"ember/virtio"
	"ember/virtio/virtiotest"
)

// TestEveryCompletionIsAnnounced drives a queue as Linux's driver does with
// EVENT_IDX, with several requests in flight and the queue's workers
// serving them side by side: it notifies only when avail_event asks for
// it, takes completions until there are none, then re-arms used_event,
// looks once more and sleeps until an interrupt. It fails if it ever
// sleeps for long on a completion the device returned without an
// interrupt, or on a request the device never took (a lost kick), and
// checks every read's data.
func TestEveryCompletionIsAnnounced(t *testing.T) {
	const (
		depth = 16
		total = 30000
		size  = 4096
	)
	mem, err := memory.New([]memory.Range{{GPA: 0, Size: 16 << 20}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { mem.Close() })
	image := make([]byte, 1<<20)
	for i := range image {
		image[i] = byte(i*13 + i>>12)
	}
	path := filepath.Join(t.TempDir(), "disk.img")
	if err := os.WriteFile(path, image, 0o644); err != nil {
		t.Fatal(err)
	}
	d, err := Open(Config{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	drv, err := virtiotest.New(mem, virtiotest.Config{Base: 0x10000, Size: 64, EventIdx: true})
	if err != nil {
		t.Fatal(err)
	}
	irq := make(chan struct{}, 1)
	err = d.Activate(mem, virtio.FeatureVersion1|virtio.FeatureEventIdx, []*virtio.Queue{drv.Queue}, func(int) {
		select {
		case irq <- struct{}{}:
		default:
		}
	})
	if err != nil {
		t.Fatal(err)
	}

	hdrs := map[uint16]uint64{}
	sectors := map[uint16]uint64{}
	for i := range depth {
		head := uint16(3 * i)
		if hdrs[head], err = setupSlot(drv, head, size); err != nil {
			t.Fatal(err)
		}
	}
	r := rand.New(rand.NewPCG(7, 11))
	offered := 0
	offer := func(head uint16) {
		var hdr [headerSize]byte
		sectors[head] = r.Uint64N(uint64(len(image)-size)/SectorSize + 1)
		binary.LittleEndian.PutUint64(hdr[8:], sectors[head])
		if err := drv.Write(hdrs[head], hdr[:]); err != nil {
			t.Fatal(err)
		}
		old := drv.AvailIdx()
		if err := drv.Offer(head); err != nil {
			t.Fatal(err)
		}
		offered++
		if need, err := drv.NeedsNotify(old); err != nil || need {
			d.Notify(0)
		}
	}
	check := func(u virtiotest.Used) {
		data, err := drv.Read(hdrs[u.Head]+headerSize, size+1)
		if err != nil {
			t.Fatal(err)
		}
		off := sectors[u.Head] * SectorSize
		if u.Len != size+1 || data[size] != statusOK || !bytes.Equal(data[:size], image[off:off+size]) {
			t.Fatalf("read at sector %d: used %d bytes, status %d, data matches %v", sectors[u.Head], u.Len, data[size], bytes.Equal(data[:size], image[off:off+size]))
		}
	}
	for i := range depth {
		offer(uint16(3 * i))
	}
	for done := 0; done < total; {
		u, ok, err := drv.Used()
		if err != nil {
			t.Fatal(err)
		}
		if ok {
			check(u)
			done++
			if offered < total {
				offer(u.Head)
			}
			if r.IntN(64) == 0 {
				time.Sleep(time.Duration(r.IntN(50)) * time.Microsecond)
			}
			continue
		}
		if err := drv.ArmInterrupt(); err != nil {
			t.Fatal(err)
		}
		if idx, _ := drv.UsedIdx(); idx != uint16(done) {
			continue // returned before the driver re-armed: no interrupt owed
		}
		select {
		case <-irq:
		case <-time.After(5 * time.Second):
			idx, _ := drv.UsedIdx()
			ev, _ := drv.AvailEvent()
			t.Fatalf("no interrupt for 5 s with %d in flight: %d done, used idx %d, avail idx %d, avail_event %d",
				offered-done, done, idx, drv.AvailIdx(), ev)
		}
	}
}
