package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"ember/guest"
	"ember/hv"
	"ember/internal/kvmtest"
)

func TestPatchSetsTheCountWord(t *testing.T) {
	img, err := PatchExits(guest.BenchPIO.Code, 4800)
	if err != nil {
		t.Fatal(err)
	}
	if got := Count(img); got != 4800 {
		t.Errorf("count = %d, want 4800", got)
	}
	if Count(guest.BenchPIO.Code) == 4800 {
		t.Error("Patch changed its input")
	}
	if !bytes.Equal(img[:CountOffset], guest.BenchPIO.Code[:CountOffset]) {
		t.Error("Patch changed bytes outside the count word")
	}
}

func TestPatchRefuses(t *testing.T) {
	for _, tc := range []struct {
		name  string
		image []byte
		n     int
	}{
		{"a short image", guest.Real.Code, 16},
		{"an image without the marker", make([]byte, ImageSize), 16},
		{"a count that is not a multiple of 16", guest.BenchPIO.Code, 17},
		{"a negative count", guest.BenchPIO.Code, -16},
	} {
		if _, err := PatchExits(tc.image, tc.n); err == nil {
			t.Errorf("%s: no error", tc.name)
		}
	}
}

func TestBenchImagesAreResetVectorImages(t *testing.T) {
	for _, p := range []guest.Program{guest.BenchPIO, guest.BenchMMIO, guest.BenchHello} {
		if len(p.Code) != ImageSize {
			t.Errorf("%s: %d bytes, want %d", p.Name, len(p.Code), ImageSize)
			continue
		}
		if string(p.Code[MagicOffset:]) != Magic {
			t.Errorf("%s: no %q marker", p.Name, Magic)
		}
		// F000:FFF0 holds a near jump (E9 rel16) to offset 0.
		rel := uint16(p.Code[0xfff1]) | uint16(p.Code[0xfff2])<<8
		if p.Code[0xfff0] != 0xe9 || uint16(0xfff3+rel) != 0 {
			t.Errorf("%s: reset vector is % x, want a jump to offset 0", p.Name, p.Code[0xfff0:0xfff3])
		}
	}
	if Entry.RIP&^0xffff != ImageBase || Entry.RIP&0xffff != 0xfff0 {
		t.Errorf("Entry = %#x, want CS base %#x, IP 0xfff0", Entry.RIP, ImageBase)
	}
}

func TestMedianAndPerOp(t *testing.T) {
	ms := time.Millisecond
	if got := Median([]time.Duration{5 * ms, 1 * ms, 3 * ms}); got != 3*ms {
		t.Errorf("odd median = %v", got)
	}
	if got := Median([]time.Duration{4 * ms, 1 * ms, 2 * ms, 3 * ms}); got != 2500*time.Microsecond {
		t.Errorf("even median = %v", got)
	}
	if Median(nil) != 0 {
		t.Error("median of nothing is not 0")
	}
	// 1000 exits at 10 µs on top of a 50 ms fixed cost, against 100 exits.
	tn := 50*ms + 1000*10*time.Microsecond
	tn0 := 50*ms + 100*10*time.Microsecond
	if got := PerOp(tn, tn0, 1000, 100); math.Abs(got-10000) > 1e-6 {
		t.Errorf("PerOp = %v ns, want 10000", got)
	}
	if !math.IsNaN(PerOp(tn, tn0, 5, 5)) {
		t.Error("PerOp with n == n0 is not NaN")
	}
	if got := Ratio(12, 10); got != 1.2 {
		t.Errorf("Ratio = %v", got)
	}
	for _, b := range []float64{0, -1, math.NaN()} {
		if !math.IsNaN(Ratio(1, b)) {
			t.Errorf("Ratio(1, %v) is not NaN", b)
		}
	}
}

func sampleReport() *Report {
	r := &Report{Machine: Machine{NProc: 2, CPU: "test CPU", Kernel: "6.1", Backend: "kvm-pvm"}, Params: ShortParams}
	r.Add(GroupPIO, SubjectC, 10000, "ns/exit", "")
	r.Add(GroupPIO, SubjectEmberInProcess, 11000, "ns/exit", "")
	r.AddNA(GroupPIO, SubjectEmberExternal, "ns/exit", "n/a: not yet implemented")
	r.Add(GroupPIO, SubjectQEMU, 8000, "ns/exit", "")
	r.ComputeRatios()
	return r
}

