// Package vtd models an Intel VT-d DMA and interrupt remapping unit (the
// "Intel Virtualization Technology for Directed I/O" architecture
// specification, the legacy root/context-table mode), as QEMU's
// intel-iommu presents one on its Q35 machine: the register page at
// RegisterBase (Q35's fixed address, where kvm-unit-tests' intel_iommu
// looks), DMA address translation through the guest's root, context and
// second-level page tables, queued invalidation, and interrupt remapping of
// remappable-format MSIs and IOAPIC redirection entries. It knows nothing of
// KVM: the owner gives it guest memory and a way to send the unit's own
// interrupts (package pc wires it, docs/qemu-devices.md).
//
// # What it offers
//
//   - VER 1.0; CAP: 8-bit domain IDs, 39- and 48-bit adjusted guest address
//     widths (3- and 4-level tables, MGAW 48), zero-length reads, 2 MiB and
//     1 GiB super pages, page-selective invalidation, one fault recording
//     register at 0x220; ECAP: queued invalidation, interrupt remapping
//     (xAPIC destinations: no extended interrupt mode), pass-through
//     contexts, the IOTLB registers at 0x200.
//   - GCMD/GSTS: a write of GCMD is compared with GSTS: TE, QIE, IRE and CFI
//     follow the written value (enable or disable), SRTP and SIRTP latch
//     RTADDR and IRTA and set RTPS and IRTPS, which stay set; WBF, SFL and
//     EAFL (nothing advertises them) are ignored. GCMD reads as zero.
//   - CCMD and the IOTLB register complete at once: ember caches no
//     translation (every DMA and every interrupt walks the guest's tables),
//     so an invalidation has nothing to drop; the actual granularity
//     reported is the one requested.
//   - Queued invalidation: a write of IQT with QIE set processes the
//     descriptors from IQH to IQT in guest RAM (128-bit descriptors): context
//     cache, IOTLB and interrupt entry cache invalidations complete at once,
//     an invalidation wait writes its status word (SW) and sets ICS.IWC with
//     an invalidation event (IF); anything else (an unknown type, a device
//     TLB invalidation, a descriptor or status address outside guest RAM, a
//     tail past the queue) stops the queue at that descriptor with FSTS.IQE
//     and a fault event.
//   - Faults: a DMA or interrupt request that cannot be translated is
//     refused and recorded (reason, source ID, address or interrupt index)
//     in the fault recording register, FSTS.PPF and FRI set, and a fault
//     event sent (FECTL, FEDATA, FEADDR) unless masked; a second fault
//     while the register is full sets FSTS.PFO. A context entry or IRTE
//     with FPD set refuses without recording.
//
// # Hostile input
//
// Every table entry and descriptor is read from guest RAM through the
// checked accessor (Memory); an entry outside RAM, a reserved bit set or a
// value the unit does not support is a recorded fault, never a panic and
// never an access outside RAM. FuzzTranslate and FuzzRemap drive the two
// decoders with arbitrary tables.
//
// # Interrupt remapping and KVM
//
// The unit turns a remappable-format request into the compatibility-format
// message it stands for (RemapMSI, IOAPICMessage); how such a message
// reaches the guest's LAPICs is the owner's business (package pc sends it
// with KVM_SIGNAL_MSI). Requests from an IOAPIC carry no source ID the unit
// could check (SourceUnknown), as in QEMU: IRTE source validation applies
// to MSIs of PCI functions only.
package vtd
