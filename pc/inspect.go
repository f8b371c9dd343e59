package pc

import (
	"fmt"
	"io"
)

// Describe writes a line per device state worth seeing when a guest seems
// stuck (ember run's SIGUSR1): COM1's registers and interrupt line, then
// every virtio device's status and queues, named by PCI slot or MMIO base.
func (p *Platform) Describe(w io.Writer) error {
	lines := []string{"COM1: " + p.COM1.Describe()}
	for _, f := range p.virtio {
		for _, l := range f.Describe() {
			lines = append(lines, fmt.Sprintf("PCI 00:%02x.0 %s", f.slot, l))
		}
	}
	for _, d := range p.mmio {
		for _, l := range d.t.Describe() {
			lines = append(lines, fmt.Sprintf("MMIO %#x %s", d.base, l))
		}
	}
	for _, l := range lines {
		if _, err := fmt.Fprintln(w, l); err != nil {
			return err
		}
	}
	return nil
}
