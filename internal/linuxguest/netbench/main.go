// Command netbench is the guest's side of the lab's virtio-net benchmark
// (go run ./lab net): built static and put in the test initramfs as
// /bin/netbench, it is run by the init with the address of the lab's
// receiver (ember.netbench=HOST:PORT, after ember.net=1 gave eth0 its
// address) and moves TCP streams over the guest's virtio-net interface, the
// same way under ember and under QEMU. The host side does the timing, on
// its own clock (a guest's clock is the VMM's to keep); the guest only
// streams:
//
//	send: it connects, writes "send\n", then writes for -t (5 s) and closes
//	      its side; the host counts the bytes and closes.
//	recv: it connects, writes "recv\n" and reads until the host closes,
//	      then writes the count of bytes read as a decimal line (the host's
//	      clock stops there).
//	rr:   it connects, writes "rr\n", then for -rr (3 s) sends one byte
//	      and waits for the host to echo it, one at a time, and closes its
//	      side: the round trip a packet makes through the VMM and back.
//
// Each direction prints one "ember-bench: net ..." line: done, or why not.
// Before it streams, it sets its TCP to hand eth0 whole 64 KiB packets at
// whatever rate (internal/tcpsegs), as the lab's side does.
package main

import (
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"slices"
	"sort"
	"strings"
	"time"

	"ember/internal/tcpinfo"
	"ember/internal/tcpsegs"
)

// chunk is the size of each write and read.
const chunk = 128 << 10

func main() {
	sendTime := flag.Duration("t", 5*time.Second, "how long to stream to the host")
	rrTime := flag.Duration("rr", 3*time.Second, "how long to make one-byte round trips")
	flag.Parse()
	if flag.NArg() != 1 {
		fmt.Println("ember-bench: net error usage: netbench [-t DURATION] [-rr DURATION] HOST:PORT")
		os.Exit(2)
	}
	addr := flag.Arg(0)
	if _, err := tcpsegs.Pin(tcpsegs.Full); err != nil { // whole GSO packets, as the lab's
		fmt.Printf("ember-bench: net info %v\n", err)
	}
	before, irqsBefore := readCPU(), readIRQs()
	if n, err := send(addr, *sendTime); err != nil {
		fmt.Printf("ember-bench: net error send: %v\n", err)
	} else {
		fmt.Printf("ember-bench: net send done, %d bytes\n", n)
	}
	printCPU("send", before, readCPU())
	printIRQs("send", irqsBefore, readIRQs())
	if n, err := recv(addr); err != nil {
		fmt.Printf("ember-bench: net error recv: %v\n", err)
	} else {
		fmt.Printf("ember-bench: net recv done, %d bytes\n", n)
	}
	if n, err := roundTrips(addr, *rrTime); err != nil {
		fmt.Printf("ember-bench: net error rr: %v\n", err)
	} else {
		fmt.Printf("ember-bench: net rr done, %d round trips\n", n)
	}
	report()
	reportPlatform()
}

// report prints what explains a figure: the interrupts of the virtio
// devices, the packets eth0 dropped, TCP's retransmissions, and the
// segments the guest's TCP received and dropped, and why (a checksum, a
// receive queue over its memory, a full out-of-order queue): a sender
// retransmits each.
func report() {
	if b, err := os.ReadFile("/proc/interrupts"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if strings.Contains(l, "virtio") {
				fmt.Printf("ember-bench: net info irq %s\n", strings.Join(strings.Fields(l), " "))
			}
		}
	}
	printInterface("eth0", "rx_packets", "rx_dropped", "rx_errors", "rx_length_errors", "rx_frame_errors", "rx_over_errors", "rx_missed_errors")
	// The driver's complaints about what it received (a header it would
	// not take: "bad gso"; buffers missing for a packet: "rx error").
	for _, l := range linesWith(kernelLog(), "bad gso", "rx error", "virtio_net") {
		fmt.Printf("ember-bench: net info klog %s\n", l)
	}
	printCounters("/proc/net/snmp", "Ip", "InReceives", "InHdrErrors", "InDiscards")
	printCounters("/proc/net/netstat", "IpExt", "InTruncatedPkts", "InCsumErrors")
	printCounters("/proc/net/snmp", "Tcp", "RetransSegs", "InSegs", "OutSegs", "InErrs", "InCsumErrors")
	printCounters("/proc/net/netstat", "TcpExt", "TCPRcvQDrop", "PruneCalled", "RcvPruned", "OfoPruned",
		"TCPOFOQueue", "TCPOFODrop", "TCPZeroWindowDrop", "TCPBacklogDrop", "TCPDSACKOldSent", "TCPDSACKOfoSent")
}

