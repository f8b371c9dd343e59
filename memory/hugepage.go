package memory

import (
	"fmt"
	"unsafe"

	"golang.org/x/sys/unix"
)

// HugePageSize is the size of an x86 transparent huge page: a 2 MiB block of
// guest RAM that lies in one host huge page is mapped by one entry in KVM's
// page tables, not 512.
const HugePageSize = 2 << 20

// mapHost maps size bytes of the memfd fd (or, with fd -1, anonymous memory)
// with flags, at a host address congruent to gpa modulo HugePageSize, and
// asks for transparent huge pages (MADV_HUGEPAGE). Under the kernel's
// default THP mode ("madvise") only memory so marked gets huge pages: guest
// RAM without it is mapped 4 KiB at a time in KVM's nested page tables, a
// nested page fault for each page the guest touches and more TLB misses
// after, where QEMU's RAM, marked and aligned the same way, is not. A kernel
// without THP (or shmem, where THP is off by default) ignores the advice.
func mapHost(fd int, size, gpa uint64, flags int) ([]byte, error) {
	// Reserve room for the alignment, then map the range at the aligned
	// address inside it and give back the slack on either side.
	span := uintptr(size) + HugePageSize
	base, err := unix.MmapPtr(-1, 0, nil, span, unix.PROT_NONE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS|unix.MAP_NORESERVE)
	if err != nil {
		return nil, fmt.Errorf("reserving %d bytes: %w", span, err)
	}
	head := (uintptr(gpa)%HugePageSize - uintptr(base)%HugePageSize + HugePageSize) % HugePageSize
	start := unsafe.Add(base, head)
	p, err := unix.MmapPtr(fd, 0, start, uintptr(size), unix.PROT_READ|unix.PROT_WRITE, flags|unix.MAP_FIXED)
	if err != nil {
		unix.MunmapPtr(base, span)
		return nil, err
	}
	if head > 0 {
		unix.MunmapPtr(base, head)
	}
	if tail := span - head - uintptr(size); tail > 0 {
		unix.MunmapPtr(unsafe.Add(start, size), tail)
	}
	host := unsafe.Slice((*byte)(p), size)
	unix.Madvise(host, unix.MADV_HUGEPAGE) // advice: EINVAL on a kernel without THP changes nothing
	return host, nil
}

// unmapHost unmaps what mapHost mapped.
func unmapHost(host []byte) error {
	return unix.MunmapPtr(unsafe.Pointer(unsafe.SliceData(host)), uintptr(len(host)))
}
