package balloon

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"time"
)

// Tag names one memory statistic (§5.5.6.4, struct virtio_balloon_stat).
type Tag uint16

// The statistics virtio 1.2 defines. Linux reports them all (the swap and
// fault counters with CONFIG_VM_EVENT_COUNTERS, the hugetlb ones with
// CONFIG_HUGETLB_PAGE); newer kernels add tags the device ignores, as it
// must ("the device MUST ignore entries with tag values that it does not
// recognize").
const (
	TagSwapIn             Tag = 0 // VIRTIO_BALLOON_S_SWAP_IN: bytes swapped in
	TagSwapOut            Tag = 1 // VIRTIO_BALLOON_S_SWAP_OUT: bytes swapped out
	TagMajorFaults        Tag = 2 // VIRTIO_BALLOON_S_MAJFLT: major page faults
	TagMinorFaults        Tag = 3 // VIRTIO_BALLOON_S_MINFLT: minor page faults
	TagFreeMemory         Tag = 4 // VIRTIO_BALLOON_S_MEMFREE: bytes used for nothing
	TagTotalMemory        Tag = 5 // VIRTIO_BALLOON_S_MEMTOT: bytes of memory in all
	TagAvailableMemory    Tag = 6 // VIRTIO_BALLOON_S_AVAIL: bytes available to new programs without swapping
	TagDiskCaches         Tag = 7 // VIRTIO_BALLOON_S_CACHES: bytes reclaimable without I/O (the page cache)
	TagHugetlbAllocations Tag = 8 // VIRTIO_BALLOON_S_HTLB_PGALLOC: hugetlb pages allocated
	TagHugetlbFailures    Tag = 9 // VIRTIO_BALLOON_S_HTLB_PGFAIL: hugetlb allocations that failed

	numTags = 10
)

// statSize is the size of struct virtio_balloon_stat: le16 tag, le64 value,
// packed. (The spec's driver requirement speaks of a buffer size "which is
// a multiple of 6 bytes", a slip for the entry's 10: Linux sends 10-byte
// entries.)
const statSize = 10

// maxStatsBytes bounds a statistics buffer the device parses: room for
// every tag of today's kernels many times over, and a bound on the work a
// driver can ask for with one chain of gigabytes.
const maxStatsBytes = 4096

// Stats is one report of the guest's memory statistics. A statistic the
// guest did not report is 0 and Has says so; sizes are in bytes.
type Stats struct {
	SwapIn             uint64 // bytes swapped in since the guest booted
	SwapOut            uint64 // bytes swapped out since the guest booted
	MajorFaults        uint64 // major page faults since the guest booted
	MinorFaults        uint64 // minor page faults since the guest booted
	FreeMemory         uint64 // bytes of memory not used at all
	TotalMemory        uint64 // bytes of memory the guest has (less what is in the balloon)
	AvailableMemory    uint64 // bytes available to new programs without swapping
	DiskCaches         uint64 // bytes of caches reclaimable without I/O
	HugetlbAllocations uint64 // hugetlb pages allocated since the guest booted
	HugetlbFailures    uint64 // failed hugetlb allocations since the guest booted
	// Reported has bit 1<<tag set for each statistic the guest reported.
	Reported uint16
	// Time is when the device received the report.
	Time time.Time
}

// Has says whether the guest reported the statistic tag.
func (s Stats) Has(tag Tag) bool { return tag < numTags && s.Reported&(1<<tag) != 0 }

// Value returns statistic tag's value (0 for a tag the device does not
// know or the guest did not report).
func (s Stats) Value(tag Tag) uint64 {
	if f := s.field(tag); f != nil {
		return *f
	}
	return 0
}

// field returns the field of tag, or nil for a tag the device does not know.
func (s *Stats) field(tag Tag) *uint64 {
	switch tag {
	case TagSwapIn:
		return &s.SwapIn
	case TagSwapOut:
		return &s.SwapOut
	case TagMajorFaults:
		return &s.MajorFaults
	case TagMinorFaults:
		return &s.MinorFaults
	case TagFreeMemory:
		return &s.FreeMemory
	case TagTotalMemory:
		return &s.TotalMemory
	case TagAvailableMemory:
		return &s.AvailableMemory
	case TagDiskCaches:
		return &s.DiskCaches
	case TagHugetlbAllocations:
		return &s.HugetlbAllocations
	case TagHugetlbFailures:
		return &s.HugetlbFailures
	}
	return nil
}

// parseStats decodes a statistics buffer, b, an array of 10-byte entries
// in any order (§5.5.6.3). Entries with unknown tags are skipped, and
// counted in unknown; a tag given twice keeps its last value.
func parseStats(b []byte) (s Stats, unknown int) {
	for ; len(b) >= statSize; b = b[statSize:] {
		tag := Tag(binary.LittleEndian.Uint16(b))
		p := s.field(tag)
		if p == nil {
			unknown++
			continue
		}
		*p = binary.LittleEndian.Uint64(b[2:])
		s.Reported |= 1 << tag
	}
	return s, unknown
}

// setStats keeps s as the last report and wakes RefreshStats.
func (d *Device) setStats(s Stats) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.stats, d.hasStats = s, true
	d.statsSeq++
	close(d.statsUpdate)
	d.statsUpdate = make(chan struct{})
}

// statsReports returns how many reports the device has taken.
func (d *Device) statsReports() uint64 {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.statsSeq
}

// Stats returns the last statistics the guest reported and their age, or
// false if it has reported none (the device was never activated with a
// statistics queue, or the driver's first report is still to come). The
// guest reports when its driver starts and whenever the device asks
// (Config.StatsInterval, RefreshStats); a device reset keeps the last
// report, which ages.
func (d *Device) Stats() (Stats, time.Duration, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if !d.hasStats {
		return Stats{}, 0, false
	}
	return d.stats, time.Since(d.stats.Time), true
}

// RefreshStats asks the guest for fresh statistics, by returning the
// buffer the device holds in the statistics queue, and waits until the
// guest answers or ctx ends. If a request is already under way (the driver
// has not given the buffer back yet) the answer to that one is fresh
// enough. It returns ErrNoStats when there is no statistics queue to ask,
// and an error if the device is reset while it waits.
func (d *Device) RefreshStats(ctx context.Context) (Stats, error) {
	d.mu.Lock()
	w := d.run
	d.mu.Unlock()
	if w == nil || w.queues[StatsQueue] == nil {
		return Stats{}, ErrNoStats
	}
	reset := errors.New("virtio-balloon: device reset while waiting for statistics")
	wait := func(c <-chan struct{}) error {
		select {
		case <-c:
			return nil
		case <-w.stop:
			return reset
		case <-ctx.Done():
			return fmt.Errorf("virtio-balloon: waiting for statistics: %w", ctx.Err())
		}
	}
	// The worker takes the request and replies at once, without blocking,
	// with the number of reports after which one answers it.
	reply := make(chan uint64, 1)
	select {
	case w.refresh <- reply:
	case <-w.stop:
		return Stats{}, reset
	case <-ctx.Done():
		return Stats{}, fmt.Errorf("virtio-balloon: asking for statistics: %w", ctx.Err())
	}
	after := <-reply
	for {
		d.mu.Lock()
		s, seq, update := d.stats, d.statsSeq, d.statsUpdate
		d.mu.Unlock()
		if seq > after {
			return s, nil
		}
		if err := wait(update); err != nil {
			return Stats{}, err
		}
	}
}
