// Package acrn is ember's copy of the ACRN hypervisor ABI: hypercall IDs
// and every structure a hypercall or an HSM ioctl passes through guest
// memory, each as a plain Go struct with the byte layout of its C original.
// The 256-byte I/O request and its state machine are package
// acrn/iorequest; this package's layout test checks both packages'
// structures against the C headers.
//
// The numbers come from three sources, in this order of authority:
//
//   - seed 000 (the ACRN "Hypercall APIs" reference) and seed 003 (hypercall
//     restrictions), which fix the set of hypercalls and their parameters;
//   - ACRN's public headers acrn_common.h and acrn_hv_defs.h at the release
//     the seed documents (v2.6: it still calls the Service VM "SOS" and still
//     has HC_GET_PLATFORM_INFO), for IDs, constants and hypervisor-only
//     layouts;
//   - Linux's uapi header <linux/acrn.h> (seed 001), for the HSM side.
//
// Where a seed and a newer header disagree, the seed wins and a comment at the
// definition says so.
//
// Every structure implements [Codec]: Encode writes exactly Size() bytes in
// little-endian C layout, Decode reads them back. Decode never panics and
// reports a short buffer with an error wrapping [ErrShortBuffer]; nothing in
// this package casts guest bytes to Go types with unsafe. The structures go
// through encoding/binary, whose reflection cost is negligible next to a
// hypercall (acrn/internal/cabi, shared with acrn/iorequest).
//
// The package imports nothing of ember outside acrn; kvm, hv, devices and
// vmm build on it.
package acrn
