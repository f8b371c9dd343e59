package machine

import (
	"fmt"
	"io"
)

// Report writes what a person needs to see why a running guest seems stuck,
// and lets it run on: every vCPU's registers, pending events and LAPIC, the
// interrupt controllers (hv.VM.Inspect, which pauses the VM for a moment),
// then COM1 and the virtio devices' queues (pc.Platform.Describe), then
// the disks' and network interfaces' totals (in two reports apart, a
// disk whose totals stand still while its queue holds chains has stopped
// answering). A vCPU stuck in ember is reported as such, and the devices
// are reported still.
func (m *Machine) Report(w io.Writer) error {
	s, err := m.VM.Inspect()
	if err == nil {
		err = s.Report(w)
	} else {
		_, err = fmt.Fprintf(w, "vCPUs: %v\n", err)
	}
	if err != nil {
		return err
	}
	if err := m.Platform.Describe(w); err != nil {
		return err
	}
	return m.describeTotals(w)
}

// describeTotals writes each disk's and network interface's totals
// (blk.Disk.Stats, the network device's Stats), a line each, by its place
// in the configuration; a disk a back-end process serves has its own.
func (m *Machine) describeTotals(w io.Writer) error {
	for i, d := range m.Disks {
		if d == nil {
			continue
		}
		s := d.Stats()
		if _, err := fmt.Fprintf(w, "disk %d: %d reads (%d bytes), %d writes (%d bytes), %d flushes, %d discards; %d I/O errors, %d unsupported\n",
			i, s.Reads, s.ReadBytes, s.Writes, s.WriteBytes, s.Flushes, s.Discards, s.Errors, s.Unsupported); err != nil {
			return err
		}
	}
	for i, n := range m.Nets {
		s := n.Stats()
		if _, err := fmt.Fprintf(w, "net %d: sent %d frames (%d bytes, %d dropped), received %d frames (%d bytes, %d dropped)\n",
			i, s.TXPackets, s.TXBytes, s.TXDropped, s.RXPackets, s.RXBytes, s.RXDropped); err != nil {
			return err
		}
	}
	return nil
}
