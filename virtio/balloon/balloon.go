// Package balloon is the traditional virtio memory balloon (virtio 1.2,
// §5.5, device ID 5): the host sets a target, num_pages, and the guest's
// driver gives it that many 4 KiB pages, naming them by page frame number
// on the inflate queue; the device releases the host memory behind each
// (memory.Guest.Discard), so a guest that no longer needs memory gives it
// back to the host. The driver names the pages it takes back on the deflate
// queue, which needs nothing of the host: a released page is faulted in
// again, zeroed, when the guest touches it. The driver writes how many pages
// the balloon holds to actual.
//
// With VIRTIO_BALLOON_F_STATS_VQ the driver also reports its memory
// statistics (free, available, caches, swap, faults...): it keeps one
// buffer in the statistics queue, which the device holds and returns when
// it wants fresh numbers, every Config.StatsInterval or at RefreshStats;
// the driver answers with a new buffer. VIRTIO_BALLOON_F_DEFLATE_ON_OOM,
// when configured, lets the guest take pages back from the balloon when it
// would otherwise run out of memory.
//
// The queues are served on a goroutine of the device's own, as the other
// devices of virtio/ do. Everything the driver puts in them is hostile: a
// page frame number outside guest RAM is logged and skipped, a malformed
// chain is logged and returned untouched, and the device never touches
// memory outside guest RAM.
package balloon

import (
	"errors"
	"fmt"
	"log/slog"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"ember/memory"
	"ember/virtio"
)

// Feature bits of the balloon device (§5.5.3).
const (
	// FeatureMustTellHost is VIRTIO_BALLOON_F_MUST_TELL_HOST, which the
	// device does not offer: a deflate needs nothing of the host, so the
	// guest may use a page again before the device has seen it deflated.
	FeatureMustTellHost = 1 << 0
	// FeatureStatsVQ is VIRTIO_BALLOON_F_STATS_VQ: the statistics queue
	// exists. Offered with Config.Stats.
	FeatureStatsVQ = 1 << 1
	// FeatureDeflateOnOOM is VIRTIO_BALLOON_F_DEFLATE_ON_OOM: the guest may
	// take pages back from the balloon when it runs out of memory. Offered
	// with Config.DeflateOnOOM.
	FeatureDeflateOnOOM = 1 << 2
)

// The device's queues (§5.5.2). The free page hinting and page reporting
// queues that may follow exist only with features the device does not
// offer.
const (
	InflateQueue = 0 // page frame numbers the driver gives to the balloon
	DeflateQueue = 1 // page frame numbers the driver takes back
	StatsQueue   = 2 // the driver's memory statistics; with FeatureStatsVQ
)

// QueueSize is the maximum size of each queue. Linux puts one buffer of up
// to 256 page frame numbers in the inflate or deflate queue at a time, and
// one buffer in the statistics queue.
const QueueSize = 128

// PageSize is the unit of the balloon: page frame numbers and num_pages
// count 4 KiB pages whatever the guest's page size ("this is historical",
// §5.5.6).
const PageSize = 4096

// MinStatsInterval is the shortest Config.StatsInterval: each request costs
// the guest a pass over its memory counters and an interrupt.
const MinStatsInterval = 100 * time.Millisecond

// ErrNoStats is returned by RefreshStats when there is no statistics queue
// to ask: the device is not active, Config.Stats was not set, or the driver
// did not take FeatureStatsVQ.
var ErrNoStats = errors.New("virtio-balloon: no statistics queue")

// Config describes a balloon.
type Config struct {
	// DeflateOnOOM offers VIRTIO_BALLOON_F_DEFLATE_ON_OOM: under memory
	// pressure the guest deflates the balloon on its own rather than
	// running out of memory, so a target set too high costs the guest
	// nothing worse than what the target would have taken. Without it
	// Linux keeps the pages in the balloon whatever happens.
	DeflateOnOOM bool
	// Stats offers VIRTIO_BALLOON_F_STATS_VQ: the guest reports its memory
	// statistics, which Stats returns and RefreshStats asks for anew.
	Stats bool
	// StatsInterval, with Stats, is how often the device asks the guest for
	// fresh statistics; 0 asks only at RefreshStats (the guest reports
	// once when its driver starts). At least MinStatsInterval.
	StatsInterval time.Duration
	// Logger gets malformed chains and bad page frame numbers; nil is
	// slog.Default().
	Logger *slog.Logger
}

// Device is a virtio balloon: a virtio.Device with an inflate and a deflate
// queue and, with Config.Stats, a statistics queue. The host steers it with
// SetTarget and reads it with Actual and Stats; those may be called from any
// goroutine, before or after activation.
type Device struct {
	cfg    Config
	log    *slog.Logger
	events atomic.Pointer[virtio.Events] // the transport's, if it gave them (SetEvents)

	target atomic.Uint32 // num_pages: the pages the host wants in the balloon
	actual atomic.Uint32 // actual: the pages the driver says are in it

	inflated, deflated, badPFNs, badChains atomic.Uint64 // Counters

	mu          sync.Mutex    // guards what follows, against Activate, Notify, Reset
	run         *worker       // the active device's; nil when inactive
	stats       Stats         // the last statistics the guest reported
	hasStats    bool          // stats holds a report
	statsSeq    uint64        // reports taken since New
	statsUpdate chan struct{} // closed, and replaced, at each report
}

var _ virtio.Device = (*Device)(nil)

