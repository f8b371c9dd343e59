package netstream

import (
	"context"
	"fmt"
	"io"
	"net"
	"os/exec"
	"strings"
	"testing"
	"time"

	"ember/internal/gobuild"
)

// TestServerTimesTheGuestProgram: the network benchmark's guest
// program (internal/linuxguest/netbench), run on this machine against the
// lab's receiver over loopback, streams both ways, and the receiver times
// both directions; a peer that asks for something else, or miscounts what
// it read, gives an error and no measure.
func TestServerTimesTheGuestProgram(t *testing.T) {
	bin, err := gobuild.BuildStatic(context.Background(), t.TempDir(), "ember/internal/linuxguest/netbench")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name      string
		peer      func(t *testing.T, addr string) // the guest's side
		measures  []string
		wantError string
	}{
		{"the guest program streams both ways", func(t *testing.T, addr string) {
			out, err := exec.Command(bin, "-t", "200ms", "-rr", "200ms", addr).CombinedOutput()
			if err != nil {
				t.Fatalf("netbench: %v\n%s", err, out)
			}
			for _, want := range []string{"ember-bench: net send done", "ember-bench: net info send cpu: busy ", "ember-bench: net info send cpu0: busy ", "ember-bench: net info send irqs: LOC ", "ember-bench: net recv done", "ember-bench: net rr done", "ember-bench: net info tcp RetransSegs ", "ember-bench: net info tcpext TCPRcvQDrop "} {
				if !strings.Contains(string(out), want) {
					t.Errorf("netbench printed %q, want %q", out, want)
				}
			}
		}, Measures, ""},
		{"an unknown request", func(t *testing.T, addr string) {
			c := dialTest(t, addr)
			fmt.Fprint(c, "bogus\n")
			io.Copy(io.Discard, c)
		}, nil, `unknown request "bogus\n"`},
		{"a guest that miscounts what it read", func(t *testing.T, addr string) {
			c := dialTest(t, addr)
			fmt.Fprint(c, "recv\n")
			io.Copy(io.Discard, c)
			fmt.Fprint(c, "1\n")
			c.Close()
		}, nil, "the guest read \"1\" bytes of"},
		{"a guest that makes no round trip", func(t *testing.T, addr string) {
			c := dialTest(t, addr)
			fmt.Fprint(c, "rr\n")
			c.(*net.TCPConn).CloseWrite()
			io.Copy(io.Discard, c)
		}, nil, "the guest made no round trip"},
		{"a guest that sends nothing", func(t *testing.T, addr string) {
			c := dialTest(t, addr)
			fmt.Fprint(c, "send\n")
			c.(*net.TCPConn).CloseWrite()
			io.Copy(io.Discard, c)
		}, nil, "the guest sent nothing"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			srv := newServer(ln, nil, 200*time.Millisecond)
			tt.peer(t, ln.Addr().String())
			// Close closes connections still being served; the peer has
			// had its say, so the server is let finish with it first.
			waitServed(t, srv)
			srv.Close()
			m, errs := srv.Results()
			want := len(tt.measures)
			if want > 0 {
				want += len(SenderMeasures)
			}
			if len(m) != want {
				t.Errorf("measures %v, want %v and the lab sender's", m, tt.measures)
			}
			for _, k := range tt.measures {
				if m[k] <= 0 {
					t.Errorf("%s = %v, want > 0", k, m[k])
				}
			}
			switch {
			case tt.wantError == "" && len(errs) > 0:
				t.Errorf("errors %v", errs)
			case tt.wantError != "" && (len(errs) != 1 || !strings.Contains(errs[0].Error(), tt.wantError)):
				t.Errorf("errors %v, want one with %q", errs, tt.wantError)
			}
		})
	}
}

// waitServed waits until srv serves no connection.
func waitServed(t *testing.T, srv *Server) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); ; {
		srv.mu.Lock()
		n := len(srv.conns)
		srv.mu.Unlock()
		if n == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the server still serves %d connections", n)
		}
		time.Sleep(time.Millisecond)
	}
}

