// Package fwtables writes the tables a PC's firmware leaves in guest RAM for
// the operating system: the Intel MP table (mptable.go), for guests without
// ACPI, and the ACPI tables (acpi.go) — RSDP, XSDT, FADT with its FACS, a
// DSDT whose AML this package encodes (aml.go), the MADT, and the DMAR
// describing the VT-d unit (dmar.go). Where they go is fixed by package
// layout; what the FADT says of the power-management ports and the SCI is
// what package pc wires (PortACPIPM, IRQSCI).
//
// The tables are pure byte layouts: the package writes them through an
// io.WriterAt and needs no VM, so every table is tested as a guest would
// parse it without KVM.
package fwtables
