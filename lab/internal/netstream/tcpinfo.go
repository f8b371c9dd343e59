package netstream

import (
	"net"

	"golang.org/x/sys/unix"

	"ember/internal/tcpinfo"
)

// The lab's own TCP's account of the stream it sent the guest ("recv"),
// read from its socket (TCP_INFO) once the guest has counted every byte:
// keys of Results' map under that stream's CostName, beside its Meter's.
// The guest program prints the same of the stream it sends; for the one
// it receives only the lab's side knows what held the sender back. A
// stream that was neither held back by the guest's window nor by the
// lab's send buffer moved as fast as its congestion window let it, and
// so as fast as the guest's acknowledgements came back (its round trip)
// and as its losses (retransmissions) allowed.
const (
	// SenderRTT is the smoothed round trip as the stream ended, ms.
	SenderRTT = "lab sender's round trip (ms)"
	// SenderMinRTT is the least round trip of the connection, ms: the
	// path's floor, with nothing queued.
	SenderMinRTT = "lab sender's least round trip (ms)"
	// SenderRetrans is the segments the lab sent again, per megabyte:
	// each loss (a packet a full queue dropped, most often) shrinks the
	// congestion window.
	SenderRetrans = "lab sender's retransmissions (/MB)"
	// SenderDSACKs is the segments the guest told the lab it had
	// received twice (D-SACK), per megabyte: retransmissions that were
	// not needed, the segment late rather than lost.
	SenderDSACKs = "lab sender's needless retransmissions (D-SACKs, /MB)"
	// SenderReordering is how often the lab saw the guest acknowledge
	// segments out of the order sent, per megabyte.
	SenderReordering = "lab sender's reorderings seen (/MB)"
	// SenderRwndLimited is the share of the time the lab had data to send
	// that the guest's receive window held it back, %: a guest that does
	// not read as fast as the lab sends.
	SenderRwndLimited = "lab sender held back by the guest's window (%)"
	// SenderSndbufLimited is the share of that time the lab's own send
	// buffer held it back, %.
	SenderSndbufLimited = "lab sender held back by its send buffer (%)"
)

// SenderMeasures are the lab sender's measures of the stream to the guest,
// in the table's order.
var SenderMeasures = []string{SenderRTT, SenderMinRTT, SenderRetrans, SenderDSACKs, SenderReordering, SenderRwndLimited, SenderSndbufLimited}

// senderInfo reads c's TCP_INFO and returns SenderMeasures for a stream
// of mb megabytes, or nil if the socket cannot say.
func senderInfo(c *net.TCPConn, mb float64) map[string]float64 {
	ti, err := tcpinfo.Of(c)
	if err != nil {
		return nil
	}
	return senderMeasures(ti, mb)
}

// senderMeasures is SenderMeasures of ti for a stream of mb megabytes.
func senderMeasures(ti *unix.TCPInfo, mb float64) map[string]float64 {
	ms := func(us uint32) float64 { return float64(us) / 1000 }
	share := func(us uint64) float64 {
		if ti.Busy_time == 0 {
			return 0
		}
		return 100 * float64(us) / float64(ti.Busy_time)
	}
	m := map[string]float64{
		SenderRTT:           ms(ti.Rtt),
		SenderMinRTT:        ms(ti.Min_rtt),
		SenderRwndLimited:   share(ti.Rwnd_limited),
		SenderSndbufLimited: share(ti.Sndbuf_limited),
	}
	if mb > 0 {
		m[SenderRetrans] = float64(ti.Total_retrans) / mb
		m[SenderDSACKs] = float64(ti.Dsack_dups) / mb
		m[SenderReordering] = float64(ti.Reord_seen) / mb
	}
	return m
}
