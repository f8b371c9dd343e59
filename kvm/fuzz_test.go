package kvm

import (
	"strings"
	"testing"
	"unsafe"
)

// fakeRunSize is the size of the fake kvm_run mapping: three pages, as
// KVM_GET_VCPU_MMAP_SIZE answers on x86 (kvm_run, the PIO data page and the
// coalesced-MMIO ring).
const fakeRunSize = 3 * 4096

// FuzzExitDecode fills a fake kvm_run region with arbitrary bytes (from its
// start, so the header and the exit union) and an arbitrary exit reason, and
// runs every decoder on it. A hostile or corrupt kvm_run must never make a
// decoder panic or hand out a slice outside the mapped region.
func FuzzExitDecode(f *testing.F) {
	// More seeds are in testdata/fuzz/FuzzExitDecode.
	f.Add(uint32(ExitIO), []byte{})
	f.Add(uint32(ExitMMIO), make([]byte, 64))
	f.Fuzz(func(t *testing.T, reason uint32, region []byte) {
		c := fakeVCPU(fakeRunSize)
		copy(c.mem, region)
		c.run.ExitReason = reason
		e := Exit{Reason: ExitReason(reason), c: c}
		lo := uintptr(unsafe.Pointer(&c.mem[0]))
		hi := lo + uintptr(len(c.mem))
		inRegion := func(b []byte) bool {
			if len(b) == 0 {
				return true
			}
			p := uintptr(unsafe.Pointer(&b[0]))
			return p >= lo && p+uintptr(len(b)) <= hi
		}

		io := e.IO()
		if io.Data != nil {
			if !inRegion(io.Data) {
				t.Fatalf("IO().Data (%d bytes) lies outside the kvm_run region", len(io.Data))
			}
			if uint64(len(io.Data)) != uint64(io.Size)*uint64(io.Count) {
				t.Fatalf("IO().Data has %d bytes for %d x %d", len(io.Data), io.Count, io.Size)
			}
			if off := uintptr(unsafe.Pointer(unsafe.SliceData(io.Data))) - lo; len(io.Data) > 0 && off < unsafe.Sizeof(runStruct{}) {
				t.Fatalf("IO().Data at offset %d overlaps struct kvm_run", off)
			}
		}
		m := e.MMIO()
		if len(m.Data) > 8 || !inRegion(m.Data) {
			t.Fatalf("MMIO().Data has %d bytes, or lies outside the region", len(m.Data))
		}
		if ie := e.InternalError(); len(ie.Data) > 16 {
			t.Fatalf("InternalError().Data has %d entries, kvm_run has room for 16", len(ie.Data))
		} else {
			_ = ie.String()
		}
		if se := e.SystemEvent(); len(se.Data) > 16 {
			t.Fatalf("SystemEvent().Data has %d entries, kvm_run has room for 16", len(se.Data))
		}
		_ = e.FailEntry()
		_ = e.HardwareExitReason()
		_ = e.Debug()
		_ = e.MSR()
		_ = e.MemoryFault()
		_, _ = e.Exception()
		if s := e.String(); !strings.HasPrefix(s, "KVM_EXIT_") {
			t.Fatalf("String() = %q", s)
		}
		_ = c.SyncRegs()
		_, _, _, _ = c.IFFlag(), c.CR8(), c.APICBase(), c.ReadyForInterruptInjection()
		e.SetMSRResult(^uint64(0), true)
		// Whatever the decoders did, kvm_run's own fields are intact.
		if c.run.ExitReason != reason {
			t.Fatalf("exit_reason changed to %d", c.run.ExitReason)
		}
	})
}
