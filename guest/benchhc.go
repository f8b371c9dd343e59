package guest

import "ember/x86"

// BenchHypercall makes RCX HC_GET_API_VERSION hypercalls from ring 0 of a
// Service VM (RCX a multiple of 16) and exits 0: package bench's hypercall
// round-trip guest.
var BenchHypercall = load("bench_hc", x86.LongMode)

func init() { All = append(All, BenchHypercall) }
