package vsock

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"time"
)

// Host-side handshake limits: a host program has handshakeTimeout to send
// its CONNECT line of at most maxConnectLine bytes, and at most
// maxHandshakes may be at it at once.
const (
	handshakeTimeout = 5 * time.Second
	maxConnectLine   = 32
	maxHandshakes    = 64
	acceptBackoff    = 50 * time.Millisecond
)

// acceptLoop accepts host programs on Path until Close.
func (d *Device) acceptLoop() {
	defer d.wg.Done()
	for {
		uc, err := d.ln.AcceptUnix()
		if errors.Is(err, net.ErrClosed) {
			return
		}
		if err != nil {
			d.logLimited(&d.warnLog, slog.LevelWarn, "virtio-vsock: accept failed", "err", err) // e.g. out of descriptors
			time.Sleep(acceptBackoff)
			continue
		}
		d.startHandshake(uc)
	}
}

// startHandshake starts reading a host program's CONNECT line, unless the
// device is closing or too many are at it already.
func (d *Device) startHandshake(uc *net.UnixConn) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed || len(d.pending) >= maxHandshakes {
		d.debug("host connection refused: closing, or too many handshakes", "max", maxHandshakes)
		uc.Close()
		return
	}
	d.pending[uc] = struct{}{}
	d.wg.Add(1)
	go d.handshake(uc)
}

// handshake reads "CONNECT <port>\n" from a host program and hands the
// connection to the active session, which asks the guest. Without a driver
// (the device is not active, or serves nothing) the host program's
// connection is closed at once: it retries as it would for a guest not
// listening.
func (d *Device) handshake(uc *net.UnixConn) {
	defer d.wg.Done()
	port, err := readConnect(uc)
	d.mu.Lock()
	defer d.mu.Unlock()
	delete(d.pending, uc)
	if err != nil {
		d.debug("host connection closed", "err", err)
		uc.Close()
		return
	}
	s := d.run
	if d.closed || s == nil || !s.serving {
		d.debug("host connection closed: no driver", "guest_port", port)
		uc.Close()
		return
	}
	s.connectGuest(uc, port)
}

// connectGuest registers a host-initiated connection to the guest's port
// on a fresh host port and has the rx worker send the REQUEST. The caller
// holds d.mu.
func (s *session) connectGuest(uc *net.UnixConn, port uint32) {
	local, ok := s.allocPort()
	if !ok || len(s.conns) >= MaxConnections {
		s.d.refuse("host connection closed: too many connections", "max", MaxConnections)
		uc.Close()
		return
	}
	c := s.newConn(key{local: local, peer: port}, stateRequesting)
	c.uc = uc
	c.sendRequest = true
	s.schedule(c)
	s.wg.Add(1)
	go c.awaitResponse()
}

// readConnect reads the CONNECT line byte by byte, so that what the host
// program sends after it stays in the socket for the guest.
func readConnect(uc *net.UnixConn) (uint32, error) {
	if err := uc.SetReadDeadline(time.Now().Add(handshakeTimeout)); err != nil {
		return 0, fmt.Errorf("reading CONNECT: %w", err)
	}
	var line []byte
	var b [1]byte
	for {
		if _, err := uc.Read(b[:]); err != nil {
			return 0, fmt.Errorf("reading CONNECT: %w", err)
		}
		if b[0] == '\n' {
			break
		}
		if len(line) == maxConnectLine {
			return 0, fmt.Errorf("CONNECT line longer than %d bytes", maxConnectLine)
		}
		line = append(line, b[0])
	}
	if err := uc.SetReadDeadline(time.Time{}); err != nil {
		return 0, fmt.Errorf("reading CONNECT: %w", err)
	}
	return parseConnect(string(line))
}

// parseConnect parses "CONNECT <port>" (a trailing CR allowed), the port in
// decimal.
func parseConnect(line string) (uint32, error) {
	arg, ok := strings.CutPrefix(strings.TrimSuffix(line, "\r"), "CONNECT ")
	if !ok {
		return 0, fmt.Errorf("%q is not CONNECT <port>", line)
	}
	p, err := strconv.ParseUint(arg, 10, 32)
	if err != nil || p == portAny {
		return 0, fmt.Errorf("CONNECT: bad port %q", arg)
	}
	return uint32(p), nil
}