func TestRatiosAgainstBothBaselines(t *testing.T) {
	r := sampleReport()
	em := r.Rows[1]
	if em.VsC == nil || math.Abs(*em.VsC-1.1) > 1e-9 || em.VsQEMU == nil || math.Abs(*em.VsQEMU-1.375) > 1e-9 {
		t.Errorf("ember ratios = %v, %v; want 1.1, 1.375", em.VsC, em.VsQEMU)
	}
	if r.Rows[0].VsC != nil || r.Rows[3].VsQEMU != nil {
		t.Error("a baseline has a ratio to itself")
	}
	if r.Rows[2].Value != nil || r.Rows[2].VsC != nil {
		t.Error("the n/a row has a value")
	}
}

func TestTableAndJSON(t *testing.T) {
	r := sampleReport()
	var tb bytes.Buffer
	if err := r.WriteTable(&tb); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"kvm-pvm", "11000 ns/exit", "1.10", "1.38", "n/a: not yet implemented"} {
		if !strings.Contains(tb.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, tb.String())
		}
	}
	path := filepath.Join(t.TempDir(), "bench.json")
	if err := r.WriteJSONFile(path); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var back Report
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if len(back.Rows) != 4 || *back.Rows[1].VsC != *r.Rows[1].VsC || back.Rows[2].Value != nil {
		t.Errorf("JSON round trip lost rows: %s", b)
	}
}

func TestCBaselineRunsTheExitGuests(t *testing.T) {
	kvmtest.Require(t)
	ctx := context.Background()
	dir := t.TempDir()
	bin, err := BuildC(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []guest.Program{guest.BenchPIO, guest.BenchMMIO} {
		img, err := PatchExits(p.Code, 32)
		if err != nil {
			t.Fatal(err)
		}
		f := filepath.Join(dir, p.Name+".bin")
		if err := os.WriteFile(f, img, 0o644); err != nil {
			t.Fatal(err)
		}
		d, exits, err := RunC(ctx, bin, f)
		if err != nil {
			t.Fatal(err)
		}
		if exits != 32 || d <= 0 {
			t.Errorf("%s: %d exits in %v, want 32", p.Name, exits, d)
		}
	}
}

func TestEmberRunsTheExitGuests(t *testing.T) {
	kvmtest.Require(t)
	h, err := hv.Open()
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	ctx := context.Background()
	dm, err := BuildDeviceModel(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	for _, g := range []ExitGuest{
		{Name: "PIO", Image: guest.BenchPIO.Code, Addr: BenchPort, Len: 1, PIO: true},
		{Name: "MMIO", Image: guest.BenchMMIO.Code, Addr: BenchMMIO, Len: 4},
	} {
		for _, kind := range []string{ClientInProcess, ClientIOEventFD} {
			if _, err := RunEmberExits(ctx, h, g, kind, 64); err != nil {
				t.Errorf("%s %s: %v", g.Name, kind, err)
			}
		}
		if _, err := RunEmberExternalExits(ctx, h, g, dm, 64); err != nil {
			t.Errorf("%s %s: %v", g.Name, ClientExternal, err)
		}
	}
	var out bytes.Buffer
	st, err := Boot(ctx, h, guest.BenchHello.Code, BootConfig{MemorySize: 2 << 20, Console: &out})
	if err != nil || st.Result.Reason != hv.StopExit || out.String() != "ember bench: hello\n" {
		t.Errorf("hello: %v, %v, console %q", st.Result, err, out.String())
	}
}

func TestDensityAndChurn(t *testing.T) {
	kvmtest.Require(t)
	h, err := hv.Open()
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	img, _ := PatchExits(guest.BenchPIO.Code, 0)
	n, why := Density(context.Background(), h, img, 5)
	if n != 5 || why != ErrCapReached {
		t.Errorf("Density = %d, %v; want 5, cap reached", n, why)
	}
	cycles, _, err := Churn(context.Background(), h, img, 2, 50*time.Millisecond)
	if err != nil || cycles == 0 {
		t.Errorf("Churn = %d cycles, %v", cycles, err)
	}
}

// TestPairedRatiosFollowDrift: when the machine slows down between
// repetitions, the median of per-repetition ratios still says what each
// pair says, where the ratio of the medians would not.
func TestPairedRatiosFollowDrift(t *testing.T) {
	const us = time.Microsecond
	tests := []struct {
		name  string
		a, b  []time.Duration
		want  []float64
		wantM float64
	}{
		{"drift", []time.Duration{55 * us, 110 * us, 220 * us}, []time.Duration{50 * us, 100 * us, 200 * us}, []float64{1.1, 1.1, 1.1}, 1.1},
		{"unmeasured repetitions are skipped", []time.Duration{10 * us, 0, 30 * us, 40 * us}, []time.Duration{10 * us, 20 * us, 0, 20 * us}, []float64{1, 2}, 1.5},
		{"uneven lengths", []time.Duration{10 * us, 20 * us}, []time.Duration{20 * us}, []float64{0.5}, 0.5},
		{"none", nil, nil, nil, math.NaN()},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rs := PairedRatios(tc.a, tc.b)
			if len(rs) != len(tc.want) {
				t.Fatalf("PairedRatios = %v, want %v", rs, tc.want)
			}
			for i := range rs {
				if math.Abs(rs[i]-tc.want[i]) > 1e-9 {
					t.Errorf("PairedRatios = %v, want %v", rs, tc.want)
				}
			}
			m := MedianOf(rs)
			if math.IsNaN(tc.wantM) != math.IsNaN(m) || !math.IsNaN(m) && math.Abs(m-tc.wantM) > 1e-9 {
				t.Errorf("MedianOf = %v, want %v", m, tc.wantM)
			}
		})
	}
}

