package hypercall

import "ember/acrn"

// guestFlagsAllowingHypercalls are the GUEST_FLAG_* bits that let a VM other
// than the Service VM make hypercalls at all: acrn.GuestFlagsAllowingHypercalls,
// ACRN v2.6's GUEST_FLAGS_ALLOWING_HYPERCALLS, which is Trusty's flag alone.
// ACRN v3.0 added GUEST_FLAG_TEE to it, with TEE hypercalls seed 000 does
// not have; the seed (v2.6) wins, so a TEE VM gets #UD like any plain VM.
const guestFlagsAllowingHypercalls = acrn.GuestFlagsAllowingHypercalls

// verdict is what the permission check decides about a hypercall before its
// handler runs.
type verdict int

const (
	allow    verdict = iota // run the handler, its result goes to RAX
	injectGP                // not ring 0: #GP(0), RAX untouched
	injectUD                // a VM without hypercall rights: #UD, RAX untouched
	refuse                  // allowed VM, unpermitted or unknown hypercall: -EINVAL in RAX
)

// permissionFlags is the permission_flags of ACRN's dispatch table: 0 for
// the Service VM's hypercalls, GUEST_FLAG_SECURE_WORLD_ENABLED for Trusty's.
func permissionFlags(id acrn.ID) uint64 {
	if id.IsTrusty() {
		return acrn.GuestFlagSecureWorldEnabled
	}
	return 0
}

// checkPermission is vmcall_vmexit_handler's order of checks (ACRN v2.6,
// seed 003), for a call from a VM with the given flags at privilege level
// cpl:
//
//  1. a VM that is neither the Service VM nor flagged for hypercalls gets
//     #UD, whatever its ring (seed 003 lists this rule first);
//  2. a caller that may make hypercalls but is not at ring 0 gets #GP(0)
//     (RAX is not written in either case);
//  3. an unknown or retired ID gets -EINVAL;
//  4. the Service VM may make the hypercalls whose permission flags are 0, a
//     flagged VM those whose flags it has; anything else gets -EINVAL.
func checkPermission(service bool, flags uint64, cpl uint8, id acrn.ID) verdict {
	if !service && flags&guestFlagsAllowingHypercalls == 0 {
		return injectUD
	}
	if cpl != 0 {
		return injectGP
	}
	if !id.Known() {
		return refuse
	}
	pf := permissionFlags(id)
	if (service && pf == 0) || flags&pf != 0 {
		return allow
	}
	return refuse
}
