package daemon

import (
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"

	"ember/api"
)

// writeMetrics writes the daemon's metrics in Prometheus's text exposition
// format (version 0.0.4): VM counts by state, and per VM its exits by
// reason, I/O requests by client, guest CPU time and its disks' and network
// interfaces' totals, and the hypercalls by ID and result.
func (d *Daemon) writeMetrics(w io.Writer) {
	vms := d.List()
	m := metricWriter{w: w}

	m.family("ember_vms", "gauge", "VMs the daemon holds, by state.")
	states := map[string]int{api.StateCreated: 0, api.StateRunning: 0, api.StatePaused: 0, api.StateStopped: 0}
	for _, v := range vms {
		states[v.State]++
	}
	for _, st := range sortedKeys(states) {
		m.sample("ember_vms", float64(states[st]), "state", st)
	}

	m.family("ember_vm_exits_total", "counter", "VM exits handled, by VM and KVM exit reason.")
	for _, v := range vms {
		for _, r := range sortedKeys(v.Counters.ExitsByReason) {
			m.sample("ember_vm_exits_total", float64(v.Counters.ExitsByReason[r]), "vm", v.ID, "reason", r)
		}
	}
	m.family("ember_vm_io_requests_total", "counter", "Emulated accesses, by VM and the client that served them.")
	for _, v := range vms {
		for _, c := range sortedKeys(v.Counters.IORequests) {
			m.sample("ember_vm_io_requests_total", float64(v.Counters.IORequests[c]), "vm", v.ID, "client", c)
		}
	}
	m.family("ember_vm_guest_seconds_total", "counter", "CPU time the VM's vCPUs spent in guest mode.")
	for _, v := range vms {
		m.sample("ember_vm_guest_seconds_total", v.Counters.GuestTimeSeconds, "vm", v.ID)
	}
	m.family("ember_vm_boots_total", "counter", "Boots of the VM's machine (start, restart, guest reboots).")
	for _, v := range vms {
		if v.Origin == api.OriginAPI {
			m.sample("ember_vm_boots_total", float64(v.Boots), "vm", v.ID)
		}
	}
	writeDeviceMetrics(m, vms)
	m.family("ember_hypercalls_total", "counter", "ACRN hypercalls handled, by hypercall and result (ok, an errno, #GP or #UD).")
	if d.hc != nil {
		for _, c := range d.hc.Counts() {
			m.sample("ember_hypercalls_total", float64(c.N), "hypercall", c.ID.String(), "result", c.Result)
		}
	}
}

// metricWriter writes families and samples.
type metricWriter struct{ w io.Writer }

func (m metricWriter) family(name, typ, help string) {
	fmt.Fprintf(m.w, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, typ)
}

// sample writes one line; labels are name, value pairs.
func (m metricWriter) sample(name string, v float64, labels ...string) {
	var b strings.Builder
	b.WriteString(name)
	if len(labels) > 0 {
		b.WriteByte('{')
		for i := 0; i+1 < len(labels); i += 2 {
			if i > 0 {
				b.WriteByte(',')
			}
			fmt.Fprintf(&b, "%s=\"%s\"", labels[i], labelEscaper.Replace(labels[i+1]))
		}
		b.WriteByte('}')
	}
	fmt.Fprintf(m.w, "%s %v\n", b.String(), v)
}

// labelEscaper escapes a label value as the format wants.
var labelEscaper = strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`)

// sortedKeys returns m's keys in order, for a stable exposition.
func sortedKeys[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

// deviceFamilies are the metric families of the VMs' devices: each
// gives the samples of one disk (disk) or one network interface (net).
var deviceFamilies = []struct {
	name, help string
	disk       func(api.DiskCounters) []labelled
	net        func(api.NetCounters) []labelled
}{
	{name: "ember_vm_disk_requests_total", help: "Disk requests answered, by VM, disk and type.",
		disk: func(d api.DiskCounters) []labelled {
			return []labelled{{"type", "read", d.Reads}, {"type", "write", d.Writes}, {"type", "flush", d.Flushes}, {"type", "discard", d.Discards}}
		}},
	{name: "ember_vm_disk_bytes_total", help: "Bytes disk requests moved, by VM, disk and direction.",
		disk: func(d api.DiskCounters) []labelled {
			return []labelled{{"direction", "read", d.ReadBytes}, {"direction", "write", d.WriteBytes}}
		}},
	{name: "ember_vm_disk_errors_total", help: "Disk requests answered with an error, by VM, disk and status.",
		disk: func(d api.DiskCounters) []labelled {
			return []labelled{{"status", "ioerr", d.Errors}, {"status", "unsupp", d.Unsupported}}
		}},
	{name: "ember_vm_net_packets_total", help: "Frames through a network interface, by VM, interface and direction (tx: from the guest).",
		net: func(n api.NetCounters) []labelled {
			return []labelled{{"direction", "tx", n.TXPackets}, {"direction", "rx", n.RXPackets}}
		}},
	{name: "ember_vm_net_bytes_total", help: "Bytes of those frames, by VM, interface and direction.",
		net: func(n api.NetCounters) []labelled {
			return []labelled{{"direction", "tx", n.TXBytes}, {"direction", "rx", n.RXBytes}}
		}},
	{name: "ember_vm_net_dropped_total", help: "Frames dropped, by VM, interface and direction.",
		net: func(n api.NetCounters) []labelled {
			return []labelled{{"direction", "tx", n.TXDropped}, {"direction", "rx", n.RXDropped}}
		}},
}

// writeDeviceMetrics writes the totals of the VMs' disks and network
// interfaces (api.Counters' Disks and Nets), each named by its place in
// its VM's configuration.
func writeDeviceMetrics(m metricWriter, vms []api.VM) {
	for _, f := range deviceFamilies {
		m.family(f.name, "counter", f.help)
		for _, v := range vms {
			if f.disk != nil {
				for _, d := range v.Counters.Disks {
					m.samples(f.name, f.disk(d), "vm", v.ID, "disk", strconv.Itoa(d.Index))
				}
			}
			if f.net != nil {
				for _, n := range v.Counters.Nets {
					m.samples(f.name, f.net(n), "vm", v.ID, "net", strconv.Itoa(n.Index))
				}
			}
		}
	}
}

// samples writes one sample for each of ls, with labels and its own.
func (m metricWriter) samples(name string, ls []labelled, labels ...string) {
	for _, l := range ls {
		m.sample(name, float64(l.v), append(labels, l.label, l.value)...)
	}
}

// labelled is one sample of a device's family: a label, its value and the
// count.
type labelled struct {
	label, value string
	v            uint64
}
