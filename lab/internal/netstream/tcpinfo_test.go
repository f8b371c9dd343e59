package netstream

import (
	"fmt"
	"io"
	"math"
	"net"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestServerSaysWhatHeldItsStreamBack: the lab's stream to a guest that
// reads slowly through a small receive window is held back by that window
// most of the time it has data to send, and the lab sender's measures say
// so beside the stream's rate; its round trips are positive, the least
// no longer than a second.
func TestServerSaysWhatHeldItsStreamBack(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := newServer(ln, nil, 300*time.Millisecond)
	defer srv.Close()

	// A guest with a 4 KiB receive buffer (set before connecting, so the
	// window is small from the start) that reads 4 KiB a millisecond.
	d := net.Dialer{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		if err := c.Control(func(fd uintptr) { serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF, 4096) }); err != nil {
			return err
		}
		return serr
	}}
	c, err := d.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprint(c, "recv\n")
	var n int64
	buf := make([]byte, 4096)
	for {
		k, err := c.Read(buf)
		n += int64(k)
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Millisecond)
	}
	fmt.Fprintf(c, "%d\n", n)
	waitServed(t, srv)

	m, errs := srv.Results()
	if len(errs) > 0 {
		t.Fatalf("errors %v", errs)
	}
	if m[MeasureGuestRecv] <= 0 {
		t.Fatalf("%s = %v, want a rate", MeasureGuestRecv, m[MeasureGuestRecv])
	}
	got := func(k string) float64 {
		v, ok := m[CostName(MeasureGuestRecv, k)]
		if !ok {
			t.Errorf("no %q in %v", k, m)
		}
		return v
	}
	if v := got(SenderRwndLimited); v < 30 || v > 100 {
		t.Errorf("%s = %v, want much of the stream (a guest reading 4 KiB a millisecond through a 4 KiB buffer)", SenderRwndLimited, v)
	}
	if v := got(SenderSndbufLimited); v < 0 || v > 100 {
		t.Errorf("%s = %v, want a share", SenderSndbufLimited, v)
	}
	if v := got(SenderRTT); v <= 0 || math.IsNaN(v) {
		t.Errorf("%s = %v, want > 0", SenderRTT, v)
	}
	if v := got(SenderMinRTT); v <= 0 || v > 1000 {
		t.Errorf("%s = %v, want between 0 and a second over loopback", SenderMinRTT, v)
	}
	// Present, but not asserted: even over loopback a window this small
	// can have the lab send a segment again (seen: one in a run of three).
	got(SenderRetrans)
	got(SenderDSACKs)
	got(SenderReordering)
}

// TestSenderMeasuresOfTCPInfo: the measures are TCP_INFO's fields in ms,
// shares of the busy time and counts per megabyte; a socket that was
// never busy is held back by nothing.
func TestSenderMeasuresOfTCPInfo(t *testing.T) {
	tests := []struct {
		ti   unix.TCPInfo
		mb   float64
		want map[string]float64
	}{
		{unix.TCPInfo{Rtt: 2500, Min_rtt: 1200, Total_retrans: 6, Dsack_dups: 3, Reord_seen: 12, Busy_time: 4_000_000, Rwnd_limited: 1_000_000, Sndbuf_limited: 2_000_000}, 3,
			map[string]float64{SenderRTT: 2.5, SenderMinRTT: 1.2, SenderRetrans: 2, SenderDSACKs: 1, SenderReordering: 4, SenderRwndLimited: 25, SenderSndbufLimited: 50}},
		{unix.TCPInfo{Rtt: 1000}, 0,
			map[string]float64{SenderRTT: 1, SenderMinRTT: 0, SenderRwndLimited: 0, SenderSndbufLimited: 0}},
	}
	for _, tt := range tests {
		got := senderMeasures(&tt.ti, tt.mb)
		if len(got) != len(tt.want) {
			t.Errorf("senderMeasures(%+v, %v) = %v, want %v", tt.ti, tt.mb, got, tt.want)
		}
		for k, w := range tt.want {
			if v, ok := got[k]; !ok || math.Abs(v-w) > 1e-9 {
				t.Errorf("senderMeasures(..., %v)[%s] = %v (present %v), want %v", tt.mb, k, v, ok, w)
			}
		}
	}
}