// New returns an inactive balloon with an empty target.
func New(cfg Config) (*Device, error) {
	switch {
	case cfg.StatsInterval < 0:
		return nil, fmt.Errorf("virtio-balloon: statistics interval %v is negative", cfg.StatsInterval)
	case cfg.StatsInterval > 0 && !cfg.Stats:
		return nil, errors.New("virtio-balloon: a statistics interval without Config.Stats")
	case cfg.StatsInterval > 0 && cfg.StatsInterval < MinStatsInterval:
		return nil, fmt.Errorf("virtio-balloon: statistics interval %v is below the minimum %v", cfg.StatsInterval, MinStatsInterval)
	}
	d := &Device{cfg: cfg, log: cfg.Logger, statsUpdate: make(chan struct{})}
	if d.log == nil {
		d.log = slog.Default()
	}
	return d, nil
}

// Type returns virtio.IDBalloon.
func (d *Device) Type() uint16 { return virtio.IDBalloon }

// Features returns FeatureStatsVQ and FeatureDeflateOnOOM as configured.
func (d *Device) Features() uint64 {
	var f uint64
	if d.cfg.Stats {
		f |= FeatureStatsVQ
	}
	if d.cfg.DeflateOnOOM {
		f |= FeatureDeflateOnOOM
	}
	return f
}

// QueueSizes returns the inflate and deflate queues' sizes and, with
// Config.Stats, the statistics queue's.
func (d *Device) QueueSizes() []uint16 {
	if d.cfg.Stats {
		return []uint16{QueueSize, QueueSize, QueueSize}
	}
	return []uint16{QueueSize, QueueSize}
}

// SetEvents is virtio.EventSource: SetTarget becomes the transport's
// configuration change notification, and a queue the driver broke becomes
// DEVICE_NEEDS_RESET.
func (d *Device) SetEvents(e virtio.Events) { d.events.Store(&e) }

// Activate starts the goroutine that serves the queues the driver enabled.
// The statistics queue is served only if the driver took FeatureStatsVQ.
// Buffers the driver made available before it set DRIVER_OK are served at
// once: Linux primes the statistics queue, and notifies, before then.
func (d *Device) Activate(mem *memory.Guest, features uint64, queues []*virtio.Queue, interrupt func(queue int)) error {
	if want := len(d.QueueSizes()); len(queues) != want {
		return fmt.Errorf("virtio-balloon: activated with %d queues, want %d", len(queues), want)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.run != nil {
		return errors.New("virtio-balloon: activated twice without a reset")
	}
	qs := [numQueues]*virtio.Queue{}
	copy(qs[:], queues)
	if qs[StatsQueue] != nil && features&FeatureStatsVQ == 0 {
		d.log.Debug("virtio-balloon: statistics queue enabled without VIRTIO_BALLOON_F_STATS_VQ; not served")
		qs[StatsQueue] = nil
	}
	for i, q := range qs[:len(queues)] {
		if q == nil {
			d.log.Debug("virtio-balloon: the driver left a queue disabled", "queue", i)
		}
	}
	d.run = newWorker(d, mem, qs, interrupt, d.statsSeq)
	go d.run.serve()
	return nil
}

// Notify wakes the worker for queue: the driver added buffers. A kick that
// arrives while one is pending merges with it.
func (d *Device) Notify(queue int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.run == nil || queue < 0 || queue >= numQueues {
		return
	}
	d.run.kicks[queue].Send()
}

// Reset stops the worker and waits until its goroutine has returned. The
// balloon is empty again for the next driver (actual is 0: a new driver
// starts with no pages in it); the target stays, and so do the last
// statistics.
func (d *Device) Reset() {
	d.mu.Lock()
	w := d.run
	d.run = nil
	d.mu.Unlock()
	if w != nil {
		close(w.stop)
		<-w.done
	}
	d.actual.Store(0)
}

// SetTarget asks the guest to put size bytes of its RAM in the balloon, in
// 4 KiB pages (rounded up): 0 asks for all of it back. The new num_pages
// reaches the driver with a configuration change notification, which the
// transport sends once the driver has set DRIVER_OK (before then the driver
// reads the target when it starts). The guest inflates or deflates towards
// it at its own pace; Actual says how far it got. More than 2^32 pages
// (16 TiB) is an error. The caller keeps size below the guest's RAM: Linux
// inflates as far as it can, and without DeflateOnOOM a guest given a
// target near its RAM size runs out of memory.
func (d *Device) SetTarget(size uint64) error {
	pages := size / PageSize
	if size%PageSize != 0 {
		pages++
	}
	if pages > math.MaxUint32 {
		return fmt.Errorf("virtio-balloon: target of %d bytes is more than 2^32 pages", size)
	}
	if d.target.Swap(uint32(pages)) == uint32(pages) {
		return nil
	}
	if e := d.events.Load(); e != nil {
		(*e).ConfigChanged()
	}
	return nil
}

// Target returns the target SetTarget last set, in bytes.
func (d *Device) Target() uint64 { return uint64(d.target.Load()) * PageSize }

// Actual returns how many bytes the guest says it has put in the balloon:
// the actual field its driver writes after each inflate or deflate.
func (d *Device) Actual() uint64 { return uint64(d.actual.Load()) * PageSize }

// Counters are what the device has seen of the guest since New, for
// diagnostics: Actual is what the driver says, these are what it did.
type Counters struct {
	InflatedPages uint64 // pages in guest RAM named on the inflate queue (each released, unless lent by another owner)
	DeflatedPages uint64 // pages in guest RAM named on the deflate queue
	BadPFNs       uint64 // page frame numbers outside guest RAM, skipped
	BadChains     uint64 // malformed chains, returned untouched
}

// Counters returns the counters so far.
func (d *Device) Counters() Counters {
	return Counters{
		InflatedPages: d.inflated.Load(),
		DeflatedPages: d.deflated.Load(),
		BadPFNs:       d.badPFNs.Load(),
		BadChains:     d.badChains.Load(),
	}
}
