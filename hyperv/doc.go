// Package hyperv is the host's side of the Hyper-V synthetic interrupt
// controller (SynIC) that KVM emulates for a guest with Hyper-V
// enlightenments: what a VMM does that KVM leaves to it. KVM delivers a
// SINT (synthetic interrupt source) once asked, runs the SynIC timers and
// reports the guest's SynIC MSR writes; the message and event-flag pages
// the guest places with those MSRs, and the hypercalls that post a message
// or signal an event to a host-side connection (HvPostMessage,
// HvSignalEvent), are the VMM's. This package holds that part as logic on
// guest memory, with no KVM: the layout of messages and event flags, how a
// message goes into a slot that may be busy (the pending-flag protocol of
// the Hyper-V TLFS), the one message a connection may have in flight, the
// decoding and checking of the hypercalls' input, and the table of
// connections they reach. Package hv wires it to KVM (SINT routes, exits).
//
// Everything here reads what the guest wrote: a hypercall's input, its
// page addresses. Bad input gets the Hyper-V status the TLFS (or, where it
// is silent, QEMU) gives it; nothing reaches outside guest RAM.
package hyperv
