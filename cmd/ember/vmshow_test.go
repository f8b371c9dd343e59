package main

import (
	"bytes"
	"strings"
	"testing"

	"ember/api"
	"ember/machine"
)

// TestShowVMPrintsDeviceTotals: `ember vm show` prints each disk's and
// network interface's totals from the VM's counters, a line each.
func TestShowVMPrintsDeviceTotals(t *testing.T) {
	vm := api.VM{ID: "web", State: api.StateRunning, Origin: api.OriginAPI,
		Config: &machine.Config{Disks: []machine.Disk{{Path: "/d.img"}}, Nets: []machine.Net{{TAP: "tap0"}}},
		Counters: api.Counters{
			Disks: []api.DiskCounters{{Index: 0, Path: "/d.img", Reads: 7, ReadBytes: 28672, Writes: 2, WriteBytes: 1024, Flushes: 1, Errors: 1, Unsupported: 1}},
			Nets:  []api.NetCounters{{Index: 0, TAP: "tap0", TXPackets: 5, TXBytes: 700, RXPackets: 4, RXBytes: 600, RXDropped: 1}},
		}}
	var b bytes.Buffer
	showVM(&b, vm)
	for _, want := range []string{
		"Disk 0 I/O 7 reads (28672 bytes), 2 writes (1024 bytes), 1 flushes, 0 discards; 2 errors",
		"Net 0 traffic sent 5 frames (700 bytes), received 4 (600 bytes); dropped 0 sent, 1 received",
	} {
		if !strings.Contains(strings.Join(strings.Fields(b.String()), " "), want) { // the columns' padding aside
			t.Errorf("ember vm show lacks %q:\n%s", want, b.String())
		}
	}
}
