// Package blk is virtio-blk (virtio 1.2, §5.2): a disk backed by a raw image
// file on the host. Requests are served off the vCPU threads: by a thread
// of the disk's own, which waits on every queue's kick eventfd and serves
// what cannot wait for the host's disk where it takes it, and by
// goroutines it hands the rest to (queue.go), so a slow request holds up
// none behind it: reads and writes at the request's sector, FLUSH as
// fdatasync (so a write the guest saw complete after a flush is on the
// host's disk), DISCARD and WRITE_ZEROES by punching holes, GET_ID with
// the serial. A malformed request is answered with an error status, or
// dropped and logged if it has no room for one; it never reaches outside
// the image or guest RAM.
package blk

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"

	"golang.org/x/sys/unix"

	"ember/memory"
	"ember/virtio"
	"ember/virtio/blk/qcow2"
	"ember/virtio/internal/devthread"
	"ember/virtio/internal/queuefd"
)

// SectorSize is the unit of the request header's sector field and of the
// capacity: 512 bytes, whatever the disk's block size.
const SectorSize = 512

// Feature bits of virtio-blk (§5.2.3).
const (
	featureSegMax      = 1 << 2
	featureRO          = 1 << 5
	featureBlkSize     = 1 << 6
	featureFlush       = 1 << 9
	featureMQ          = 1 << 12
	featureDiscard     = 1 << 13
	featureWriteZeroes = 1 << 14
)

// MaxQueues is the most request queues a disk has (Config.Queues).
const MaxQueues = 16

// queueSize is each request queue's maximum size.
const queueSize = 256

// maxSegments bounds the data segments of one request (seg_max): the
// queue size less the header and status.
const maxSegments = queueSize - 2

// Config describes a disk.
type Config struct {
	// Path is the image file: raw, or qcow2.
	Path string
	// Format is "", FormatRaw or FormatQcow2. With "", Open serves a qcow2
	// image as one and refuses an image that begins with another format's
	// signature (a VMDK, say) with a FormatError; FormatRaw serves the file
	// as it is, whatever its first bytes hold; FormatQcow2 refuses a file
	// that is not qcow2 (format.go).
	Format string
	// ReadOnly opens the image read-only and offers VIRTIO_BLK_F_RO: writes
	// fail with an I/O error.
	ReadOnly bool
	// Serial is the disk's ID (GET_ID): at most 20 bytes.
	Serial string
	// Queues is the number of request queues (VIRTIO_BLK_F_MQ); 0 means 1.
	Queues int
	// Direct is cache=none: the image is opened with O_DIRECT, so guest I/O
	// bypasses the host's page cache (through an aligned bounce buffer);
	// FLUSH still makes it durable with fdatasync. The image's file system
	// must support O_DIRECT (tmpfs does not); the image must be raw.
	Direct bool
	// Logger gets malformed requests and I/O errors; nil is slog.Default().
	Logger *slog.Logger
}

// Disk is a virtio-blk device: a virtio.Device.
type Disk struct {
	cfg      Config
	file     *os.File
	qcow     *qcow2.Image // a qcow2 image's tables; nil for a raw one
	sectors  uint64
	features uint64
	log      *slog.Logger
	// xfer moves a read's or a write's data: transfer, or in tests a
	// stand-in that holds a request back.
	xfer func(bufs [][]byte, off int64, op xferOp) (int, error)
	now  nowState // how a short read is served without waiting (now.go)
	// stats counts the requests answered (stats.go).
	stats counters
	// onCaller, for the device-level benchmark, starts no thread: Notify
	// serves the queue on the caller, as the thread would, so that what
	// the device costs is measured without a thread's wake-up.
	onCaller bool

	mu     sync.Mutex
	queues []*queue          // while active
	kicks  *queuefd.Set      // while active: each queue's kick eventfd
	thread *devthread.Thread // while active: serves the queues
	events virtio.Events     // the transport's, if it gave them
}

// ThreadName names the disk's thread (ps -T, top -H).
const ThreadName = "ember-blk"

// SetEvents is virtio.EventSource: a queue the driver broke becomes
// DEVICE_NEEDS_RESET.
func (d *Disk) SetEvents(e virtio.Events) {
	d.mu.Lock()
	d.events = e
	d.mu.Unlock()
}

