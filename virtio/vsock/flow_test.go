package vsock

import (
	"bytes"
	"testing"
	"time"

	"ember/virtio/virtiotest"
)

// TestGuestCredit: a guest that advertises a small buf_alloc receives no
// more than that until it says it consumed some (CREDIT_UPDATE), or grows
// its buffer; the bytes arrive whole and in order.
func TestGuestCredit(t *testing.T) {
	for _, tt := range []struct {
		name     string
		bufAlloc uint32
		rounds   int
	}{
		{"one byte", 1, 3},
		{"100 bytes", 100, 4},
		{"more than an rx buffer", 3*rxData + 5, 3},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := newRig(t, rigOptions{})
			serve, conns := accepted()
			r.listen(7, serve)
			g := &gconn{r: r, gport: 5000, hport: 7, bufAlloc: tt.bufAlloc}
			g.sendOp(opRequest, 0)
			g.expect(opResponse)
			hc := r.take(conns)
			total := tt.rounds*int(tt.bufAlloc) + 10
			data := pattern(total)
			if _, err := hc.Write(data); err != nil {
				t.Fatal(err)
			}
			var got []byte
			for round := range tt.rounds {
				for len(got) < (round+1)*int(tt.bufAlloc) {
					_, p := g.expect(opRW)
					got = append(got, p...)
				}
				if len(got) != (round+1)*int(tt.bufAlloc) {
					t.Fatalf("round %d: received %d bytes, credit was for %d", round, len(got), (round+1)*int(tt.bufAlloc))
				}
				r.recvNone(50 * time.Millisecond)
				g.sendOp(opCreditUpdate, 0) // fwd_cnt: all consumed
			}
			g.bufAlloc = 1 << 20
			g.sendOp(opCreditUpdate, 0)
			for len(got) < total {
				_, p := g.expect(opRW)
				got = append(got, p...)
			}
			if !bytes.Equal(got, data) {
				t.Fatalf("received bytes differ at %d", virtiotest.FirstDiff(got, data))
			}
		})
	}
}

// TestDeviceCredit: the device's own credit. It answers CREDIT_REQUEST
// with its buf_alloc and what it forwarded, tells the guest unasked when
// it forwarded a quarter of its buffer, and resets a guest that sends
// beyond its credit.
func TestDeviceCredit(t *testing.T) {
	t.Run("request", func(t *testing.T) {
		r := newRig(t, rigOptions{})
		serve, conns := accepted()
		r.listen(7, serve)
		g := r.connectGuest(5000, 7)
		hc := r.take(conns)
		g.write(pattern(1000))
		readFull(t, hc, 1000)
		time.Sleep(10 * time.Millisecond) // the write's accounting follows the host's read
		g.sendOp(opCreditRequest, 0)
		h, _ := g.expect(opCreditUpdate)
		if h.bufAlloc != BufAlloc || h.fwdCnt != 1000 {
			t.Fatalf("CREDIT_UPDATE buf_alloc %d fwd_cnt %d, want %d and 1000", h.bufAlloc, h.fwdCnt, BufAlloc)
		}
	})
	t.Run("unasked", func(t *testing.T) {
		r := newRig(t, rigOptions{})
		r.listen(7, drain)
		g := r.connectGuest(5000, 7)
		g.write(pattern(creditThreshold))
		h, _ := g.expect(opCreditUpdate)
		if h.fwdCnt < creditThreshold {
			t.Fatalf("CREDIT_UPDATE fwd_cnt %d, want >= %d", h.fwdCnt, creditThreshold)
		}
	})
	t.Run("overrun", func(t *testing.T) {
		r := newRig(t, rigOptions{})
		serve, _ := accepted() // a host program that never reads
		r.listen(7, serve)
		g := r.connectGuest(5000, 7)
		chunk := pattern(MaxPayload)
		for i := 0; ; i++ {
			if i == 200 {
				t.Fatal("no RST for a guest sending far beyond its credit")
			}
			h := g.hdr(opRW)
			h.len = MaxPayload
			r.send(h, chunk)
			if h, _, ok := r.tryRecv(time.Millisecond); ok {
				if h.op == opRST {
					break
				}
				if h.op != opCreditUpdate {
					t.Fatalf("got %s", opName(h.op))
				}
			}
		}
		if !r.logs.contains("beyond the credit") {
			t.Fatal("the overrun was not logged")
		}
	})
}

// TestBulk: a megabyte each way through a connection, the guest keeping
// a 64 KiB buffer and granting credit as it consumes.
func TestBulk(t *testing.T) {
	r := newRig(t, rigOptions{})
	serve, conns := accepted()
	r.listen(7, serve)
	g := &gconn{r: r, gport: 5000, hport: 7, bufAlloc: 64 << 10}
	g.sendOp(opRequest, 0)
	g.expect(opResponse)
	hc := r.take(conns)

	data := pattern(1 << 20)
	go hc.Write(data)
	if got := g.read(len(data)); !bytes.Equal(got, data) {
		t.Fatalf("host to guest: differs at byte %d", virtiotest.FirstDiff(got, data))
	}

	done := make(chan []byte)
	go func() { done <- readFullNoFail(hc, len(data)) }()
	g.write(data)
	if got := <-done; !bytes.Equal(got, data) {
		t.Fatalf("guest to host: differs at byte %d", virtiotest.FirstDiff(got, data))
	}
}
