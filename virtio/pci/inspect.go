package pci

import (
	"fmt"

	"ember/virtio"
)

// Describe gives lines for a report on a guest that seems stuck (ember run's
// SIGUSR1): the device, its status and how its interrupts go, then a line
// per enabled queue with its MSI-X vector and the rings' state in guest
// memory. It takes the function's lock, never the device's.
func (f *Function) Describe() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	mode := "INTx"
	if f.msix.enabled {
		mode = "MSI-X"
		if f.msix.masked {
			mode += " (function masked)"
		}
	}
	s := f.stats
	head := fmt.Sprintf("virtio-pci %s: status %s, interrupts by %s, ISR %#x; %d notifications, %d interrupts sent",
		virtio.TypeName(f.dev.Type()), virtio.StatusString(f.regs.Status), mode, f.regs.isr,
		s.NotifyMMIO+s.NotifyPort+s.NotifyEventFD, s.IRQFD+s.MSI+s.INTx)
	return append([]string{head}, f.regs.DescribeQueues(f.cfg.Mem, f.msix.describe)...)
}

// describe says what vector v, queue q's, is: live (able to send), masked,
// and whether a message waits in the pending-bit array.
func (t *msixTable) describe(_ int, v uint16) string {
	if int(v) >= t.n {
		return "no vector"
	}
	state := "live"
	if !t.live(int(v)) {
		state = "masked"
	}
	if t.pending[v] {
		state += ", pending"
	}
	return fmt.Sprintf("vector %d %s", v, state)
}
