package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"slices"

	"github.com/spf13/cobra"

	"ember/internal/linuxguest"
	"ember/internal/tcpsegs"
	"ember/lab/internal/bootcost"
	"ember/lab/internal/netstream"
	"ember/virtio/vhost"
)

// timeNetCmd is the hidden command `lab net` runs inside the lab.
const timeNetCmd = "time-net"

// Where the benchmark's guests find the lab: the TAP's host end and the
// receiver's port.
const (
	netBenchTAP  = "embnetb0"
	netBenchPort = "5201"
	netBenchMAC  = "52:54:00:12:34:56"
)

// netCmdline is the guest command line of every network benchmark boot:
// the init gives eth0 its address, pings the host and runs netbench.
const netCmdline = "console=ttyS0 ember.end=poweroff ember.net=1 ember.netbench=" +
	linuxguest.HostIP + ":" + netBenchPort

func newNetCmd(o *options) *cobra.Command {
	return newGuestBenchCmd(o, guestBench{
		use:   "net [--kernel vmlinuz] [--reps N]",
		short: "measure TCP over virtio-net from inside a Linux guest under ember and under QEMU, in the lab",
		long: `net boots Debian's kernel (--kernel, default $EMBER_KERNEL: a
.../boot/vmlinuz-VERSION whose tree has the virtio modules, as .ci/run
extracts it) under ember (virtio-net on virtio-pci, --net tap=...) and under
QEMU (-accel kvm -M pc, virtio-net-pci on -netdev tap, with vhost=off and,
where the lab has /dev/vhost-net, vhost=on), all on the same TAP whose lab
end is ` + linuxguest.HostIP + `/24. A small guest program
(internal/linuxguest/netbench) streams TCP to a receiver in the lab for 5 s,
then receives from it for 5 s, then makes one-byte round trips to it for
3 s (netperf's TCP_RR: a packet's way through the VMM and back, alone); the
lab's side times all three on its own clock. Both TCPs, the lab's and the
guest's, hand their device whole 64 KiB packets whatever the rate
(tcp_min_tso_segs 44, internal/tcpsegs), so a stream's rate does not
depend on where it settled. It prints the medians of
--reps boots each, in MB/s and round trips/s, and ember's ratios. After
"--", --only and --compare BIN work as in lab virtio (an A/B comparison
of two ember builds, boot by boot), and --queues N makes the TAP
multi-queue and gives every subject's guest N queue pairs (ember's
queues=N; QEMU's queues=N with mq=on), with one more subject, "ember
threads=N": ember with a thread for each pair rather than its default.`,
		prog:  "netbench",
		inner: timeNetCmd,
	})
}

func newTimeNetCmd() *cobra.Command {
	var f benchFlags
	var queues int
	cmd := &cobra.Command{
		Use:    timeNetCmd,
		Hidden: true,
		Args:   cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if queues < 1 {
				return fmt.Errorf("--queues %d: at least 1", queues)
			}
			if err := makeTAP(netBenchTAP, linuxguest.HostIP+"/24", queues > 1); err != nil {
				return err
			}
			restore, err := tcpsegs.Pin(tcpsegs.Full) // whole GSO packets from the lab's TCP too
			if err != nil {
				return err
			}
			defer restore()
			defer exec.Command("ip", "link", "del", netBenchTAP).Run()
			ln, err := net.Listen("tcp", net.JoinHostPort(linuxguest.HostIP, netBenchPort))
			if err != nil {
				return err
			}
			srv := netstream.NewServer(ln, meterStream)
			defer srv.Close()
			subjects := netSubjects(f.ember, f.kernel, f.initrd, queues)
			if _, err := os.Stat(vhost.NetPath); err != nil {
				fmt.Println("no /dev/vhost-net in the lab: ember and QEMU run with vhost=off only")
			}
			subjects = f.compared(f.pick(f.wrapped(subjects)))
			t, err := f.table(benchTable{
				title:    fmt.Sprintf("TCP over virtio-net from inside Debian's kernel to and from the lab (TAP), 2 vCPUs, %d queue pair(s), inside the lab", queues),
				measures: netMeasures(),
				boot: func(ctx context.Context, argv []string) (map[string]float64, bootOutput, error) {
					return netBoot(ctx, srv, argv)
				},
			})
			if err != nil {
				return err
			}
			return runBench(cmd.Context(), os.Stdout, subjects, f.reps, t)
		},
	}
	f.add(cmd)
	cmd.Flags().IntVar(&queues, "queues", 1, "queue pairs of every subject's virtio-net, on a multi-queue TAP when more than 1")
	return cmd
}

