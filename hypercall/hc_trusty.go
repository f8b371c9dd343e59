package hypercall

import "ember/acrn"

// hcTrusty is HC_INITIALIZE_TRUSTY, HC_WORLD_SWITCH and
// HC_SAVE_RESTORE_SWORLD_CTX: -ENODEV, for every caller the permission
// check lets through (a VM with GUEST_FLAG_SECURE_WORLD_ENABLED).
//
// ACRN gives Trusty's secure world memory of its own: the secure world's
// pages leave the normal world's EPT, the worlds pass RDI, RSI, RDX and RBX
// across a switch, and the secure world starts from start-up parameters
// rebased into its memory. KVM gives a VM one memory map for all its vCPUs
// outside SMM, so ember cannot hide the secure world's memory from the
// normal world; a register swap without that would be a secure world that is
// not secure. ember refuses instead (docs/abi.md, "Trusty"): a Trusty
// guest's start-up sees that it has no secure world, as on a hypervisor
// built without Trusty.
func hcTrusty(*call) acrn.Errno { return acrn.ENODEV }
