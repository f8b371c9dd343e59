package memory

import (
	"errors"
	"fmt"

	"golang.org/x/sys/unix"
)

// Zero gives every region the guest owns (New, NewShared) fresh zero pages,
// for a machine reset: a rebooted guest must not find its last run's data.
// Pages are dropped rather than overwritten, so clearing gigabytes costs
// nothing until the guest touches them again; KVM's mappings of the old
// pages go with them (through its MMU notifier).
//
// How depends on the backing: MADV_DONTNEED on a private anonymous mapping
// drops its pages, but on a shared memfd it only unmaps them from this
// process and the memfd keeps the data, so a memfd's pages are punched out of
// the file instead (a device model that maps the same memfd sees zeros too).
// Memory lent by another owner (Map) is that owner's to clear and is left as
// it is.
func (g *Guest) Zero() error {
	for _, r := range g.list() {
		if !r.owned {
			continue
		}
		if err := r.zero(); err != nil {
			return fmt.Errorf("memory: clearing RAM at %#x: %w", r.GPA, err)
		}
	}
	return nil
}

// zero drops the region's pages: its memfd's, or its anonymous mapping's.
func (r Region) zero() error {
	if r.FD >= 0 {
		return unix.Fallocate(r.FD, unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, 0, int64(r.Size))
	}
	return unix.Madvise(r.Host, unix.MADV_DONTNEED)
}

// ErrNotOwned is returned by Discard for memory lent by another owner
// (Map): its pages are that owner's to release.
var ErrNotOwned = errors.New("memory: guest RAM lent by another owner")

// Discard releases the host pages behind [gpa, gpa+size), which must be
// page-aligned and lie inside one region the guest owns, and leaves fresh
// zero pages in their place: a virtio balloon gives back the memory of the
// pages its guest put in the balloon, and the guest reads zeros if it ever
// touches them again. As for Zero, a memfd's pages are punched out of the
// file and an anonymous mapping's are dropped with MADV_DONTNEED; KVM's
// mappings of them go too. A range outside RAM is ErrOutOfRange; one in
// memory lent by another owner is ErrNotOwned and is left as it is. A size
// of 0 does nothing.
func (g *Guest) Discard(gpa, size uint64) error {
	if gpa%PageSize != 0 || size%PageSize != 0 {
		return fmt.Errorf("memory: discarding %#x+%#x: not page-aligned", gpa, size)
	}
	if size == 0 {
		return nil
	}
	for _, r := range g.list() {
		if gpa < r.GPA || gpa-r.GPA >= r.Size || size > r.Size-(gpa-r.GPA) {
			continue
		}
		if !r.owned {
			return fmt.Errorf("memory: discarding %#x+%#x: %w", gpa, size, ErrNotOwned)
		}
		off := gpa - r.GPA
		var err error
		if r.FD >= 0 {
			err = unix.Fallocate(r.FD, unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, int64(off), int64(size))
		} else {
			err = unix.Madvise(r.Host[off:off+size], unix.MADV_DONTNEED)
		}
		if err != nil {
			return fmt.Errorf("memory: discarding %#x+%#x: %w", gpa, size, err)
		}
		return nil
	}
	return fmt.Errorf("%w: discarding %#x+%#x", ErrOutOfRange, gpa, size)
}
