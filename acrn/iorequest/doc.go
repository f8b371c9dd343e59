// Package iorequest is ACRN's I/O request ABI (acrn.h, struct
// acrn_io_request and friends): the one-page buffer of 16 request slots a
// VM shares with its Service VM, each slot a port, MMIO, PCI configuration
// or write-protection request with its state (FREE, PENDING, PROCESSING,
// COMPLETE) at a fixed offset, for atomic access. Package ioreq moves
// requests through it; package acrn has the hypercall and ioctl ABI around
// it. Decode and Validate treat every byte as hostile: a short buffer or a
// value the ABI does not define is an error (acrn.ErrShortBuffer,
// acrn.ErrInvalid), never a panic.
package iorequest
