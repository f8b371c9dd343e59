package pci

import (
	"encoding/binary"
	"strings"
	"testing"

	"ember/virtio"
)

// TestDescribe: the report lines of a function follow what the driver set
// up: the status bits, the interrupt mode, and per enabled queue its vector
// (masked with a message pending, then live) and the ring indices in guest
// memory.
func TestDescribe(t *testing.T) {
	r := newVRig(t)
	if got := r.f.Describe(); len(got) != 1 || !strings.HasSuffix(got[0], ": status 0x0 (), interrupts by INTx, ISR 0x0; 0 notifications, 0 interrupts sent") {
		t.Errorf("before the driver: %q", got)
	}
	r.start()
	// The driver made 5 chains available (avail->idx 5, used_event 2); the
	// device returned 3 (used->idx 3, avail_event 5).
	le := binary.LittleEndian
	put := func(gpa uint64, v uint16) {
		b, err := r.mem.Slice(gpa, 2)
		if err != nil {
			t.Fatal(err)
		}
		le.PutUint16(b, v)
	}
	put(0x11000+2, 5)
	put(0x11000+4+2*64, 2)
	put(0x12000, 1) // VIRTQ_USED_F_NO_NOTIFY
	put(0x12000+2, 3)
	put(0x12000+4+8*64, 5)
	r.dev.Interrupt(0) // vector 1 is masked: the message waits in the PBA
	want := []string{
		"virtio-pci " + virtio.TypeName(r.dev.Type()) + ": status 0xf (ACKNOWLEDGE DRIVER FEATURES_OK DRIVER_OK), interrupts by MSI-X, ISR 0x0; 0 notifications, 0 interrupts sent",
		"queue 0: size 64, vector 1 masked, pending: avail 5 (flags 0x0, used_event 2) used 3 (flags 0x1, avail_event 5), 2 in flight",
	}
	if got := r.f.Describe(); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("Describe:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	r.setEntry(1, msgA, false) // unmasked: the pending message goes
	if got := r.f.Describe(); len(got) != 2 || !strings.Contains(got[1], "vector 1 live: ") || !strings.Contains(got[0], "1 interrupts sent") {
		t.Errorf("after unmasking: %q", got)
	}
}