// TestPairedRatiosAreKept: ComputeRatios fills only the ratios AddPaired
// left unset.
func TestPairedRatiosAreKept(t *testing.T) {
	var r Report
	r.Add("g", SubjectC, 100, "ns", "")
	r.Add("g", SubjectQEMU, 200, "ns", "")
	r.AddPaired("g", "ember", 150, "ns", "", 1.05, math.NaN())
	r.ComputeRatios()
	row := r.Rows[2]
	if row.VsC == nil || *row.VsC != 1.05 {
		t.Errorf("VsC = %v, want the paired 1.05", row.VsC)
	}
	if row.VsQEMU == nil || *row.VsQEMU != 0.75 {
		t.Errorf("VsQEMU = %v, want 150/200 from the medians", row.VsQEMU)
	}
}

// TestExitRowBelowTheNoise: a per-exit cost whose median is not positive
// (two runs' difference lost in their noise) becomes an n/a row that says
// so, not a negative time; a positive one gets its paired ratios.
func TestExitRowBelowTheNoise(t *testing.T) {
	o := Options{Params: Params{N: 1600, N0: 160}}
	c := []time.Duration{10000, 10000, 10000}
	qemu := []time.Duration{12000, 12000, 12000}
	var r Report
	addExitRow(&r, o, GroupMMIO, SubjectEmberIOEventFD, "in the kernel", []time.Duration{-194, 300, -50}, c, qemu)
	addExitRow(&r, o, GroupMMIO, SubjectEmberInProcess, "", []time.Duration{11000, 10500, 12000}, c, qemu)
	na, in := r.Rows[0], r.Rows[1]
	if na.Value != nil || na.VsC != nil || !strings.Contains(na.Note, "n/a") || !strings.Contains(na.Note, "raise --n") {
		t.Errorf("below-noise row = %+v; want no value, no ratio, an n/a note", na)
	}
	if in.Value == nil || *in.Value != 11000 || in.VsC == nil || math.Abs(*in.VsC-1.1) > 1e-9 {
		t.Errorf("measured row = %+v; want 11000 ns, 1.10× C", in)
	}
}

// TestAStuckExitRunIsRunAgain: a measurement that outlives its limit (a lab
// guest that stopped exiting) is run once more; twice is an error; any
// other failure is returned at once.
func TestAStuckExitRunIsRunAgain(t *testing.T) {
	const limit = 50 * time.Millisecond
	stuck := func(ctx context.Context, n int) (time.Duration, error) {
		<-ctx.Done()
		return 0, errors.New("guest ended with StopHost")
	}
	tests := []struct {
		name    string
		runs    []func(context.Context, int) (time.Duration, error)
		want    time.Duration
		wantErr string
		calls   int
	}{
		{"stuck once", []func(context.Context, int) (time.Duration, error){stuck, func(context.Context, int) (time.Duration, error) { return 5 * time.Millisecond, nil }}, 5 * time.Millisecond, "", 2},
		{"stuck twice", []func(context.Context, int) (time.Duration, error){stuck, stuck}, 0, "not done in 50ms, twice", 2},
		{"failed", []func(context.Context, int) (time.Duration, error){func(context.Context, int) (time.Duration, error) { return 0, errors.New("exit 3") }}, 0, "exit 3", 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			calls := 0
			var log strings.Builder
			d, err := runLimited(context.Background(), &log, limit, "PIO, C", 1600, func(ctx context.Context, n int) (time.Duration, error) {
				calls++
				return tc.runs[calls-1](ctx, n)
			})
			if tc.wantErr == "" && err != nil || tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)) {
				t.Fatalf("runLimited = %v, %v; want error %q", d, err, tc.wantErr)
			}
			if d != tc.want || calls != tc.calls {
				t.Errorf("got %v after %d runs, want %v after %d", d, calls, tc.want, tc.calls)
			}
			if tc.calls == 2 && !strings.Contains(log.String(), "PIO, C: 1600 exits not done in 50ms") {
				t.Errorf("log %q does not say why it ran again", log.String())
			}
		})
	}
}
