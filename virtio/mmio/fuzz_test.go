package mmio

import (
	"encoding/binary"
	"testing"

	"ember/virtio"
)

// Fuzz operations, eight bytes each: the kind, the offset (two bytes,
// little-endian), the access width (1 << byte%4) and the value.
const (
	fuzzRead      = 0 // the driver reads the register block
	fuzzWrite     = 1 // the driver writes it
	fuzzInterrupt = 2 // the device reports used buffers of the queue in the value
	fuzzOps       = 3
)

// fuzzOp encodes one operation of FuzzRegisters' input.
func fuzzOp(kind byte, off uint16, v uint32) []byte {
	b := []byte{kind, byte(off), byte(off >> 8), 2, 0, 0, 0, 0}
	binary.LittleEndian.PutUint32(b[4:], v)
	return b
}

// fuzzSeedStart is a driver's whole initialisation of queue 0 at base,
// then a notification and a device interrupt acknowledged.
func fuzzSeedStart(base uint64) []byte {
	s := virtio.StatusAcknowledge | virtio.StatusDriver
	in := fuzzOp(fuzzWrite, regStatus, uint32(s))
	in = append(in, fuzzOp(fuzzWrite, regDriverFeatSel, 1)...)
	in = append(in, fuzzOp(fuzzWrite, regDriverFeatures, 1)...) // VERSION_1
	in = append(in, fuzzOp(fuzzWrite, regStatus, uint32(s|virtio.StatusFeaturesOK))...)
	in = append(in, fuzzOp(fuzzWrite, regQueueSel, 0)...)
	in = append(in, fuzzOp(fuzzWrite, regQueueNum, 64)...)
	for i, a := range []uint64{base, base + 0x1000, base + 0x2000} {
		in = append(in, fuzzOp(fuzzWrite, regQueueDescLow+uint16(i)*0x10, uint32(a))...)
	}
	in = append(in, fuzzOp(fuzzWrite, regQueueReady, 1)...)
	in = append(in, fuzzOp(fuzzWrite, regStatus, uint32(s|virtio.StatusFeaturesOK|virtio.StatusDriverOK))...)
	in = append(in, fuzzOp(fuzzWrite, regQueueNotify, 0)...)
	in = append(in, fuzzOp(fuzzInterrupt, 0, 0)...)
	in = append(in, fuzzOp(fuzzRead, regInterruptStatus, 0)...)
	return append(in, fuzzOp(fuzzWrite, regInterruptACK, interruptUsed)...)
}

// FuzzRegisters drives a transport through any sequence of register
// accesses a hostile driver could make (any offset below Size, any width
// and value: features, queue sizes and addresses outside guest RAM, status
// in any order, notifications of any queue), with the device raising used
// buffer interrupts between them. The transport must not panic; the
// identity registers always read as virtio-mmio's; the interrupt line is
// high exactly while InterruptStatus is not zero; the device is never
// activated twice without a reset between, each time with queues no larger
// than their maximum, and is notified only of queues it has.
func FuzzRegisters(f *testing.F) {
	f.Add([]byte{})
	f.Add(fuzzSeedStart(0x10000))
	f.Add(fuzzSeedStart(0xfffff000)) // rings outside guest RAM: NEEDS_RESET
	f.Add(append(fuzzSeedStart(0x10000), fuzzSeedStart(0x20000)...))
	f.Fuzz(func(t *testing.T, data []byte) {
		r := newRig(t)
		sizes := r.dev.QueueSizes()
		for ; len(data) >= 8; data = data[8:] {
			off := uint64(binary.LittleEndian.Uint16(data[1:])) % Size
			buf := make([]byte, 1<<(data[3]%4))
			copy(buf, data[4:8])
			switch data[0] % fuzzOps {
			case fuzzRead:
				r.tr.Read(off, buf)
			case fuzzWrite:
				r.tr.Write(off, buf)
			case fuzzInterrupt:
				if len(r.dev.Activations()) > 0 {
					r.dev.Interrupt(int(data[4]) % len(sizes))
				}
			}
			r.checkInvariants(sizes)
		}
		r.tr.Reset()
		if r.line.high {
			t.Fatal("the interrupt line is high after the machine's reset")
		}
	})
}

// checkInvariants fails the test where the transport's state is not one
// the virtio-mmio registers allow.
func (r *rig) checkInvariants(sizes []uint16) {
	t := r.t
	t.Helper()
	for _, id := range []struct {
		off  uint64
		want uint32
	}{{regMagic, magic}, {regVersion, version}, {regVendorID, vendorID}} {
		if got := r.get(id.off); got != id.want {
			t.Fatalf("register %#x reads %#x, want %#x", id.off, got, id.want)
		}
	}
	if isr := r.get(regInterruptStatus); r.line.high != (isr != 0) {
		t.Fatalf("interrupt line high %v with InterruptStatus %#x", r.line.high, isr)
	}
	acts := r.dev.Activations()
	if len(acts) > r.dev.Resets()+1 {
		t.Fatalf("%d activations with %d resets", len(acts), r.dev.Resets())
	}
	for _, qs := range acts {
		for i, q := range qs {
			if q != nil && q.Size > sizes[i] {
				t.Fatalf("queue %d activated with size %d above its maximum %d", i, q.Size, sizes[i])
			}
		}
	}
	for _, q := range r.dev.Notified() {
		if q < 0 || q >= len(sizes) {
			t.Fatalf("the device was notified of queue %d of %d", q, len(sizes))
		}
	}
}
