// Package kvmcap names KVM's capabilities: the numbers KVM_CHECK_EXTENSION
// and KVM_ENABLE_CAP take (KVM_CAP_* in include/uapi/linux/kvm.h), their
// KVM_CAP_ names for messages and listings, and a lookup by name. It is
// apart from package kvm, which issues the ioctls, because the table is
// long and changes with every kernel while the binding does not.
package kvmcap
