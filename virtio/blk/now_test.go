package blk

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"

	"ember/virtio/virtiotest"
)

// TestReadsTheCacheDoesNotHold: whatever a read without waiting answers —
// all of it, part and then EAGAIN, nothing, a file system that refuses
// RWF_NOWAIT — the guest gets the image's bytes with status OK, and a
// refusal stops the disk from trying again.
func TestReadsTheCacheDoesNotHold(t *testing.T) {
	tests := []struct {
		name     string
		now      func(bufs [][]byte, off int64, transfer func([][]byte, int64, xferOp) (int, error)) (int, error)
		wantMode nowMode
	}{
		{"all cached", func(b [][]byte, off int64, tr func([][]byte, int64, xferOp) (int, error)) (int, error) {
			return tr(b, off, opRead)
		}, nowNoWait},
		{"half cached", func(b [][]byte, off int64, tr func([][]byte, int64, xferOp) (int, error)) (int, error) {
			n, err := tr([][]byte{b[0][:SectorSize]}, off, opRead)
			if err != nil {
				return n, err
			}
			return n, unix.EAGAIN
		}, nowNoWait},
		{"none cached", func([][]byte, int64, func([][]byte, int64, xferOp) (int, error)) (int, error) {
			return 0, unix.EAGAIN
		}, nowNoWait},
		{"RWF_NOWAIT refused", func([][]byte, int64, func([][]byte, int64, xferOp) (int, error)) (int, error) {
			return 0, unix.EOPNOTSUPP
		}, nowNever},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newRigCfg(t, Config{}, func(d *Disk) {
				d.now.set(nowNoWait)
				transfer := d.xfer
				d.xfer = func(bufs [][]byte, off int64, op xferOp) (int, error) {
					if op == opReadNow {
						return tt.now(bufs, off, transfer)
					}
					return transfer(bufs, off, op)
				}
			})
			rd, wr := virtiotest.Readable, virtiotest.Writable
			for _, sector := range []uint64{8, 2} {
				n, out := r.do(rd(header(typeIn, sector)), wr(2*SectorSize), wr(1))
				want := r.image[sector*SectorSize : (sector+2)*SectorSize]
				if n != 2*SectorSize+1 || status(out) != statusOK || !bytes.Equal(out[0], want) {
					t.Fatalf("read of sector %d: used %d, status %d, data as the image: %v", sector, n, status(out), bytes.Equal(out[0], want))
				}
			}
			if got := r.disk.now.get(); got != tt.wantMode {
				t.Errorf("mode after the reads %d, want %d", got, tt.wantMode)
			}
		})
	}
}

// TestNowModeOfTheImage: with cache=none nothing is read without waiting;
// on tmpfs an ordinary read never waits for a device.
func TestNowModeOfTheImage(t *testing.T) {
	r := newRig(t, false)
	if got := nowModeOf(int(r.disk.file.Fd()), true); got != nowNever {
		t.Errorf("cache=none: mode %d, want nowNever", got)
	}
	var st unix.Statfs_t
	if err := unix.Statfs("/dev/shm", &st); err != nil || st.Type != tmpfsMagic {
		t.Skip("/dev/shm is not a tmpfs here: the tmpfs case is not checked")
	}
	path := filepath.Join("/dev/shm", "ember-blk-test-"+filepath.Base(t.TempDir()))
	if err := os.WriteFile(path, make([]byte, SectorSize), 0o644); err != nil {
		t.Fatal(err)
	}
	defer os.Remove(path)
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if got := nowModeOf(int(f.Fd()), false); got != nowMemory {
		t.Errorf("an image on tmpfs: mode %d, want nowMemory", got)
	}
}
