// Package threadstat reads what the kernel counts for one of the process's
// threads: the CPU time a thread has spent running a guest (guest_time in
// /proc/self/task/TID/stat). Package hv reads it for each vCPU thread at the
// start and end of its loop, so VM.GuestTime can tell a busy guest from an
// idle one without a clock read on every exit. The parsing stands alone so
// it is tested on stat lines, without a vCPU.
package threadstat
