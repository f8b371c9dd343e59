// Package ioreq is ember's I/O request distribution: the one path every
// emulated guest access takes, in the ACRN shape of seeds 000 and 001.
//
// A vCPU that exits on a port, MMIO, PCI-configuration or write-protect access
// calls Dispatcher.Emulate. The access becomes a 256-byte acrn_io_request in
// that vCPU's slot of the VM's request Buffer (one 4 KiB page, 16 slots, the
// acrn_io_request_buffer layout) and moves through
//
//	FREE -> PENDING -> PROCESSING -> COMPLETE -> FREE
//
// with every state change an atomic store or compare-and-swap on the slot's
// processed field and every change checked (Buffer.Issue, Claim, Complete,
// Release). A Router picks the Client that claimed the address range for the
// request's type; an unclaimed read returns all ones, an unclaimed write is
// dropped, and both are counted.
//
// Three kinds of Client sit behind one interface:
//
//   - in-process Go devices (DeviceClient, InProcess): handled on the vCPU's
//     own goroutine, no wake-up at all; for a DeviceClient, or the unclaimed
//     default, the exit path skips the request entirely (Dispatcher.Direct);
//   - out-of-process device models (package devicemodel: its Server and
//     Conn): a process connects to a unix socket, gets the request buffer as
//     a memfd it maps, and a pair of eventfds; docs/ioreq-protocol.md is the
//     protocol;
//   - a Service VM guest (ServiceVMClient): requests are mirrored into a page
//     of the Service VM's RAM registered with HC_SET_IOREQ_BUFFER, an upcall
//     is raised, and HC_NOTIFY_REQUEST_FINISH completes them.
//
// A request that no client completes within Config.Timeout is reclaimed: the
// error is logged, the vCPU sees all ones and the VM goes on.
//
// The package knows nothing of KVM: ioeventfd and irqfd requests from device
// models are handed to an EventFDs implementation the VM side provides.
package ioreq
