// Package vsock is virtio-vsock (virtio 1.2, §5.10): stream sockets between
// the guest and the host with no network in between, the host side being
// unix sockets as in Firecracker's hybrid vsock.
//
// The device listens on a unix socket, Config.Path. A guest that connects to
// CID 2 (the host), port P, reaches whatever listens on the unix socket
// "<Path>_<P>": the device connects to it and relays. A host program that
// connects to Path and writes "CONNECT <P>\n" reaches the guest's port P: the
// device asks the guest, and when the guest accepts it writes
// "OK <host port>\n" back and relays; when the guest refuses it closes the
// connection.
//
// Everything the guest sends is hostile. Packets are parsed from the tx
// queue with their framing checked (packet.go), and the device holds a
// bounded number of connections with a bounded buffer each way: credit-based
// flow control (§5.10.6, "Buffer Space Management") stops a guest before it
// overruns its connection's buffer, the device reads from a host program
// only as much as the guest has room for, and a slow host program blocks
// only its own connection.
//
// Files: vsock.go (the device and its configuration), session.go (an
// activation), rx.go and tx.go (the queue workers), dispatch.go (packets
// from the guest), conn.go (a connection's state and credit), connect.go
// (connecting either way), relay.go (moving bytes to and from the host
// program), listen.go (host programs' CONNECT), table.go (ports),
// header.go and packet.go (the wire format), ratelog.go (bounded logging).
package vsock

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"sync"

	"ember/internal/unixsock"
	"ember/virtio"
)

// HostCID is the well-known context ID of the host (VMADDR_CID_HOST): the
// only destination the device serves.
const HostCID = 2

// Queue indices (§5.10.2).
const (
	RXQueue    = 0 // device to driver: packets for the guest
	TXQueue    = 1 // driver to device: packets from the guest
	EventQueue = 2 // device events; the device keeps its buffers
)

// QueueSize is the maximum size of each of the three queues.
const QueueSize = 256

// BufAlloc is the receive buffer the device advertises to the guest for
// each connection (buf_alloc): the most guest bytes it holds for a host
// program that has not read them yet.
const BufAlloc = 128 << 10

// MaxConnections bounds the connections of one activation, guest- and
// host-initiated together: a guest REQUEST beyond it is refused with RST, a
// host CONNECT is closed. With BufAlloc and maxPending it bounds what the
// device holds for all connections to MaxConnections × 192 KiB.
const MaxConnections = 256

// maxCID is the largest guest CID: the upper 32 bits of a CID are reserved
// and 0xffffffff is reserved (§5.10.4).
const maxCID = 0xfffffffe

// maxSocketPath is the longest path a unix socket address holds
// (sun_path is 108 bytes with its terminating NUL).
const maxSocketPath = 107

// Config configures a vsock device.
type Config struct {
	// CID is the guest's context ID, from 3 to 0xfffffffe.
	CID uint64
	// Path is the unix socket the device listens on for host programs; a
	// guest connection to host port P goes to the unix socket Path+"_"+P.
	// It must not exist.
	Path string
	// Logger gets what the device refuses and why; nil is slog.Default().
	Logger *slog.Logger
}

// Device is a virtio-vsock device: a virtio.Device, and the listener on
// Config.Path. It lives from New to Close; the driver activates and resets
// it any number of times in between.
type Device struct {
	cid  uint64
	path string
	log  *slog.Logger
	ln   *unixsock.Listener
	// warnLog and debugLog rate-limit what the guest and host programs can
	// make the device log, apart so that debug chatter hides no warning.
	warnLog, debugLog limiter

	mu      sync.Mutex
	closed  bool
	run     *session                   // the active device; nil when inactive
	pending map[*net.UnixConn]struct{} // host programs yet to send CONNECT
	wg      sync.WaitGroup             // the accept loop and handshakes
}

// New checks cfg, listens on cfg.Path and returns an inactive device. The
// path must not exist: a socket left by an earlier run is not removed, as it
// may be another VM's.
func New(cfg Config) (*Device, error) {
	if cfg.CID < 3 || cfg.CID > maxCID {
		return nil, fmt.Errorf("virtio-vsock: guest CID %d: want 3 to %d (0-2 and 0xffffffff are reserved)", cfg.CID, uint64(maxCID))
	}
	if cfg.Path == "" {
		return nil, errors.New("virtio-vsock: no socket path")
	}
	if n := len(cfg.Path) + len("_4294967295"); n > maxSocketPath {
		return nil, fmt.Errorf("virtio-vsock: socket path %q is too long: with a port suffix it takes %d bytes, a unix socket holds %d", cfg.Path, n, maxSocketPath)
	}
	if _, err := os.Lstat(cfg.Path); err == nil {
		return nil, fmt.Errorf("virtio-vsock: %s: %w (a socket left by an earlier run? remove it)", cfg.Path, fs.ErrExist)
	}
	ln, err := unixsock.Listen("unix", cfg.Path, nil)
	if err != nil {
		return nil, fmt.Errorf("virtio-vsock: %w", err)
	}
	d := &Device{cid: cfg.CID, path: cfg.Path, log: cfg.Logger, ln: ln, pending: map[*net.UnixConn]struct{}{}}
	if d.log == nil {
		d.log = slog.Default()
	}
	d.log = d.log.With("vsock", cfg.Path)
	d.wg.Add(1)
	go d.acceptLoop()
	return d, nil
}

// Close resets the device (closing every connection), stops listening,
// closes the host programs still handshaking, and removes the socket file;
// every goroutine of the device has returned when it does.
func (d *Device) Close() error {
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return nil
	}
	d.closed = true
	for uc := range d.pending {
		uc.Close()
	}
	d.mu.Unlock()
	d.Reset()
	err := d.ln.Close() // removes Path
	d.wg.Wait()
	if err != nil {
		return fmt.Errorf("virtio-vsock: %w", err)
	}
	return nil
}

// CID returns the guest's context ID.
func (d *Device) CID() uint64 { return d.cid }

// Path returns the unix socket the device listens on.
func (d *Device) Path() string { return d.path }

// Type returns virtio.IDVsock.
func (d *Device) Type() uint16 { return virtio.IDVsock }

// Features returns 0: stream sockets are implied when no feature is
// negotiated (§5.10.3), and VIRTIO_VSOCK_F_SEQPACKET is not offered.
func (d *Device) Features() uint64 { return 0 }

// QueueSizes returns the sizes of the rx, tx and event queues.
func (d *Device) QueueSizes() []uint16 { return []uint16{QueueSize, QueueSize, QueueSize} }

// ReadConfig reads struct virtio_vsock_config: guest_cid, le64.
func (d *Device) ReadConfig(off uint64, data []byte) {
	var c [8]byte
	for i := range c {
		c[i] = byte(d.cid >> (8 * i))
	}
	clear(data)
	if off < uint64(len(c)) {
		copy(data, c[off:])
	}
}

// WriteConfig ignores the write: guest_cid is read-only.
func (d *Device) WriteConfig(off uint64, data []byte) {}
