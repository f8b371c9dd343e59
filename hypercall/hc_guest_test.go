package hypercall

import (
	"bytes"
	"context"
	"testing"
	"time"

	"ember/acrn"
	"ember/guest"
	"ember/hv"
	"ember/internal/kvmtest"
	"ember/x86"
)

// guestRun is how one run of a tiny guest went.
type guestRun struct {
	res     hv.Result
	reports []uint64
	vm      *hv.VM
	took    time.Duration
}

// runGuest makes a 2 MiB VM with cfg and ident on h, loads prog, lets setup
// (if not nil) change its entry state, and runs it for at most 30 s. The VM
// is closed when the test ends.
func runGuest(t *testing.T, h *Service, cfg hv.Config, ident Identity, prog guest.Program, setup func(*x86.Entry)) guestRun {
	t.Helper()
	cfg.MemorySize = 2 << 20
	vm, err := h.NewVM(cfg, ident)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { vm.Close() })
	rep := kvmtest.NewReporter()
	if err := vm.PIO.Register(guest.PortReport, 4, "report", rep); err != nil {
		t.Fatal(err)
	}
	if err := vm.LoadImage(prog.Code, guest.LoadAddr); err != nil {
		t.Fatal(err)
	}
	e := prog.Entry()
	if setup != nil {
		setup(&e)
	}
	if err := vm.SetEntry(0, e); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	start := time.Now()
	res, err := vm.Run(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return guestRun{res: res, reports: rep.Values(), vm: vm, took: time.Since(start)}
}

// runHC runs guest.HCCall in a fresh VM with cfg, making hypercall id(p1,
// p2) from ring 0 or 3, and returns the result and the reported values.
func runHC(t *testing.T, h *Service, cfg hv.Config, ident Identity, ring3 bool, id acrn.ID, p1, p2 uint64) (hv.Result, []uint64, *hv.VM) {
	t.Helper()
	r := runGuest(t, h, cfg, ident, guest.HCCall, func(e *x86.Entry) {
		e.Regs.R8, e.Regs.R9, e.Regs.R10 = uint64(id), p1, p2
		if ring3 {
			e.Regs.R12 = 1
		}
	})
	return r.res, r.reports, r.vm
}

func TestGuestHypercallPermissions(t *testing.T) {
	h := openHV(t)
	neg := func(e acrn.Errno) []uint64 { r := e.Result(); return []uint64{r & 0xffffffff, r >> 32} }
	tests := []struct {
		name   string
		ident  Identity
		ring3  bool
		id     acrn.ID
		status int
		want   []uint64
	}{
		{"plain VM gets #UD", Identity{}, false, acrn.HCGetAPIVersion, 6, []uint64{6, 0x10}},
		{"plain VM gets #UD for an unknown ID", Identity{}, false, 0x1234, 6, []uint64{6, 0x10}},
		{"Service VM ring 3 gets #GP(0)", Identity{ServiceVM: true}, true, acrn.HCGetAPIVersion, 13, []uint64{13, 0}},
		{"Trusty VM calling HC_CREATE_VM gets -EINVAL", Identity{GuestFlags: acrn.GuestFlagSecureWorldEnabled}, false, acrn.HCCreateVM, 0, neg(acrn.EINVAL)},
		{"Trusty VM: HC_WORLD_SWITCH gets -ENODEV, ember has no secure world", Identity{GuestFlags: acrn.GuestFlagSecureWorldEnabled}, false, acrn.HCWorldSwitch, 0, neg(acrn.ENODEV)},
		{"Trusty VM: HC_INITIALIZE_TRUSTY gets -ENODEV", Identity{GuestFlags: acrn.GuestFlagSecureWorldEnabled}, false, acrn.HCInitializeTrusty, 0, neg(acrn.ENODEV)},
		{"Service VM unknown ID gets -EINVAL", Identity{ServiceVM: true}, false, 0x800000ff, 0, neg(acrn.EINVAL)},
		{"Service VM Trusty call gets -EINVAL", Identity{ServiceVM: true}, false, acrn.HCWorldSwitch, 0, neg(acrn.EINVAL)},
		{"Service VM gets the API version", Identity{ServiceVM: true}, false, acrn.HCGetAPIVersion, 0, []uint64{0, 0}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, vals, vm := runHC(t, h, hv.Config{}, tt.ident, tt.ring3, tt.id, 0x7800, 0)
			if res.Reason != hv.StopExit || res.Status != tt.status {
				t.Fatalf("result %v, want exit %d (reports %#x)", res, tt.status, vals)
			}
			if len(vals) != len(tt.want) || vals[0] != tt.want[0] || vals[1] != tt.want[1] {
				t.Fatalf("reports %#x, want %#x", vals, tt.want)
			}
			if tt.id == acrn.HCGetAPIVersion && tt.status == 0 {
				var v acrn.APIVersion
				b, _ := vm.Memory().Slice(0x7800, 8)
				v.Decode(b)
				if v.MajorVersion != acrn.APIMajorVersion || v.MinorVersion != acrn.APIMinorVersion {
					t.Errorf("API version %+v", v)
				}
			}
		})
	}
}

func TestServiceVMGuestStartsSecondVM(t *testing.T) {
	h := openHV(t)
	var console bytes.Buffer
	run := runGuest(t, h, hv.Config{Console: &console}, Identity{ServiceVM: true}, guest.HCServiceVM, nil)
	vm, res, reports := run.vm, run.res, run.reports
	if res.Reason != hv.StopExit || res.Status != 0 {
		t.Fatalf("Service VM: %v (reports %#x)", res, reports)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	eperm := acrn.EPERM.Result() & 0xffffffff
	want := []uint64{0, eperm, 0, 0, 0, 0, 0x42, 1}
	if len(reports) != len(want) {
		t.Fatalf("reports %#x, want %#x", reports, want)
	}
	for i := range want {
		if reports[i] != want[i] {
			t.Fatalf("reports %#x, want %#x", reports, want)
		}
	}
	r, err := h.WaitVM(ctx, 1)
	if err != nil || r.Reason != hv.StopExit || r.Status != 0x42 {
		t.Fatalf("second VM: %v %v", r, err)
	}
	vm.Close()
	if _, ok := h.LookupVM(1); ok {
		t.Error("the second VM outlived its Service VM")
	}
}
