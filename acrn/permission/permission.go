// Package permission is ACRN's rule for who may make which hypercall (ACRN
// v2.6's vmcall_vmexit_handler, seed 003): before a handler runs, the
// caller's VM, its GUEST_FLAG_* bits and its privilege level decide whether
// the hypercall runs, is answered -EINVAL, or raises #GP or #UD. A hypercall
// service asks Check for every call and acts on the Verdict.
package permission

import "ember/acrn"

// GuestFlagsAllowingHypercalls are the GUEST_FLAG_* bits that let a VM
// other than the Service VM make hypercalls at all:
// acrn.GuestFlagsAllowingHypercalls, ACRN v2.6's
// GUEST_FLAGS_ALLOWING_HYPERCALLS, which is Trusty's flag alone. ACRN v3.0
// added GUEST_FLAG_TEE to it, with TEE hypercalls seed 000 does not have;
// the seed (v2.6) wins, so a TEE VM gets #UD like any plain VM.
const GuestFlagsAllowingHypercalls = acrn.GuestFlagsAllowingHypercalls

// Verdict is what Check decides about a hypercall before its handler runs.
type Verdict int

// The verdicts.
const (
	Allow    Verdict = iota // run the handler, its result goes to RAX
	InjectGP                // not ring 0: #GP(0), RAX untouched
	InjectUD                // a VM without hypercall rights: #UD, RAX untouched
	Refuse                  // allowed VM, unpermitted or unknown hypercall: -EINVAL in RAX
)

// String names the verdict: allow, #GP, #UD or refuse.
func (v Verdict) String() string {
	switch v {
	case Allow:
		return "allow"
	case InjectGP:
		return "#GP"
	case InjectUD:
		return "#UD"
	case Refuse:
		return "refuse"
	}
	return "verdict?"
}

// Flags is the permission_flags of ACRN's dispatch table for hypercall id:
// 0 for the Service VM's hypercalls, GUEST_FLAG_SECURE_WORLD_ENABLED for
// Trusty's.
func Flags(id acrn.ID) uint64 {
	if id.IsTrusty() {
		return acrn.GuestFlagSecureWorldEnabled
	}
	return 0
}

// Check is vmcall_vmexit_handler's order of checks (ACRN v2.6, seed 003),
// for a call of id from the Service VM (service) or from a VM with the
// given flags, at privilege level cpl:
//
//  1. a VM that is neither the Service VM nor flagged for hypercalls gets
//     #UD, whatever its ring (seed 003 lists this rule first);
//  2. a caller that may make hypercalls but is not at ring 0 gets #GP(0)
//     (RAX is not written in either case);
//  3. an unknown or retired ID gets -EINVAL;
//  4. the Service VM may make the hypercalls whose permission flags are 0, a
//     flagged VM those whose flags it has; anything else gets -EINVAL.
func Check(service bool, flags uint64, cpl uint8, id acrn.ID) Verdict {
	if !service && flags&GuestFlagsAllowingHypercalls == 0 {
		return InjectUD
	}
	if cpl != 0 {
		return InjectGP
	}
	if !id.Known() {
		return Refuse
	}
	pf := Flags(id)
	if (service && pf == 0) || flags&pf != 0 {
		return Allow
	}
	return Refuse
}
