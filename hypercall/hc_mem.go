package hypercall

import (
	"encoding/binary"
	"math/bits"
	"os"
	"sync/atomic"
	"unsafe"

	"ember/acrn"
	"ember/memory"
)

// maxGPA bounds the guest-physical addresses HC_VM_SET_MEMORY_REGIONS maps:
// 46 bits, what KVM on x86-64 hosts accepts everywhere.
const maxGPA = 1 << 46

// memRegion is one mapping HC_VM_SET_MEMORY_REGIONS made: Service VM memory
// (host) at gpa in the target, with its protection and write-protected pages.
type memRegion struct {
	gpa, size uint64
	prot      uint32
	host      []byte
	slots     []uint32
	wp        map[uint64]bool // GPAs of write-protected pages
}

func (m *memRegion) contains(gpa uint64) bool { return gpa >= m.gpa && gpa-m.gpa < m.size }

// protValid checks a region's prot: only access and memory-type bits, at most
// one memory type.
func protValid(p uint32) bool {
	return p&^(acrn.MemAccessRightMask|acrn.MemTypeMask) == 0 && bits.OnesCount32(p&acrn.MemTypeMask) <= 1
}

// unmap removes a region's KVM slots and WP page handlers.
func (e *hcVM) unmap(m *memRegion) {
	for _, s := range m.slots {
		if err := e.vm.UnmapMemory(s); err != nil {
			e.vm.Logger().Warn("unmapping a memory region", "slot", s, "err", err)
		}
	}
	m.slots = nil
	for p := range m.wp {
		e.unprotect(p)
	}
}

// mapRegion (re)creates a region's mappings (hv.VM.MapMemory: KVM slots and
// the VM's memory.Guest alike): runs of ordinary pages with
// the region's protection (read-only without MEM_ACCESS_WRITE), and each
// write-protected page as a read-only slot whose writes exit as MMIO and
// become WP I/O requests. A running VM is paused meanwhile, so no vCPU sees
// the range unmapped.
func (e *hcVM) mapRegion(m *memRegion) error {
	if e.running() && !e.vm.Paused() {
		e.vm.Pause()
		defer e.vm.Resume()
	}
	e.unmap(m)
	ro := m.prot&acrn.MemAccessWrite == 0
	for off := uint64(0); off < m.size; {
		wp := m.wp[m.gpa+off]
		end := off + memory.PageSize
		for !wp && end < m.size && !m.wp[m.gpa+end] {
			end += memory.PageSize
		}
		s, err := e.vm.MapMemory(m.gpa+off, m.host[off:end], ro || wp)
		if err != nil {
			e.unmap(m)
			return err
		}
		m.slots = append(m.slots, s)
		if wp {
			e.protect(m.gpa + off)
		}
		off = end
	}
	return nil
}

// findRegion returns the region mapped exactly at gpa with size, or the one
// containing gpa when size is 0.
func (e *hcVM) findRegion(gpa, size uint64) (int, *memRegion) {
	for i, m := range e.regions {
		if (size == 0 && m.contains(gpa)) || (m.gpa == gpa && m.size == size) {
			return i, m
		}
	}
	return -1, nil
}

// hcSetMemoryRegions is HC_VM_SET_MEMORY_REGIONS: param1 is the GPA of a
// set_regions whose vmid names the target and whose regions_gpa points to
// mr_num (at most 128) vm_memory_region entries, applied in order; the
// first bad one stops the batch with its error. MR_ADD maps
// [service_vm_gpa, +size) of the caller's memory at gpa (page-aligned, not
// overlapping another region; read-only without MEM_ACCESS_WRITE); MR_DEL
// removes the region mapped exactly at gpa with size; MR_MODIFY changes its
// prot. Memory types are recorded (KVM has no per-slot memory type).
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

func (e *hcVM) applyRegion(c *call, mr *acrn.VMMemoryRegion) acrn.Errno {
	const pg = memory.PageSize
	if mr.Size == 0 || mr.GPA%pg != 0 || mr.Size%pg != 0 || mr.GPA >= maxGPA || mr.Size > maxGPA-mr.GPA {
		return acrn.EINVAL
	}
	switch mr.Type {
	case acrn.MRAdd:
		if !protValid(mr.Prot) || mr.SOSVMGPA%pg != 0 {
			return acrn.EINVAL
		}
		for _, m := range e.regions {
			if mr.GPA < m.gpa+m.size && m.gpa < mr.GPA+mr.Size {
				return acrn.EINVAL
			}
		}
		host, err := c.mem.Slice(mr.SOSVMGPA, mr.Size)
		if err != nil {
			return acrn.EFAULT
		}
		m := &memRegion{gpa: mr.GPA, size: mr.Size, prot: mr.Prot, host: host, wp: map[uint64]bool{}}
		if err := e.mapRegion(m); err != nil {
			return acrn.EINVAL
		}
		e.regions = append(e.regions, m)
	case acrn.MRDel:
		i, m := e.findRegion(mr.GPA, mr.Size)
		if m == nil {
			return acrn.EINVAL
		}
		e.unmap(m)
		e.regions = append(e.regions[:i], e.regions[i+1:]...)
	case acrn.MRModify:
		_, m := e.findRegion(mr.GPA, mr.Size)
		if m == nil || !protValid(mr.Prot) {
			return acrn.EINVAL
		}
		m.prot = mr.Prot
		if err := e.mapRegion(m); err != nil {
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
	_, m := e.findRegion(wp.GPA, 0)
	if m == nil || m.prot&acrn.MemAccessWrite == 0 {
		return acrn.EINVAL
	}
	if (wp.Set != 0) == m.wp[wp.GPA] {
		return 0
	}
	e.unmap(m) // with the old WP set, so its handlers go
	if wp.Set != 0 {
		m.wp[wp.GPA] = true
	} else {
		delete(m.wp, wp.GPA)
	}
	if err := e.mapRegion(m); err != nil {
		return acrn.EINVAL
	}
	return 0
}

// protect makes guest writes to the (read-only mapped) page at gpa WP I/O
// requests. They are not claimed: like every access no in-process device
// claims they go to the router's default, the Service VM's client.
func (e *hcVM) protect(gpa uint64) { e.vm.SetWriteProtected(gpa, true) }

// unprotect undoes protect.
func (e *hcVM) unprotect(gpa uint64) { e.vm.SetWriteProtected(gpa, false) }

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

var touched atomic.Uint32

// hostPhys returns the host-physical address of b[0] from /proc/self/pagemap
// (which shows frame numbers only to CAP_SYS_ADMIN). The page is read first,
// so it is present.
func hostPhys(b []byte) (uint64, acrn.Errno) {
	touched.Add(uint32(b[0]))
	va := uint64(uintptr(unsafe.Pointer(&b[0])))
	f, err := os.Open("/proc/self/pagemap")
	if err != nil {
		return 0, acrn.ENODEV
	}
	defer f.Close()
	var ent [8]byte
	if _, err := f.ReadAt(ent[:], int64(va/memory.PageSize*8)); err != nil {
		return 0, acrn.ENODEV
	}
	v := binary.LittleEndian.Uint64(ent[:])
	pfn := v & (1<<55 - 1)
	if v>>63 == 0 || pfn == 0 {
		return 0, acrn.ENODEV
	}
	return pfn*memory.PageSize + va%memory.PageSize, 0
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
	hpa, r := hostPhys(b)
	if r != 0 {
		return r
	}
	q.HPA = hpa
	return c.write(c.p2, &q)
}
