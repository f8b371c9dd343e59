package backend

import (
	"bytes"
	"os"
	"runtime"
	"strconv"
	"syscall"
	"testing"

	"ember/internal/kvmtest"
	"ember/virtio"
	"ember/virtio/blk"
	"ember/virtio/virtiotest"
)

// TestRemoteDiskServesRequests: a virtio-blk disk served by a back-end
// behind ember's virtio-pci function reads, writes and flushes its image
// file, and shows the image's size in its configuration.
func TestRemoteDiskServesRequests(t *testing.T) {
	rd, wr := virtiotest.Readable, virtiotest.Writable
	data := bytes.Repeat([]byte{0xab}, 2*blk.SectorSize)
	r := newRig(t, false)
	if got := r.bar(barDeviceConfig, 8); got != imageSectors {
		t.Fatalf("capacity %d sectors, want %d", got, imageSectors)
	}
	if !r.start() {
		t.Fatalf("device did not start: status %#x", r.status())
	}
	for _, tt := range []struct {
		name  string
		bufs  []virtiotest.Buffer
		check func(t *testing.T, addrs []uint64, file []byte)
	}{
		{"write two sectors at 5", []virtiotest.Buffer{rd(header(blkOut, 5)), rd(data), wr(1)},
			func(t *testing.T, _ []uint64, file []byte) {
				if !bytes.Equal(file[5*blk.SectorSize:7*blk.SectorSize], data) {
					t.Error("the image does not hold the written sectors")
				}
			}},
		{"read sector 9", []virtiotest.Buffer{rd(header(blkIn, 9)), wr(blk.SectorSize), wr(1)},
			func(t *testing.T, addrs []uint64, file []byte) {
				got, _ := r.drv.Read(addrs[1], blk.SectorSize)
				if !bytes.Equal(got, file[9*blk.SectorSize:10*blk.SectorSize]) {
					t.Error("the data read differs from the image")
				}
			}},
		{"read back the written sector 6", []virtiotest.Buffer{rd(header(blkIn, 6)), wr(blk.SectorSize), wr(1)},
			func(t *testing.T, addrs []uint64, _ []byte) {
				got, _ := r.drv.Read(addrs[1], blk.SectorSize)
				if !bytes.Equal(got, data[:blk.SectorSize]) {
					t.Error("the sector read is not the one written")
				}
			}},
		{"flush", []virtiotest.Buffer{rd(header(blkFlush, 0)), wr(1)}, nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			st, addrs := r.do(tt.bufs...)
			if st != blkOK {
				t.Fatalf("status %d, want OK", st)
			}
			file, err := os.ReadFile(r.image)
			if err != nil {
				t.Fatal(err)
			}
			if tt.check != nil {
				tt.check(t, addrs, file)
			}
		})
	}
	if st := r.f.Stats(); st.INTx == 0 {
		t.Error("the back-end's calls raised no interrupt")
	}
}

// TestKilledBackendNeedsReset: the back-end process is stopped with a
// write in flight and killed. The device sets DEVICE_NEEDS_RESET and
// raises a configuration change interrupt (ISR bit 1, INTx); the write is
// never completed and never reaches the image; the function goes on
// answering the driver, and a restart fails cleanly.
func TestKilledBackendNeedsReset(t *testing.T) {
	rd, wr := virtiotest.Readable, virtiotest.Writable
	r := newRig(t, true)
	if !r.start() {
		t.Fatalf("device did not start: status %#x", r.status())
	}
	if st, _ := r.do(rd(header(blkIn, 1)), wr(blk.SectorSize), wr(1)); st != blkOK {
		t.Fatalf("read before the kill: status %d", st)
	}
	before, err := os.ReadFile(r.image)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.child.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the back-end to stop", func() bool { return processState(r.child.Pid) == 'T' })
	r.bar(barISR, 1) // clear the queue interrupt of the read
	r.submit(rd(header(blkOut, 3)), rd(bytes.Repeat([]byte{0xee}, blk.SectorSize)), wr(1))
	if err := r.child.Kill(); err != nil {
		t.Fatal(err)
	}
	r.child.Wait()
	waitFor(t, "DEVICE_NEEDS_RESET", func() bool { return r.status()&virtio.StatusDeviceNeedsReset != 0 })
	if !r.line.level() {
		t.Error("INTx not raised for the configuration change")
	}
	if isr := r.bar(barISR, 1); isr&2 == 0 {
		t.Errorf("ISR %#x: configuration change bit not set", isr)
	}
	if _, ok, _ := r.drv.Used(); ok {
		t.Error("the write in flight was completed")
	}
	after, _ := os.ReadFile(r.image)
	if !bytes.Equal(before, after) {
		t.Error("the image changed after the back-end was stopped")
	}
	if r.remote.Err() == nil {
		t.Error("Remote.Err is nil after the back-end died")
	}
	if r.start() {
		t.Error("the device started again without a back-end")
	}
}

// processState returns the state letter of /proc/PID/stat.
func processState(pid int) byte {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 || i+2 >= len(b) {
		return 0
	}
	return b[i+2]
}

// TestRemoteLeavesNothing: after the function and the Remote are closed
// and the back-end has hung up, no goroutine and no descriptor of either
// side is left.
func TestRemoteLeavesNothing(t *testing.T) {
	rd, wr := virtiotest.Readable, virtiotest.Writable
	goroutines, fds := runtime.NumGoroutine(), kvmtest.OpenFDs(t)
	t.Run("a disk served and closed", func(t *testing.T) {
		r := newRig(t, false)
		for range 3 {
			if !r.start() {
				t.Fatalf("device did not start: status %#x", r.status())
			}
			if st, _ := r.do(rd(header(blkOut, 2)), rd(make([]byte, blk.SectorSize)), wr(1)); st != blkOK {
				t.Fatalf("status %d", st)
			}
		}
	})
	waitFor(t, "goroutines to end", func() bool { return runtime.NumGoroutine() <= goroutines })
	if got := kvmtest.OpenFDs(t); got != fds {
		t.Errorf("%d descriptors open after close, %d before", got, fds)
	}
}

// TestBrokenRingInBackendNeedsReset: a driver that breaks its ring (the
// available index 100 ahead in a queue of 16) makes the back-end's device
// stop; the back-end says so (VIRTIO_EVENT) and ember's function sets
// DEVICE_NEEDS_RESET, with the back-end still there, and a reset brings the
// device back.
func TestBrokenRingInBackendNeedsReset(t *testing.T) {
	rd, wr := virtiotest.Readable, virtiotest.Writable
	r := newRig(t, false)
	if !r.start() {
		t.Fatalf("device did not start: status %#x", r.status())
	}
	if err := r.drv.SetAvailIdx(100); err != nil {
		t.Fatal(err)
	}
	r.f.Notify(0)
	waitFor(t, "DEVICE_NEEDS_RESET", func() bool { return r.status()&virtio.StatusDeviceNeedsReset != 0 })
	if err := r.remote.Err(); err != nil {
		t.Errorf("the back-end was given up: %v", err)
	}
	if !r.start() {
		t.Fatalf("device did not start again after a reset: status %#x", r.status())
	}
	if st, _ := r.do(rd(header(blkIn, 0)), wr(blk.SectorSize), wr(1)); st != blkOK {
		t.Errorf("status %d after the reset", st)
	}
}
