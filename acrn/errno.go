package acrn

import "fmt"

// Errno is a positive error number from ACRN's hypervisor/include/lib/errno.h
// (the Linux values). A hypercall reports failure by returning the negated
// value in RAX: ACRN's handlers return int32_t and the dispatcher stores it
// sign-extended, so -EINVAL reaches the guest as 0xffffffffffffffea.
type Errno int32

// The errno values ACRN's hypervisor uses (errno.h). Many handlers return a
// bare -1, which seed 000 documents as "-1 in case of error"; numerically
// that is -EPERM.
const (
	EPERM     Errno = 1   // operation not permitted; also the bare -1
	EIO       Errno = 5   // I/O error
	ENOMEM    Errno = 12  // out of memory
	EACCES    Errno = 13  // permission denied (hypercall from ring 1-3)
	EFAULT    Errno = 14  // bad guest address
	EBUSY     Errno = 16  // target busy
	ENODEV    Errno = 19  // no such device (hypercall from a VM without rights)
	EINVAL    Errno = 22  // invalid argument, unknown or unpermitted hypercall
	ETIMEDOUT Errno = 110 // timed out
)

var errnoNames = map[Errno]string{
	EPERM: "EPERM", EIO: "EIO", ENOMEM: "ENOMEM", EACCES: "EACCES", EFAULT: "EFAULT",
	EBUSY: "EBUSY", ENODEV: "ENODEV", EINVAL: "EINVAL", ETIMEDOUT: "ETIMEDOUT",
}

// Error returns the errno's name, e.g. "acrn: EINVAL".
func (e Errno) Error() string {
	if s, ok := errnoNames[e]; ok {
		return "acrn: " + s
	}
	return fmt.Sprintf("acrn: errno %d", int32(e))
}

// Name returns the errno's name, "EINVAL", or "errno N" for one ember does
// not use.
func (e Errno) Name() string {
	if s, ok := errnoNames[e]; ok {
		return s
	}
	return fmt.Sprintf("errno %d", int32(e))
}

// Result is the RAX value a hypercall failing with e returns: -e,
// sign-extended to 64 bits.
func (e Errno) Result() uint64 { return uint64(-int64(e)) }

// ResultError interprets a hypercall's RAX value: nil for zero or a positive
// value, the Errno for a negative one (as a 32-bit int, the width of ACRN's
// handlers' return type).
func ResultError(rax uint64) error {
	v := int32(rax)
	if v >= 0 {
		return nil
	}
	return Errno(-int64(v))
}
