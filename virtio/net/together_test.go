package net

import (
	"sync/atomic"
	"testing"

	"ember/virtio/virtiotest"
)

// TestReceivedPacketsBuffersAppearTogether: with mergeable buffers, the
// driver reads a packet's head buffer, takes num_buffers from its header
// and then takes that many used elements more at once; one not there yet
// is a packet lost (Linux counts it in rx_length_errors and drops the
// packet, and the buffers that come later read as packets of garbage). So
// the device must show all of a packet's buffers in one move of used->idx
// (virtio 1.2 §5.1.6.4: "the device MUST use all buffers used by a single
// receive packet together"). A driver on another CPU reading used->idx
// as fast as it can, while packets of eight buffers each stream in, must
// only ever see it at a whole number of packets.
func TestReceivedPacketsBuffersAppearTogether(t *testing.T) {
	const (
		bufSize = 1024
		perPkt  = 8           // buffers each packet fills
		chains  = 25 * perPkt // posted each round
		rounds  = 40
	)
	r := newRig(t, FeatureMrgRxbuf, true)
	pkt := packet(header{}, frame(perPkt*bufSize-HeaderSize-100, 3))

	var stop atomic.Bool
	torn := make(chan uint16, 1)
	done := make(chan struct{})
	go func() {
		defer close(done)
		last := uint16(0)
		for !stop.Load() {
			idx, err := r.rx.UsedIdx()
			if err != nil || idx == last {
				continue
			}
			last = idx
			if idx%perPkt != 0 {
				select {
				case torn <- idx:
				default:
				}
			}
		}
	}()
	defer func() { stop.Store(true); <-done }()

	for range rounds {
		for range chains {
			r.add(RXQueue, virtiotest.Writable(bufSize))
		}
		for range chains / perPkt {
			r.peerWrite(pkt)
		}
		for i := range chains {
			u := r.used(RXQueue)
			if want := uint32(bufSize); i%perPkt == perPkt-1 {
				want = uint32(len(pkt) - (perPkt-1)*bufSize)
				if u.Len != want {
					t.Fatalf("used element %d: length %d, want %d (a packet's last buffer)", i, u.Len, want)
				}
			} else if u.Len != want {
				t.Fatalf("used element %d: length %d, want %d", i, u.Len, want)
			}
		}
		select {
		case idx := <-torn:
			t.Fatalf("the driver saw used->idx at %d, inside a packet of %d buffers: it would take the packet's head without the rest", idx, perPkt)
		default:
		}
	}
	if s := r.dev.Stats(); s.RXPackets != rounds*chains/perPkt || s.RXDropped != 0 {
		t.Errorf("stats %+v, want %d packets and no drop", s, rounds*chains/perPkt)
	}
}
