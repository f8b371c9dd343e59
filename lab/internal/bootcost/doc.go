// Package bootcost measures what a benchmark boot of the lab (`go run ./lab
// virtio`, `go run ./lab net`) cost the lab host, beside the guest's own
// measures: the VMM process's CPU seconds and context switches (getrusage
// RUSAGE_CHILDREN, read before and after the boot: Usage) and the VM's KVM
// exits by kind, sampled from the lab kernel's debugfs while the boot runs
// (Sampler). Package main of lab adds them to the table as rows
// (UsageMeasures, KVMMeasures) so ember and QEMU compare on what they made
// the host do, not only on how fast the guest went.
package bootcost
