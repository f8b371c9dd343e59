package hypercall

import (
	"math/bits"

	"ember/acrn"
	"ember/hypercall/hostinfo"
	"ember/memory"
)

// maxGPA bounds the guest-physical addresses HC_VM_SET_MEMORY_REGIONS maps:
// 46 bits, what KVM on x86-64 hosts accepts everywhere.
const maxGPA = 1 << 46

// protValid checks a region's prot: only access and memory-type bits, at most
// one memory type.
func protValid(p uint32) bool {
	return p&^(acrn.MemAccessRightMask|acrn.MemTypeMask) == 0 && bits.OnesCount32(p&acrn.MemTypeMask) <= 1
}

// readOnly reports whether a region with prot is read-only to the guest.
func readOnly(prot uint32) bool { return prot&acrn.MemAccessWrite == 0 }

// quiesce pauses the VM while its memory map is remade, if a run
// HC_START_VM started is going and not paused already, and returns what
// resumes it (memmap.Map.Quiesce). The caller holds e.mu.
func (e *hcVM) quiesce() (resume func()) {
	if e.life.Running() && !e.vm.Paused() {
		e.vm.Pause()
		return e.vm.Resume
	}
	return func() {}
}

// hcSetMemoryRegions is HC_VM_SET_MEMORY_REGIONS: param1 is the GPA of a
// set_regions whose vmid names the target and whose regions_gpa points to
// mr_num (at most 128) vm_memory_region entries, applied in order; the
// first bad one stops the batch with its error. MR_ADD maps
// [service_vm_gpa, +size) of the caller's memory at gpa (page-aligned, not
// overlapping another region; read-only without MEM_ACCESS_WRITE); MR_DEL
// removes the region mapped exactly at gpa with size; MR_MODIFY changes its
// prot. Memory types are recorded (KVM has no per-slot memory type). A
// running VM is paused while a region is remapped (quiesce).
func hcSetMemoryRegions(c *call) acrn.Errno {
	var sr acrn.SetRegions
	if r := c.read(c.p1, &sr); r != 0 {
		return r
	}
	if sr.MRNum > acrn.SetRegionsMaxNum {
		return acrn.EINVAL
	}
	raw, err := c.mem.Slice(sr.RegionsGPA, uint64(sr.MRNum)*acrn.VMMemoryRegionSize)
	if err != nil {
		return acrn.EFAULT
	}
	raw = append([]byte(nil), raw...)
	e, r := c.target(uint64(sr.VMID))
	if r != 0 {
		return r
	}
	defer e.mu.Unlock()
	for i := 0; i < int(sr.MRNum); i++ {
		var mr acrn.VMMemoryRegion
		if err := mr.Decode(raw[i*acrn.VMMemoryRegionSize:]); err != nil {
			return acrn.EINVAL
		}
		if r := e.applyRegion(c, &mr); r != 0 {
			return r
		}
	}
	return 0
}

// applyRegion checks one vm_memory_region and applies it to e's memory map
// (memmap.Map, which keeps the VM's KVM slots the same as the regions).
func (e *hcVM) applyRegion(c *call, mr *acrn.VMMemoryRegion) acrn.Errno {
	const pg = memory.PageSize
	if mr.Size == 0 || mr.GPA%pg != 0 || mr.Size%pg != 0 || mr.GPA >= maxGPA || mr.Size > maxGPA-mr.GPA {
		return acrn.EINVAL
	}
	switch mr.Type {
	case acrn.MRAdd:
		if !protValid(mr.Prot) || mr.SOSVMGPA%pg != 0 || e.regions.Overlaps(mr.GPA, mr.Size) {
			return acrn.EINVAL
		}
		host, err := c.mem.Slice(mr.SOSVMGPA, mr.Size)
		if err != nil {
			return acrn.EFAULT
		}
		if err := e.regions.Add(mr.GPA, host, readOnly(mr.Prot), mr.Prot); err != nil {
			return acrn.EINVAL
		}
	case acrn.MRDel:
		if err := e.regions.Remove(mr.GPA, mr.Size); err != nil {
			return acrn.EINVAL
		}
	case acrn.MRModify:
		if !protValid(mr.Prot) {
			return acrn.EINVAL
		}
		if err := e.regions.Modify(mr.GPA, mr.Size, readOnly(mr.Prot), mr.Prot); err != nil {
			return acrn.EINVAL
		}
	default:
		return acrn.EINVAL
	}
	return 0
}

// hcWriteProtectPage is HC_VM_WRITE_PROTECT_PAGE: param1 is the target VM
// ID, param2 the GPA of a wp_data. The page (page-aligned, inside a writable
// region HC_VM_SET_MEMORY_REGIONS mapped) becomes read-only to the guest
// while set is non-zero; each guest write to it is not performed but becomes
// an I/O request of type WP to the VM's Service VM, through its request
// buffer like any other request (upcall.go), as ACRN delivers it: the
// Service VM emulates the write. Without a Service VM client (a host
// control plane with no ServiceUpcall) the write is dropped and counted as
// unclaimed. Clearing it maps the page writable again.
func hcWriteProtectPage(c *call, e *hcVM) acrn.Errno {
	var wp acrn.WPData
	if r := c.read(c.p2, &wp); r != 0 {
		return r
	}
	if wp.GPA%memory.PageSize != 0 {
		return acrn.EINVAL
	}
	if err := e.regions.WriteProtect(wp.GPA, wp.Set != 0); err != nil {
		return acrn.EINVAL
	}
	return 0
}

// hostBytes returns the host memory behind a target GPA, through the VM's
// one memory map (for a VM created by hypercall, the Service VM memory its
// regions lend it).
func (e *hcVM) hostBytes(gpa uint64) []byte {
	b, err := e.vm.Memory().Slice(gpa, 1)
	if err != nil {
		return nil
	}
	return b
}

// hcGPA2HPA is HC_VM_GPA2HPA: param1 is the target VM ID, param2 the GPA of
// a vm_gpa2hpa whose gpa is translated to the host-physical address of the
// frame behind it (from /proc/self/pagemap). An unmapped GPA is -EINVAL; a
// host that hides frame numbers gives -ENODEV.
func hcGPA2HPA(c *call, e *hcVM) acrn.Errno {
	var q acrn.VMGPA2HPA
	if r := c.read(c.p2, &q); r != 0 {
		return r
	}
	b := e.hostBytes(q.GPA)
	if len(b) == 0 {
		return acrn.EINVAL
	}
	hpa, err := hostinfo.Phys(b)
	if err != nil {
		return acrn.ENODEV
	}
	q.HPA = hpa
	return c.write(c.p2, &q)
}
