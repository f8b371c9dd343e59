package daemon

import (
	"context"
	"io"
	"net"
	"testing"
	"time"
)

// TestConsoleStreamEnds checks that a console stream's writer ends when its
// client stops reading, whatever ends the stream: the VM deleted, the
// client's side hung up (its context), or the write time-out.
func TestConsoleStreamEnds(t *testing.T) {
	for _, c := range []struct {
		name    string
		timeout time.Duration
		end     func(*console, context.CancelFunc)
	}{
		{"vm deleted", time.Hour, func(c *console, _ context.CancelFunc) { c.end() }},
		{"client gone", time.Hour, func(_ *console, cancel context.CancelFunc) { cancel() }},
		{"write time-out", 50 * time.Millisecond, func(*console, context.CancelFunc) {}},
	} {
		t.Run(c.name, func(t *testing.T) {
			var con console
			con.Write([]byte("history"))
			hist, out, detach := con.attach()
			defer detach()
			server, client := net.Pipe() // unbuffered: the client never reads, so every write blocks
			defer client.Close()
			defer server.Close()
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			done := make(chan struct{})
			go func() {
				con.pump(ctx, server, hist, out, c.timeout)
				close(done)
			}()
			time.Sleep(20 * time.Millisecond) // the pump is blocked writing the history
			c.end(&con, cancel)
			select {
			case <-done:
			case <-time.After(5 * time.Second):
				t.Fatal("the console stream's writer is still blocked on a client that does not read")
			}
		})
	}
}

// TestConsoleStreamDelivers checks that a reading client gets the history
// and then the output, in order, and that the stream ends when the VM is
// deleted.
func TestConsoleStreamDelivers(t *testing.T) {
	var con console
	con.Write([]byte("boot:"))
	hist, out, detach := con.attach()
	defer detach()
	server, client := net.Pipe()
	defer client.Close()
	go func() {
		con.pump(context.Background(), server, hist, out, time.Minute)
		server.Close()
	}()
	con.Write([]byte(" ok"))
	got := make([]byte, len("boot: ok"))
	if _, err := io.ReadFull(client, got); err != nil || string(got) != "boot: ok" {
		t.Fatalf("stream read %q (%v), want %q", got, err, "boot: ok")
	}
	con.end()
	if rest, err := io.ReadAll(client); err != nil || len(rest) != 0 {
		t.Fatalf("after the VM was deleted the stream read %q (%v), want its end", rest, err)
	}
}