// Open opens the image and returns the disk. The image's size is rounded
// down to whole sectors.
func Open(cfg Config) (*Disk, error) {
	if len(cfg.Serial) > idLen {
		return nil, fmt.Errorf("virtio-blk: serial %q is longer than %d bytes", cfg.Serial, idLen)
	}
	if cfg.Queues == 0 {
		cfg.Queues = 1
	}
	if cfg.Queues < 1 || cfg.Queues > MaxQueues {
		return nil, fmt.Errorf("virtio-blk: %d queues (1 to %d)", cfg.Queues, MaxQueues)
	}
	flag := os.O_RDWR
	if cfg.ReadOnly {
		flag = os.O_RDONLY
	}
	if cfg.Direct {
		flag |= unix.O_DIRECT
	}
	f, err := os.OpenFile(cfg.Path, flag, 0)
	if cfg.Direct && errors.Is(err, unix.EINVAL) {
		return nil, fmt.Errorf("virtio-blk: cache=none: the file system of %s does not support O_DIRECT", cfg.Path)
	}
	if err != nil {
		return nil, fmt.Errorf("virtio-blk: %w", err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("virtio-blk: %w", err)
	}
	if !st.Mode().IsRegular() {
		f.Close()
		return nil, fmt.Errorf("virtio-blk: %s is not a regular file", cfg.Path)
	}
	format, err := formatOfImage(cfg)
	if err != nil {
		f.Close()
		return nil, err
	}
	d := &Disk{cfg: cfg, file: f, sectors: uint64(st.Size()) / SectorSize, log: cfg.Logger}
	d.xfer = d.transfer
	if format == FormatQcow2 {
		if err := d.openQcow2(); err != nil {
			f.Close()
			return nil, err
		}
	}
	d.now.set(nowModeOf(int(f.Fd()), cfg.Direct))
	if d.log == nil {
		d.log = slog.Default()
	}
	d.log = d.log.With("disk", cfg.Path)
	d.features = featureSegMax | featureBlkSize | featureFlush
	if cfg.ReadOnly {
		d.features |= featureRO
	} else {
		d.features |= featureDiscard | featureWriteZeroes
	}
	if cfg.Queues > 1 {
		d.features |= featureMQ
	}
	return d, nil
}

// Close resets the disk and closes the image (a qcow2 image flushed and
// marked clean first).
func (d *Disk) Close() error {
	d.Reset()
	var err error
	if d.qcow != nil {
		err = d.qcow.Close()
	}
	return errors.Join(err, d.file.Close())
}

// Type returns virtio.IDBlock.
func (d *Disk) Type() uint16 { return virtio.IDBlock }

// Features returns the disk's feature bits.
func (d *Disk) Features() uint64 { return d.features }

// QueueSizes returns one size per request queue.
func (d *Disk) QueueSizes() []uint16 {
	s := make([]uint16, d.cfg.Queues)
	for i := range s {
		s[i] = queueSize
	}
	return s
}

// Activate makes each enabled queue's kick eventfd and starts the disk's
// thread, which serves them.
func (d *Disk) Activate(mem *memory.Guest, features uint64, queues []*virtio.Queue, interrupt func(int)) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.queues != nil {
		return errors.New("virtio-blk: already active")
	}
	kicks, err := queuefd.NewKicks(queues)
	if err != nil {
		return err
	}
	th, err := devthread.New(ThreadName, d.log, d.needsReset)
	if err != nil {
		kicks.Close()
		return err
	}
	qs := make([]*queue, len(queues))
	for i, q := range queues {
		if q == nil {
			continue
		}
		kick, _ := kicks.Kick(i)
		qs[i] = newQueue(d, mem, q, i, interrupt, kick)
		if err := th.Watch(unix.EPOLL_CTL_ADD, kick, unix.EPOLLIN, th.Add(qs[i])); err != nil {
			th.Stop()
			kicks.Close()
			return err
		}
	}
	if !d.onCaller {
		th.Start()
	}
	d.queues, d.kicks, d.thread = qs, kicks, th
	return nil
}

// needsReset asks the driver, through the transport, to reset the device:
// a queue is broken, or the thread stopped.
func (d *Disk) needsReset(err error) {
	d.mu.Lock()
	e := d.events
	d.mu.Unlock()
	if e != nil {
		e.NeedsReset(err)
	}
}

// Notify wakes the disk's thread for queue q: a notification that did not
// come through KVM's ioeventfd (the transport's own, a back-end's).
func (d *Disk) Notify(q int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.onCaller && q >= 0 && q < len(d.queues) && d.queues[q] != nil {
		d.queues[q].drain()
		return
	}
	if kick, ok := d.kicks.Kick(q); ok {
		queuefd.Signal(kick) // EAGAIN (the counter full) still leaves a kick pending
	}
}

// KickFD is virtio.QueueEventFDs: queue q's kick eventfd while the disk is
// active, which a transport has KVM signal on the guest's notification
// (an ioeventfd), so that it wakes the disk's thread and no goroutine
// of the transport's.
func (d *Disk) KickFD(q int) (int, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.kicks.Kick(q)
}

// WaitsOnKicks is virtio.KickWaiter: the disk's thread waits on a kick
// eventfd a queue carries (a back-end's) as on its own.
func (d *Disk) WaitsOnKicks() {}

// CallFD is virtio.QueueEventFDs: the disk has none; it interrupts through
// Activate's callback.
func (d *Disk) CallFD(int) (int, bool) { return -1, false }

// RelayCalls is virtio.QueueEventFDs: with no call eventfds there is
// nothing to relay.
func (d *Disk) RelayCalls(int, bool) bool { return false }

// Reset stops the disk's thread and the queues' goroutines and waits for
// them; requests they were serving finish first, so nothing the guest was
// told is done is undone. The transport has taken the kick eventfds out of
// KVM.
func (d *Disk) Reset() {
	d.mu.Lock()
	qs, kicks, th := d.queues, d.kicks, d.thread
	d.queues, d.kicks, d.thread = nil, nil, nil
	d.mu.Unlock()
	if th != nil {
		th.Stop()
	}
	for _, s := range qs {
		if s != nil {
			s.stop()
		}
	}
	if kicks != nil {
		kicks.Close()
	}
}

// Flush makes everything written so far durable, for a host that stops the
// VM (the guest's own FLUSH requests do the same); a qcow2 image's tables
// are then consistent on the file.
func (d *Disk) Flush() error {
	if d.qcow != nil {
		return d.qcow.Flush()
	}
	return unix.Fdatasync(int(d.file.Fd()))
}
