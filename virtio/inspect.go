package virtio

import (
	"encoding/binary"
	"fmt"
	"strings"

	"ember/memory"
)

// typeNames are the device types ember has, by device ID (§5).
var typeNames = map[uint16]string{
	IDNet: "net", IDBlock: "block", IDConsole: "console", IDRNG: "rng", IDBalloon: "balloon", IDVsock: "vsock",
}

// TypeName names a device type for people: "block" for IDBlock; an ID ember
// has no device for is given as a number.
func TypeName(id uint16) string {
	if n, ok := typeNames[id]; ok {
		return n
	}
	return fmt.Sprintf("type %d", id)
}

// RingState is what a split virtqueue's rings in guest memory say at one
// moment: the driver's available index and flags with the used_event it
// asked for, and the used index and flags the device last published with its
// avail_event. AvailIdx-UsedIdx chains are with the device (or not yet
// returned); a used index past used_event that brought no interrupt is a lost
// notification.
type RingState struct {
	AvailFlags, AvailIdx, UsedEvent uint16
	UsedFlags, UsedIdx, AvailEvent  uint16
}

// ReadRing reads the ring indices of a queue of size entries whose driver
// area is at driver and device area at device, through the checked
// accessor: an area outside guest RAM is an error.
func ReadRing(mem *memory.Guest, size uint16, driver, device uint64) (RingState, error) {
	q := Queue{Size: size, Driver: driver, Device: device}
	var r RingState
	for _, f := range []struct {
		v   *uint16
		gpa uint64
	}{
		{&r.AvailFlags, driver}, {&r.AvailIdx, q.availIdxAddr()}, {&r.UsedEvent, q.usedEvent()},
		{&r.UsedFlags, device}, {&r.UsedIdx, q.usedIdxAddr()}, {&r.AvailEvent, q.availEvent()},
	} {
		b, err := mem.Slice(f.gpa, 2)
		if err != nil {
			return RingState{}, fmt.Errorf("virtio: reading a ring index at %#x: %w", f.gpa, err)
		}
		*f.v = binary.LittleEndian.Uint16(b)
	}
	return r, nil
}

// String gives the state as a Report line shows it.
func (r RingState) String() string {
	return fmt.Sprintf("avail %d (flags %#x, used_event %d) used %d (flags %#x, avail_event %d), %d in flight",
		r.AvailIdx, r.AvailFlags, r.UsedEvent, r.UsedIdx, r.UsedFlags, r.AvailEvent, r.AvailIdx-r.UsedIdx)
}

// statusBits names the device status bits (§2.1).
var statusBits = []struct {
	bit  uint8
	name string
}{
	{StatusAcknowledge, "ACKNOWLEDGE"}, {StatusDriver, "DRIVER"}, {StatusFeaturesOK, "FEATURES_OK"},
	{StatusDriverOK, "DRIVER_OK"}, {StatusDeviceNeedsReset, "DEVICE_NEEDS_RESET"}, {StatusFailed, "FAILED"},
}

// StatusString names the bits of a device status: "0xf (ACKNOWLEDGE DRIVER
// FEATURES_OK DRIVER_OK)".
func StatusString(s uint8) string {
	var names []string
	for _, b := range statusBits {
		if s&b.bit != 0 {
			names = append(names, b.name)
		}
	}
	return fmt.Sprintf("%#x (%s)", s, strings.Join(names, " "))
}

// DescribeQueues gives a line per enabled queue for a transport's report:
// its size and the rings' state in guest memory, and what vector says of its
// interrupt (nil: nothing).
func (r *Regs) DescribeQueues(mem *memory.Guest, vector func(q int, v uint16) string) []string {
	var lines []string
	for i, q := range r.Queues {
		if !q.Enable {
			continue
		}
		line := fmt.Sprintf("queue %d: size %d", i, q.Size)
		if vector != nil {
			line += ", " + vector(i, q.Vector)
		}
		if st, err := ReadRing(mem, q.Size, q.Driver, q.Device); err != nil {
			line += ": " + err.Error()
		} else {
			line += ": " + st.String()
		}
		lines = append(lines, line)
	}
	return lines
}
