package tcpinfo

import (
	"io"
	"net"
	"testing"
)

// TestOfAConnection: a connection over loopback that moved a megabyte has
// a round trip and had every byte it sent acknowledged; a closed one
// gives an error, not a zero struct.
func TestOfAConnection(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	done := make(chan error, 1)
	go func() {
		c, err := ln.Accept()
		if err == nil {
			_, err = io.Copy(io.Discard, c)
			c.Write([]byte{1})
			c.Close()
		}
		done <- err
	}()
	nc, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	c := nc.(*net.TCPConn)
	const n = 1 << 20
	if _, err := c.Write(make([]byte, n)); err != nil {
		t.Fatal(err)
	}
	c.CloseWrite()
	if _, err := io.ReadFull(c, make([]byte, 1)); err != nil { // the peer read all of it
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	ti, err := Of(c)
	if err != nil {
		t.Fatal(err)
	}
	if ti.Rtt == 0 || ti.Bytes_acked < n {
		t.Errorf("tcp_info rtt %dµs, %d bytes acknowledged; want a round trip and at least %d", ti.Rtt, ti.Bytes_acked, n)
	}
	c.Close()
	if _, err := Of(c); err == nil {
		t.Error("Of a closed connection gave no error")
	}
}
