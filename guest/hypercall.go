package guest

import "ember/x86"

// PortHypercall is the guest ABI's hypercall port (src/abi.h, docs/abi.md).
const PortHypercall = 0xf8

// The hypercall guests (package hv's permission-model tests).
var (
	// HCCall makes the ACRN hypercall R8(R9, R10) from ring 0 (R12 = 0) or
	// ring 3 (R12 = 1) and reports RAX (low and high half, exit 0), or #UD
	// (6 and CS, exit 6), or #GP (13 and the error code, exit 13).
	HCCall = load("hc_call", x86.LongMode)
	// HCServiceVM is a Service VM guest that creates, sets up and starts a second
	// VM by hypercalls and reports each result, then what the second VM
	// wrote into the page they share (0x42) and its VM ID.
	HCServiceVM = load("hc_service_vm", x86.LongMode)
)

func init() { All = append(All, HCCall, HCServiceVM) }
