package vsock

import (
	"net"
	"testing"
	"time"
)

// TestShutdown: each way a connection ends, from either side.
func TestShutdown(t *testing.T) {
	for _, tt := range []struct {
		name string
		run  func(t *testing.T, r *rig, g *gconn, hc *net.UnixConn)
	}{
		{"guest shuts down sending", func(t *testing.T, r *rig, g *gconn, hc *net.UnixConn) {
			g.write([]byte("data"))
			g.sendOp(opShutdown, shutSend)
			if got := readAll(t, hc); string(got) != "data" {
				t.Fatalf("host read %q, want data then EOF", got)
			}
			hc.Write([]byte("bye")) // the host program may still answer
			if got := g.read(3); string(got) != "bye" {
				t.Fatalf("guest read %q", got)
			}
			hc.Close()
			if h, _ := g.expect(opShutdown); h.flags != shutSend {
				t.Fatalf("SHUTDOWN flags %d, want SEND", h.flags)
			}
			g.sendOp(opShutdown, shutBoth)
			g.expect(opRST)
		}},
		{"host half-closes", func(t *testing.T, r *rig, g *gconn, hc *net.UnixConn) {
			hc.Write([]byte("last words"))
			hc.CloseWrite()
			if got := g.read(10); string(got) != "last words" {
				t.Fatalf("guest read %q", got)
			}
			if h, _ := g.expect(opShutdown); h.flags != shutSend {
				t.Fatalf("SHUTDOWN flags %d, want SEND (after the data)", h.flags)
			}
			g.write([]byte("reply"))
			if got := readFull(t, hc, 5); string(got) != "reply" {
				t.Fatalf("host read %q", got)
			}
		}},
		{"guest shuts down receiving", func(t *testing.T, r *rig, g *gconn, hc *net.UnixConn) {
			g.sendOp(opShutdown, shutRcv)
			deadline := time.Now().Add(timeout)
			for {
				if _, err := hc.Write([]byte("unwanted")); err != nil {
					break // EPIPE: the device shut its reading side
				}
				if time.Now().After(deadline) {
					t.Fatal("the host program can still write to a guest that shut down receiving")
				}
				time.Sleep(time.Millisecond)
			}
			r.recvNone(50 * time.Millisecond) // no RW: the guest wants none
			g.write([]byte("still sending"))
			if got := readFull(t, hc, 13); string(got) != "still sending" {
				t.Fatalf("host read %q", got)
			}
		}},
		{"host closes", func(t *testing.T, r *rig, g *gconn, hc *net.UnixConn) {
			hc.Close()
			if h, _ := g.expect(opShutdown); h.flags != shutSend {
				t.Fatalf("SHUTDOWN flags %d, want SEND", h.flags)
			}
			g.write([]byte("anyone?"))
			if h, _ := g.expect(opShutdown); h.flags != shutBoth {
				t.Fatalf("SHUTDOWN flags %d, want both once the write failed", h.flags)
			}
			g.sendOp(opRST, 0)
			r.recvNone(50 * time.Millisecond)
		}},
		{"guest resets", func(t *testing.T, r *rig, g *gconn, hc *net.UnixConn) {
			g.write([]byte("x"))
			readFull(t, hc, 1)
			g.sendOp(opRST, 0)
			if got := readAll(t, hc); len(got) != 0 {
				t.Fatalf("host read %q after RST", got)
			}
			r.recvNone(50 * time.Millisecond)
			g.write([]byte("y")) // the connection is gone: answered with RST
			g.expect(opRST)
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := newRig(t, rigOptions{})
			g, hc := r.connectHost(1234)
			tt.run(t, r, g, hc)
		})
	}
}