// dialTest connects to addr, closed when the test ends.
func dialTest(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// TestServerMetersEachStream: with a Meter, each of the two streams
// (not the round trips) is metered from its start to its end, and the
// measures its end gives join the boot's under the stream's name, with
// the megabytes the stream moved.
func TestServerMetersEachStream(t *testing.T) {
	bin, err := gobuild.BuildStatic(context.Background(), t.TempDir(), "ember/internal/linuxguest/netbench")
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var started, ended int
	meter := func() func(mb float64) map[string]float64 {
		started++
		return func(mb float64) map[string]float64 {
			ended++
			return map[string]float64{"moved (MB)": mb}
		}
	}
	srv := newServer(ln, meter, 200*time.Millisecond)
	if out, err := exec.Command(bin, "-t", "200ms", "-rr", "200ms", ln.Addr().String()).CombinedOutput(); err != nil {
		t.Fatalf("netbench: %v\n%s", err, out)
	}
	srv.Close()
	m, errs := srv.Results()
	if len(errs) > 0 {
		t.Fatalf("errors %v", errs)
	}
	if started != 2 || ended != 2 {
		t.Errorf("meter started %d times and ended %d, want 2 and 2 (the two streams)", started, ended)
	}
	for _, stream := range Streams {
		k := CostName(stream, "moved (MB)")
		// At 200 ms, a stream over loopback moves far more than a
		// kilobyte and far less than what its rate says it could in 10 s.
		if got := m[k]; got < 1e-3 || got > m[stream]*10 {
			t.Errorf("%s = %v, want the stream's megabytes (it ran at %v MB/s for about 0.2 s)", k, got, m[stream])
		}
	}
	if len(m) != len(Measures)+len(Streams)+len(SenderMeasures) {
		t.Errorf("measures %v: want the three rates, one cost for each stream and the lab sender's account of the stream to the guest", m)
	}
}

// TestServerServesABootAfterOneLeftHanging: a guest that dies while the
// lab streams to it leaves a connection no one reads; after Reset the next
// boot's stream is served at once, not after that connection's deadline,
// and the dead connection's error is not the next boot's.
func TestServerServesABootAfterOneLeftHanging(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := newServer(ln, nil, time.Minute)
	defer srv.Close()
	dead := dialTest(t, ln.Addr().String())
	fmt.Fprint(dead, "recv\n") // and never reads: the lab's writes fill the buffers and block
	time.Sleep(100 * time.Millisecond)
	srv.Reset()

	c := dialTest(t, ln.Addr().String())
	c.SetDeadline(time.Now().Add(10 * time.Second))
	start := time.Now()
	fmt.Fprint(c, "send\n")
	if _, err := c.Write(make([]byte, 4<<20)); err != nil {
		t.Fatalf("the next boot's stream: %v after %v (the server did not read it)", err, time.Since(start))
	}
	c.(*net.TCPConn).CloseWrite()
	if _, err := io.Copy(io.Discard, c); err != nil {
		t.Fatalf("waiting for the server to end the stream: %v after %v", err, time.Since(start))
	}
	waitResults := time.Now().Add(5 * time.Second)
	for {
		m, errs := srv.Results()
		if m[MeasureGuestSend] > 0 {
			if len(errs) > 0 {
				t.Errorf("errors %v: the dead connection's are not this boot's", errs)
			}
			break
		}
		if time.Now().After(waitResults) {
			t.Fatalf("no %s after the stream ended (measures %v, errors %v)", MeasureGuestSend, m, errs)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestServerClosesALastBootLeftHanging: a guest that dies in the run's
// last boot leaves a connection no one reads; Close ends it at once rather
// than waiting for its deadline.
func TestServerClosesALastBootLeftHanging(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := newServer(ln, nil, time.Minute)
	dead := dialTest(t, ln.Addr().String())
	fmt.Fprint(dead, "recv\n") // and never reads: the lab's writes fill the buffers and block
	time.Sleep(100 * time.Millisecond)
	start := time.Now()
	srv.Close()
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Close took %v with a dead guest's connection open; want it closed at once", d)
	}
}