// printInterface prints the counters names of network interface dev
// (/sys/class/net/DEV/statistics): the packets its driver took and those
// it dropped, and why.
func printInterface(dev string, names ...string) {
	for _, n := range names {
		if b, err := os.ReadFile("/sys/class/net/" + dev + "/statistics/" + n); err == nil {
			fmt.Printf("ember-bench: net info %s %s %s\n", dev, n, strings.TrimSpace(string(b)))
		}
	}
}

// printCounters prints the counters names of the table kind ("Tcp",
// "TcpExt") in file, a /proc/net file of pairs of lines, names then
// values, each led by the table's name.
func printCounters(file, kind string, names ...string) {
	b, err := os.ReadFile(file)
	if err != nil {
		return
	}
	var table []string
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, kind+":") {
			table = append(table, l)
		}
	}
	if len(table) != 2 {
		return
	}
	keys, values := strings.Fields(table[0]), strings.Fields(table[1])
	for i, k := range keys {
		if slices.Contains(names, k) && i < len(values) {
			fmt.Printf("ember-bench: net info %s %s %s\n", strings.ToLower(kind), k, values[i])
		}
	}
}

// printTCPInfo prints what the guest's TCP knows of the send stream
// (TCP_INFO): its round-trip time and congestion window, and for how long
// it had data in flight (busy) and of that was held back by the receiver's
// window or its own send buffer. A stream limited by neither moved as fast
// as the acknowledgements came back: the round trip through the VMM.
func printTCPInfo(c *net.TCPConn) {
	ti, err := tcpinfo.Of(c)
	if err != nil {
		fmt.Printf("ember-bench: net info %v\n", err)
		return
	}
	ms := func(us uint64) string { return (time.Duration(us) * time.Microsecond).Round(time.Millisecond).String() }
	fmt.Printf("ember-bench: net info send tcp_info: rtt %dµs (min %dµs, var %dµs) cwnd %d mss %d ssthresh %d unacked %d retrans %d ca_state %d; busy %s, rwnd-limited %s, sndbuf-limited %s; delivery %.1f MB/s\n",
		ti.Rtt, ti.Min_rtt, ti.Rttvar, ti.Snd_cwnd, ti.Snd_mss, ti.Snd_ssthresh, ti.Unacked, ti.Total_retrans, ti.Ca_state,
		ms(ti.Busy_time), ms(ti.Rwnd_limited), ms(ti.Sndbuf_limited), float64(ti.Delivery_rate)/1e6)
}

// dial connects to the host and asks for a direction.
func dial(addr, what string) (*net.TCPConn, error) {
	c, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		return nil, err
	}
	tc := c.(*net.TCPConn)
	if _, err := io.WriteString(tc, what+"\n"); err != nil {
		tc.Close()
		return nil, err
	}
	return tc, nil
}

// send streams to the host for d and waits for it to close.
func send(addr string, d time.Duration) (int64, error) {
	c, err := dial(addr, "send")
	if err != nil {
		return 0, err
	}
	defer c.Close()
	buf := make([]byte, chunk)
	for i := range buf {
		buf[i] = byte(i)
	}
	var n int64
	var longest time.Duration
	for stop := time.Now().Add(d); time.Now().Before(stop); {
		t := time.Now()
		k, err := c.Write(buf)
		n += int64(k)
		if err != nil {
			return n, err
		}
		longest = max(longest, time.Since(t))
	}
	fmt.Printf("ember-bench: net info send: longest %d-byte write %v\n", chunk, longest.Round(time.Millisecond))
	printTCPInfo(c)
	if err := c.CloseWrite(); err != nil {
		return n, err
	}
	// The host closes once it has read everything.
	c.SetReadDeadline(time.Now().Add(time.Minute))
	if _, err := io.Copy(io.Discard, c); err != nil {
		return n, err
	}
	return n, nil
}

// recv reads what the host streams until it closes, and tells it how much
// arrived.
func recv(addr string) (int64, error) {
	c, err := dial(addr, "recv")
	if err != nil {
		return 0, err
	}
	defer c.Close()
	c.SetReadDeadline(time.Now().Add(time.Minute))
	n, err := io.CopyBuffer(io.Discard, struct{ io.Reader }{c}, make([]byte, chunk))
	if err != nil {
		return n, err
	}
	// The host's clock stops at the count; closing after it loses
	// nothing (the count is queued before the FIN).
	_, err = fmt.Fprintf(c, "%d\n", n)
	return n, err
}

