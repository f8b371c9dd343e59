// Command vsockcheck is the guest's side of the Linux boot checks' vsock
// test (busybox has no vsock client): the init runs it when the command
// line has ember.vsock=1. It connects to the host (CID 2) on HostPort,
// sends a line and prints what comes back; then it listens on GuestPort,
// accepts one connection from the host and echoes a line to it. Each step
// prints one "ember-init: vsock ..." line.
package main

import (
	"bufio"
	"fmt"
	"os"
	"strings"

	"golang.org/x/sys/unix"
)

// Ports of the check, as cmd/ember's TestLinuxVsock expects them.
const (
	HostPort  = 1234
	GuestPort = 5000
)

func main() {
	if err := toHost(); err != nil {
		fmt.Printf("ember-init: vsock to host failed: %v\n", err)
	}
	if err := fromHost(); err != nil {
		fmt.Printf("ember-init: vsock from host failed: %v\n", err)
	}
}

// toHost connects to the host, writes a line and prints what comes back.
func toHost() error {
	fd, err := unix.Socket(unix.AF_VSOCK, unix.SOCK_STREAM, 0)
	if err != nil {
		return err
	}
	f := os.NewFile(uintptr(fd), "vsock")
	defer f.Close()
	if err := unix.Connect(fd, &unix.SockaddrVM{CID: unix.VMADDR_CID_HOST, Port: HostPort}); err != nil {
		return err
	}
	if _, err := f.WriteString("ping from the guest\n"); err != nil {
		return err
	}
	line, err := bufio.NewReader(f).ReadString('\n')
	if err != nil {
		return err
	}
	fmt.Printf("ember-init: vsock to host read [%s]\n", strings.TrimSpace(line))
	return nil
}

// fromHost accepts one connection on GuestPort and echoes a line to it.
func fromHost() error {
	fd, err := unix.Socket(unix.AF_VSOCK, unix.SOCK_STREAM, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	if err := unix.Bind(fd, &unix.SockaddrVM{CID: unix.VMADDR_CID_ANY, Port: GuestPort}); err != nil {
		return err
	}
	if err := unix.Listen(fd, 1); err != nil {
		return err
	}
	fmt.Println("ember-init: vsock listening")
	nfd, _, err := unix.Accept(fd)
	if err != nil {
		return err
	}
	c := os.NewFile(uintptr(nfd), "vsock-conn")
	defer c.Close()
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err
	}
	if _, err := c.WriteString("echo " + line); err != nil {
		return err
	}
	fmt.Printf("ember-init: vsock from host read [%s]\n", strings.TrimSpace(line))
	return nil
}
