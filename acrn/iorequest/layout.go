package iorequest

import "fmt"

// Sizes and offsets of the I/O request and its buffer.
const (
	// IORequestSize is sizeof(struct acrn_io_request): 256, the struct is
	// __aligned(256).
	IORequestSize = 256
	// IORequestMax is ACRN_IO_REQUEST_MAX, the number of slots in the
	// buffer: one per vCPU, so a VM has at most 16 vCPUs that can trap I/O.
	IORequestMax = 16
	// RequestBufferSize is sizeof(struct acrn_io_request_buffer): one 4 KiB
	// page holding IORequestMax slots.
	RequestBufferSize = IORequestSize * IORequestMax
	// CompletionPollingOffset is the byte offset of completion_polling.
	CompletionPollingOffset = 4
	// ReqsOffset is the byte offset of the reqs union ("Byte offset: 64").
	ReqsOffset = 64
	// ReqsSize is the size of the reqs union (its data[8] member).
	ReqsSize = 64
	// KernelHandledOffset is the byte offset of kernel_handled.
	KernelHandledOffset = 132
	// StateOffset is the byte offset of processed, the state field (136).
	// It is 4-byte aligned, so a uint32 atomic at this offset of a slot in
	// a page-aligned mapping is a natural x86 atomic.
	StateOffset = 136

	// PIORequestSize is sizeof(struct acrn_pio_request).
	PIORequestSize = 32
	// MMIORequestSize is sizeof(struct acrn_mmio_request).
	MMIORequestSize = 32
	// PCIRequestSize is sizeof(struct acrn_pci_request).
	PCIRequestSize = 48
)

// SlotOffset returns the byte offset of slot i in the request buffer. It
// panics if i is outside [0, IORequestMax): slot numbers are vCPU IDs the
// caller has already checked.
func SlotOffset(i int) int {
	if i < 0 || i >= IORequestMax {
		panic(fmt.Sprintf("acrn: I/O request slot %d out of range [0,%d)", i, IORequestMax))
	}
	return i * IORequestSize
}

// SlotStateOffset returns the byte offset, in the request buffer, of slot
// i's state field: the address the I/O path loads and stores atomically.
func SlotStateOffset(i int) int { return SlotOffset(i) + StateOffset }