// roundTrips sends one byte at a time for d, each after the host's echo of
// the one before, then closes its side and waits for the host to close.
func roundTrips(addr string, d time.Duration) (int, error) {
	c, err := dial(addr, "rr")
	if err != nil {
		return 0, err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(d + time.Minute))
	var b [1]byte
	n := 0
	for stop := time.Now().Add(d); time.Now().Before(stop); n++ {
		if _, err := c.Write(b[:]); err != nil {
			return n, err
		}
		if _, err := io.ReadFull(c, b[:]); err != nil {
			return n, err
		}
	}
	if err := c.CloseWrite(); err != nil {
		return n, err
	}
	_, err = io.Copy(io.Discard, c)
	return n, err
}

// cpuTimes are one of /proc/stat's "cpu" lines, in clock ticks: user,
// nice, system, idle, iowait, irq, softirq, steal.
type cpuTimes [8]uint64

// cpuLine is one /proc/stat CPU line: its label ("cpu" for the whole
// guest, "cpu0", ... for each online vCPU) and its times.
type cpuLine struct {
	name  string
	times cpuTimes
}

// readCPU reads /proc/stat's CPU lines: the whole guest's first, then each
// online vCPU's; nil if /proc/stat cannot be read.
func readCPU() []cpuLine {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return nil
	}
	var all []cpuLine
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) == 0 || !strings.HasPrefix(f[0], "cpu") {
			continue
		}
		c := cpuLine{name: f[0]}
		for i := range c.times {
			if i+1 < len(f) {
				fmt.Sscan(f[i+1], &c.times[i])
			}
		}
		all = append(all, c)
	}
	return all
}

// printCPU prints how the guest's CPUs spent a phase, the whole guest's
// ("send cpu:") and then each vCPU's ("send cpu0:", ...): busy (user,
// system, interrupts), idle (halted: waiting for the network or the VMM)
// and stolen (a vCPU that wanted to run and did not). A stream the guest's
// CPUs cannot feed shows busy near 100 %; one that waits on the VMM, idle.
// A line read at only one end of the phase (a vCPU gone offline) is left
// out.
func printCPU(phase string, a, b []cpuLine) {
	before := map[string]cpuTimes{}
	for _, c := range a {
		before[c.name] = c.times
	}
	for _, c := range b {
		start, ok := before[c.name]
		if !ok {
			continue
		}
		var d cpuTimes
		var total uint64
		for j := range d {
			d[j] = c.times[j] - start[j]
			total += d[j]
		}
		if total == 0 {
			continue
		}
		pct := func(v uint64) float64 { return 100 * float64(v) / float64(total) }
		busy := d[0] + d[1] + d[2] + d[5] + d[6]
		fmt.Printf("ember-bench: net info %s %s: busy %.0f%% (softirq %.0f%%), idle %.0f%%, steal %.0f%%\n",
			phase, c.name, pct(busy), pct(d[6]), pct(d[3]+d[4]), pct(d[7]))
	}
}

// irqRows are the /proc/interrupts rows printIRQs reports: the local
// timer, the three kinds of inter-processor interrupt, and the virtio
// devices' (matched by "virtio" in the row's name).
var irqRows = []string{"LOC", "RES", "CAL", "TLB"}

// readIRQs reads /proc/interrupts: each row's count summed over the
// vCPUs, by the row's name (its last field for a device's, "virtio0-input.0",
// its label for the rest, "LOC"); nil if it cannot be read.
func readIRQs() map[string]uint64 {
	b, err := os.ReadFile("/proc/interrupts")
	if err != nil {
		return nil
	}
	lines := strings.Split(string(b), "\n")
	if len(lines) == 0 {
		return nil
	}
	cpus := len(strings.Fields(lines[0]))
	counts := map[string]uint64{}
	for _, l := range lines[1:] {
		f := strings.Fields(l)
		if len(f) < 1+cpus {
			continue
		}
		name := strings.TrimSuffix(f[0], ":")
		if strings.Contains(l, "virtio") {
			name = f[len(f)-1]
		}
		var sum uint64
		for _, v := range f[1 : 1+cpus] {
			var n uint64
			fmt.Sscan(v, &n)
			sum += n
		}
		counts[name] = sum
	}
	return counts
}

// printIRQs prints the interrupts of a phase: how often the guest's timer
// fired, its vCPUs interrupted each other, and each virtio queue
// interrupted it.
func printIRQs(phase string, a, b map[string]uint64) {
	if a == nil || b == nil {
		return
	}
	var out []string
	for _, n := range irqRows {
		out = append(out, fmt.Sprintf("%s %d", n, b[n]-a[n]))
	}
	var queues []string
	for n := range b {
		if strings.HasPrefix(n, "virtio") && !strings.HasSuffix(n, "-config") {
			queues = append(queues, n)
		}
	}
	sort.Strings(queues)
	for _, n := range queues {
		out = append(out, fmt.Sprintf("%s %d", n, b[n]-a[n]))
	}
	fmt.Printf("ember-bench: net info %s irqs: %s\n", phase, strings.Join(out, ", "))
}
