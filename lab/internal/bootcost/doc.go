// Package bootcost measures what a benchmark boot of the lab (`go run ./lab
// virtio`, `go run ./lab net`) cost the lab host, beside the guest's own
// measures: the VMM process's CPU seconds and context switches (getrusage
// RUSAGE_CHILDREN, read before and after the boot: Usage), and, sampled
// while the boot runs (Sampler), the VM's KVM exits by kind from the lab
// kernel's debugfs and the share of the VMM's CPU time that ran the guest
// (/proc/PID/stat's guest_time). Package main of lab adds them to the table
// as rows (UsageMeasures, SamplerMeasures) so ember and QEMU compare on what they made
// the host do, not only on how fast the guest went.
package bootcost
