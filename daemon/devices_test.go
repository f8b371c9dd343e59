package daemon

import (
	"bytes"
	"reflect"
	"strings"
	"testing"

	"ember/api"
)

// TestVMMatchesOpenAPI: every field of api.VM, its counters and its
// devices' totals among them, is a property of the document's VM schema,
// and every property a field.
func TestVMMatchesOpenAPI(t *testing.T) {
	doc := loadOpenAPI(t)
	compareSchema(t, doc, "VM", reflect.TypeFor[api.VM](), doc.Components.Schemas["VM"])
}

// TestDeviceMetrics: a VM's disks and network interfaces show in the
// metrics as counters by VM, device, and type or direction.
func TestDeviceMetrics(t *testing.T) {
	vms := []api.VM{{ID: "web", Counters: api.Counters{
		Disks: []api.DiskCounters{{Index: 1, Path: "/d.img", Reads: 7, ReadBytes: 28672, Writes: 2, WriteBytes: 1024, Flushes: 1, Errors: 3}},
		Nets:  []api.NetCounters{{Index: 0, TAP: "tap0", TXPackets: 5, TXBytes: 700, RXPackets: 4, RXBytes: 600, RXDropped: 1}},
	}}}
	var b bytes.Buffer
	writeDeviceMetrics(metricWriter{w: &b}, vms)
	for _, want := range []string{
		"# TYPE ember_vm_disk_requests_total counter",
		`ember_vm_disk_requests_total{vm="web",disk="1",type="read"} 7`,
		`ember_vm_disk_requests_total{vm="web",disk="1",type="flush"} 1`,
		`ember_vm_disk_bytes_total{vm="web",disk="1",direction="read"} 28672`,
		`ember_vm_disk_bytes_total{vm="web",disk="1",direction="write"} 1024`,
		`ember_vm_disk_errors_total{vm="web",disk="1",status="ioerr"} 3`,
		`ember_vm_net_packets_total{vm="web",net="0",direction="tx"} 5`,
		`ember_vm_net_bytes_total{vm="web",net="0",direction="rx"} 600`,
		`ember_vm_net_dropped_total{vm="web",net="0",direction="rx"} 1`,
	} {
		if !strings.Contains(b.String(), want+"\n") {
			t.Errorf("the metrics lack %s:\n%s", want, b.String())
		}
	}
}
