// Package tcpsegs sets how many segments a Linux host's TCP puts in each
// packet it hands its device at the least (net.ipv4.tcp_min_tso_segs), for
// the lab's network benchmark, on the lab and in the guest alike.
//
// Linux sizes a TCP socket's GSO packets to about a millisecond of its
// pacing rate (tcp_tso_autosize), two segments at the least. In the lab,
// where a packet's cost through either VMM is mostly per packet, not per
// byte, that makes a stream's rate depend on its history: a stream that
// once ran slowly sends small packets, costs more a byte, and stays slow
// (in one boot of 2026-12-07, 120 packets a MB where a fast boot of the
// same build had 18, and 7.5 MB/s against 47). With a floor of Full
// segments every packet is a whole 64 KiB one whatever the rate, so each
// boot measures what the VMM can move rather than where its stream
// happened to settle. Both VMMs' boots run with it.
package tcpsegs

import (
	"fmt"
	"os"
	"strconv"
	"strings"
)

// Full is the floor that makes every GSO packet a whole one: 44 segments of
// an Ethernet MSS (1448 bytes with timestamps) are 63,712 bytes, the most
// that fits in 64 KiB.
const Full = 44

// path is the sysctl's file (a variable for tests).
var path = "/proc/sys/net/ipv4/tcp_min_tso_segs"

// Pin sets the floor to n segments and returns a function that puts back
// the value it replaced.
func Pin(n int) (restore func() error, err error) {
	old, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("tcp_min_tso_segs: %w", err)
	}
	if err := os.WriteFile(path, []byte(strconv.Itoa(n)+"\n"), 0o644); err != nil {
		return nil, fmt.Errorf("tcp_min_tso_segs: setting %d: %w", n, err)
	}
	return func() error {
		if err := os.WriteFile(path, []byte(strings.TrimSpace(string(old))+"\n"), 0o644); err != nil {
			return fmt.Errorf("tcp_min_tso_segs: putting back %s: %w", strings.TrimSpace(string(old)), err)
		}
		return nil
	}, nil
}
