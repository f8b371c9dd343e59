package memory

import (
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
