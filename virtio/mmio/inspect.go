package mmio

import (
	"fmt"

	"ember/virtio"
)

// Describe gives lines for a report on a guest that seems stuck (ember run's
// SIGUSR1): the device, its status and interrupt status, then a line per
// enabled queue with the rings' state in guest memory.
func (t *Transport) Describe() []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	head := fmt.Sprintf("virtio-mmio %s: status %s, interrupt status %#x",
		virtio.TypeName(t.dev.Type()), virtio.StatusString(t.regs.Status), t.isr)
	return append([]string{head}, t.regs.DescribeQueues(t.cfg.Mem, nil)...)
}