// netSubjects are ember and QEMU on the benchmark's TAP, each with
// vhost-net too where the lab has it, their virtio-net with queues queue
// pairs (a multi-queue TAP's when more than one).
func netSubjects(ember, kernel, initrd string, queues int) []subject {
	qemuTAP, qemuDev, emberNet := "", "", ""
	if queues > 1 {
		// QEMU's MSI-X vectors: one a queue, one for the control queue and
		// one for configuration changes, as its documentation asks.
		qemuTAP = fmt.Sprintf(",queues=%d", queues)
		qemuDev = fmt.Sprintf(",mq=on,vectors=%d", 2*queues+2)
		emberNet = fmt.Sprintf(",queues=%d", queues)
	}
	qemu := func(vhost string) subject {
		return subject{name: "QEMU vhost=" + vhost, argv: qemuGuest("pc", 512, 2,
			"-netdev", "tap,id=n0,ifname="+netBenchTAP+",script=no,downscript=no,vhost="+vhost+qemuTAP,
			"-device", "virtio-net-pci,netdev=n0,mac="+netBenchMAC+qemuDev,
			"-kernel", kernel, "-initrd", initrd, "-append", netCmdline)}
	}
	emberRun := func(name, vhost, more string) subject {
		return subject{name: name, argv: []string{ember, "run", "--kernel", kernel, "--initrd", initrd,
			"--memory", "512M", "--cpus", "2", "--net", "tap=" + netBenchTAP + ",mac=" + netBenchMAC + ",vhost=" + vhost + emberNet + more, "--cmdline", netCmdline}}
	}
	s := []subject{emberRun("ember (virtio-pci)", "off", ""), qemu("off")}
	if queues > 1 {
		// ember's default here is one thread for every pair (machine's
		// NetThreads: the lab has no CPU to spare beside the vCPUs); the
		// other way, a thread a pair, beside it.
		s = append(s, emberRun(fmt.Sprintf("ember threads=%d", queues), "off", fmt.Sprintf(",threads=%d", queues)))
	}
	if _, err := os.Stat(vhost.NetPath); err == nil {
		s = append(s, emberRun("ember vhost=on", "on", ""), qemu("on"))
	}
	return s
}

// makeTAP creates the persistent TAP name with addr on the lab's side, up
// (linuxguest.AddTAP), deleting one a killed run left; a multi-queue one
// if multiQueue.
func makeTAP(name, addr string, multiQueue bool) error {
	exec.Command("ip", "link", "del", name).Run() // one a killed run left
	return linuxguest.AddTAP("ip", name, addr, multiQueue)
}

// meterStream is the benchmark's netstream.Meter: what the lab's CPU and
// KVM did while a stream ran, per megabyte (bootcost.PhaseMeasures).
func meterStream() func(mb float64) map[string]float64 {
	before := bootcost.TakeSnapshot(netBenchTAP)
	return func(mb float64) map[string]float64 { return bootcost.TakeSnapshot(netBenchTAP).Cost(before, mb) }
}

// netMeasures are the table's rows: the streams' and round trips' rates,
// then what each stream cost, and the lab sender's account of the stream
// to the guest.
func netMeasures() []string {
	m := slices.Clone(netstream.Measures)
	for _, stream := range netstream.Streams {
		for _, c := range bootcost.PhaseMeasures {
			m = append(m, netstream.CostName(stream, c))
		}
	}
	for _, c := range netstream.SenderMeasures {
		m = append(m, netstream.CostName(netstream.MeasureGuestRecv, c))
	}
	return m
}

// netBoot runs one boot to its end and returns the lab's measures of the
// streams its guest made.
func netBoot(ctx context.Context, srv *netstream.Server, argv []string) (map[string]float64, bootOutput, error) {
	srv.Reset()
	out, err := bootConsole(ctx, argv)
	if err != nil {
		return nil, out, err
	}
	m, errs := srv.Results()
	if slices.ContainsFunc(netstream.Measures, func(k string) bool { _, ok := m[k]; return !ok }) {
		if len(errs) > 0 {
			return nil, out, fmt.Errorf("%v; %w", errs, missing(m, out.console))
		}
		return nil, out, missing(m, out.console)
	}
	return m, out, nil
}
