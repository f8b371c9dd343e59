// Package hypercall is ember's ACRN hypercall service (seed 000): the VM
// table, with the Service VM as VM 0; the permission model that decides,
// per caller and ring, whether a hypercall runs, is refused with -EINVAL, or
// raises #GP or #UD (acrn/permission); a handler per hypercall (hc_*.go,
// grouped as the seed groups them); and the upcalls that hand a User VM's
// I/O requests to its Service VM.
//
// It is built on ember's VM core (package hv) and nothing in hv knows it:
// a VM made with Service.NewVM has its PortHypercall trapped (hv.PortTrap)
// and its table entry removed when it is closed; a VM made by HC_CREATE_VM
// has no RAM of its own and gets the Service VM's memory mapped into it
// (hv.VM.MapMemory, through hypercall/memmap). The host control plane makes
// hypercalls as the Service VM with Service.Hypercall, pointer parameters in
// Service.ServiceMemory.
//
// The parts of the service that can stand alone are its subpackages, each
// tested alone: VM IDs (hypercall/vmid), a created VM's life cycle
// (hypercall/lifecycle), its lent memory (hypercall/memmap), its interrupt
// monitor (hypercall/intrmon) and the host's own facts (hypercall/hostinfo).
// What ACRN itself specifies is under acrn/: the permission rule
// (acrn/permission), the shared trace buffers (acrn/sbuf) and ACRN's vCPU
// registers in KVM's terms (acrn/kvmregs).
//
// Where to add a hypercall: its ID and structures go to package acrn, its
// handler to the hc_*.go file of its group, and the handlers map in
// hypercall.go names it; the permission model then applies by itself.
package hypercall
