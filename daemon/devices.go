package daemon

import (
	"ember/api"
	"ember/machine"
)

// deviceCounters reads the totals of m's disks served in ember's process
// and of its network interfaces, named by their place in cfg, the
// configuration m was built from.
func deviceCounters(m *machine.Machine, cfg *machine.Config) ([]api.DiskCounters, []api.NetCounters) {
	var disks []api.DiskCounters
	for i, d := range m.Disks {
		if d == nil || i >= len(cfg.Disks) {
			continue // served by a back-end process, which keeps its own
		}
		s := d.Stats()
		disks = append(disks, api.DiskCounters{Index: i, Path: cfg.Disks[i].Path,
			Reads: s.Reads, ReadBytes: s.ReadBytes, Writes: s.Writes, WriteBytes: s.WriteBytes,
			Flushes: s.Flushes, Discards: s.Discards, Errors: s.Errors, Unsupported: s.Unsupported})
	}
	var nets []api.NetCounters
	for i, n := range m.Nets {
		if i >= len(cfg.Nets) {
			break
		}
		s := n.Stats()
		nets = append(nets, api.NetCounters{Index: i, TAP: cfg.Nets[i].TAP,
			TXPackets: s.TXPackets, TXBytes: s.TXBytes, TXDropped: s.TXDropped,
			RXPackets: s.RXPackets, RXBytes: s.RXBytes, RXDropped: s.RXDropped})
	}
	return disks, nets
}
