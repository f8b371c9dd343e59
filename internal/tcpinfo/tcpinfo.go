// Package tcpinfo reads what Linux's TCP knows of a connection
// (TCP_INFO): its round trips, congestion window, retransmissions and
// what held its sender back. The network benchmark reports it from both
// ends: the guest program of the stream it sends
// (internal/linuxguest/netbench), the lab of the stream it sends the
// guest (lab/internal/netstream).
package tcpinfo

import (
	"fmt"
	"net"

	"golang.org/x/sys/unix"
)

// Of returns c's TCP_INFO as the kernel has it now. A kernel older than
// the struct x/sys knows leaves the newer fields zero.
func Of(c *net.TCPConn) (*unix.TCPInfo, error) {
	raw, err := c.SyscallConn()
	if err != nil {
		return nil, fmt.Errorf("tcp_info: %w", err)
	}
	var ti *unix.TCPInfo
	var gerr error
	if err := raw.Control(func(fd uintptr) { ti, gerr = unix.GetsockoptTCPInfo(int(fd), unix.IPPROTO_TCP, unix.TCP_INFO) }); err != nil {
		return nil, fmt.Errorf("tcp_info: %w", err)
	}
	if gerr != nil {
		return nil, fmt.Errorf("tcp_info: %w", gerr)
	}
	return ti, nil
}
