// Package synic is the VMM's side of a VM's Hyper-V SynICs (hv.Config.HyperV):
// what KVM leaves to user space. The hv core enables each vCPU's SynIC and
// hands its exits over (hv.VM.ServeHyperV); a Service knows each vCPU's
// SynIC pages from KVM's SynIC exits, answers the hypercalls KVM hands over
// (HvPostMessage, HvSignalEvent) from its table of host-side connections,
// and makes SINT routes, by which a host-side device raises a vCPU's
// synthetic interrupt and puts messages and event flags into its pages.
// Package hyperv holds the guest ABI it speaks (pages, messages, statuses).
package synic
