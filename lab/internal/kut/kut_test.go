package kut

import (
	"bytes"
	"context"
	"encoding/json"
	"os/exec"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestParseUnittests(t *testing.T) {
	tests := []struct {
		name string
		cfg  string
		want []Test
	}{
		{
			name: "a section with every key, spaces around = or not",
			cfg: `
[x2apic]
file = apic.flat
smp = 2
qemu_params = -cpu qemu64,+x2apic,+tsc-deadline
arch = x86_64
timeout = 30
groups = apic  vmexit
check=/sys/module/kvm/parameters/enable_pmu=Y /proc/sys/kernel/nmi_watchdog=0
accel = kvm
machine = q35
disabled_if = [[ "$TARGET" != qemu ]]
test_args = "-pause_filter_test -svm_unsupported_instruction_intercept_test"
`,
			want: []Test{{
				Name: "x2apic", File: "apic.flat", SMP: "2", Params: "-cpu qemu64,+x2apic,+tsc-deadline",
				Arch: "x86_64", Timeout: "30", Groups: []string{"apic", "vmexit"},
				Check: "/sys/module/kvm/parameters/enable_pmu=Y /proc/sys/kernel/nmi_watchdog=0",
				Accel: "kvm", Machine: "q35", DisabledIf: `[[ "$TARGET" != qemu ]]`,
				TestArgs: `"-pause_filter_test -svm_unsupported_instruction_intercept_test"`,
			}},
		},
		{
			name: "smp defaults to 1; comments, a commented-out section and unknown keys are ignored",
			cfg: `# header
file = ignored.flat
[setjmp]
# a comment
file = setjmp.flat
colour = blue

#[init]
#file = init.flat
`,
			want: []Test{{Name: "setjmp", File: "setjmp.flat", SMP: "1"}},
		},
		{
			name: "the last value of a key wins; extra_params and qemu_params are one field",
			cfg: `[t]
file = a.flat
file = b.flat
extra_params = -m 256
qemu_params = -cpu max
`,
			want: []Test{{Name: "t", File: "b.flat", SMP: "1", Params: "-cpu max"}},
		},
		{
			name: "blanks around lines are stripped, as bash's read does",
			cfg:  "  [t]  \n\tfile = t.flat\t\n",
			want: []Test{{Name: "t", File: "t.flat", SMP: "1"}},
		},
		{
			name: "triple-quoted parameters span lines; a trailing backslash joins them",
			cfg: `[t]
file = t.flat
qemu_params = """-cpu max \
  -m 2048
-device pc-testdev"""
smp = 3
`,
			want: []Test{{Name: "t", File: "t.flat", SMP: "3", Params: "-cpu max   -m 2048\n-device pc-testdev"}},
		},
		{
			name: "an empty section name is dropped",
			cfg:  "[]\nfile = x.flat\n[b]\nfile = b.flat\n",
			want: []Test{{Name: "b", File: "b.flat", SMP: "1"}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseUnittests(strings.NewReader(tt.cfg))
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got  %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

func TestParseUnittestsUnterminatedTripleQuote(t *testing.T) {
	_, err := parseUnittests(strings.NewReader("[t]\nqemu_params = \"\"\"-cpu max\n-m 1\n"))
	if err == nil || !strings.Contains(err.Error(), "[t]") {
		t.Fatalf("err = %v, want an error naming the test", err)
	}
}

func TestKutClassify(t *testing.T) {
	tests := []struct {
		name     string
		status   int
		timedOut bool
		stderr   string
		want     string
	}{
		{"exit(0): status 1 passes", 1, false, "", kutPass},
		{"status 1 with only warnings on stderr passes", 1, false, "qemu-system-x86_64: warning: host doesn't support requested feature: CPUID.01H:ECX.vmx [bit 5]\n", kutPass},
		{"status 1 with ember's logged warnings passes", 1, false, "time=2026-01-01T00:00:00Z level=WARN msg=\"unhandled MSR\"\n", kutPass},
		{"status 1 with an error on stderr fails (the VMM failed)", 1, false, "ember: reading kernel: no such file\n", kutFail},
		{"exit(1), failures: status 3 fails", 3, false, "", kutFail},
		{"report_summary's all-skipped exit(38): status 77 skips", 77, false, "", kutSkip},
		{"abort(): status 127 fails", 127, false, "", kutFail},
		{"no debug exit: status 0 fails", 0, false, "", kutFail},
		{"ember: the guest shut down (125) fails", 125, false, "", kutFail},
		{"killed at the time-out", -1, true, "", kutTimeout},
		{"a time-out wins over a passing status", 1, true, "", kutTimeout},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := kutClassify(tt.status, tt.timedOut, tt.stderr); got != tt.want {
				t.Errorf("kutClassify(%d, %v, %q) = %s, want %s", tt.status, tt.timedOut, tt.stderr, got, tt.want)
			}
		})
	}
}

func TestParseTimeoutDuration(t *testing.T) {
	tests := []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{"90s", 90 * time.Second, true},
		{"30", 30 * time.Second, true},
		{"1.5m", 90 * time.Second, true},
		{"2h", 2 * time.Hour, true},
		{"1d", 24 * time.Hour, true},
		{".5", 500 * time.Millisecond, true},
		{"90 s", 0, false},
		{"ten", 0, false},
		{"", 0, false},
	}
	for _, tt := range tests {
		got, err := parseTimeoutDuration(tt.in)
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("parseTimeoutDuration(%q) = %v, %v; want %v, ok %v", tt.in, got, err, tt.want, tt.ok)
		}
	}
}

func TestKutTestTimeout(t *testing.T) {
	tests := []struct {
		name     string
		timeout  string
		override time.Duration
		want     time.Duration
	}{
		{"no timeout line: the suite's 90 s", "", 0, 90 * time.Second},
		{"the section's timeout", "180", 0, 180 * time.Second},
		{"the override (TIMEOUT) wins", "180", 5 * time.Minute, 5 * time.Minute},
	}
	for _, tt := range tests {
		got, err := kutTestTimeout(Test{Name: "t", Timeout: tt.timeout}, tt.override)
		if err != nil || got != tt.want {
			t.Errorf("%s: got %v, %v; want %v", tt.name, got, err, tt.want)
		}
	}
}

func TestKutPreSkip(t *testing.T) {
	tests := []struct {
		name  string
		test  Test
		named bool
		want  string
	}{
		{"an ordinary test runs", Test{File: "a.flat"}, false, ""},
		{"the build's arch runs", Test{Arch: "x86_64"}, false, ""},
		{"another arch is skipped", Test{Arch: "i386"}, false, "i386 only"},
		{"nodefault is skipped when not named", Test{Groups: []string{"vmx", "nodefault"}}, false, "test marked as manual run only"},
		{"nodefault runs when named", Test{Groups: []string{"nodefault"}}, true, ""},
		{"accel = kvm runs in the lab", Test{Accel: "kvm"}, false, ""},
		{"accel = tcg is skipped", Test{Accel: "tcg"}, false, "tcg only, but ACCEL=kvm"},
	}
	for _, tt := range tests {
		if got := kutPreSkip(tt.test, "x86_64", tt.named); got != tt.want {
			t.Errorf("%s: got %q, want %q", tt.name, got, tt.want)
		}
	}
}

func TestKutEmberParams(t *testing.T) {
	tests := []struct {
		name       string
		params     string
		memory     string
		mask       []string
		notApplied []string
		hyperV     bool
		hvTestDev  bool
		iommu, edu bool
	}{
		{"none", "", "", nil, nil, false, false, false, false},
		{"-cpu max is ember's own CPUID", "-cpu max", "", nil, nil, false, false, false, false},
		{"-cpu host,-feature masks it", "-cpu host,-x2apic", "", []string{"x2apic"}, nil, false, false, false, false},
		{"a CPU model is not applied; its removed features are masked",
			"-cpu qemu64,-x2apic,+tsc-deadline", "", []string{"x2apic"}, []string{"-cpu qemu64,+tsc-deadline"}, false, false, false, false},
		{"QEMU's feature names with dashes", "-cpu max,-tsc-deadline,pcid=off", "", []string{"tsc_deadline", "pcid"}, nil, false, false, false, false},
		{"features ember cannot hide are listed", "-cpu max,+svm,-npt", "", nil, []string{"-cpu max,+svm,-npt"}, false, false, false, false},
		{"-m in MiB", "-cpu host -m 2048", "2048M", nil, nil, false, false, false, false},
		{"-m with a suffix", "-m 4g", "4096M", nil, nil, false, false, false, false},
		{"-enable-kvm is ember's way anyway", "-enable-kvm -m 2048 -cpu host", "2048M", nil, nil, false, false, false, false},
		{"intel-iommu is --iommu and edu --edu; the machine options are listed",
			"-M q35,kernel-irqchip=split -device intel-iommu,intremap=on,eim=off -device edu -overcommit cpu-pm=on",
			"", nil, []string{"-M q35,kernel-irqchip=split", "-overcommit cpu-pm=on"}, false, false, true, true},
		{"intel-iommu with extended interrupt mode is not applied", "-device intel-iommu,eim=on -device pci-bridge",
			"", nil, []string{"-device intel-iommu,eim=on", "-device pci-bridge"}, false, false, false, false},
		{"hv_passthrough is --hyperv", "-cpu host,hv_passthrough", "", nil, nil, true, false, false, false},
		{"named enlightenments are --hyperv, and the SynIC test device is --hyperv-testdev",
			"-cpu host,hv_synic,hv_vpindex,-x2apic -device hyperv-testdev", "", []string{"x2apic"}, nil, true, true, false, false},
		{"the SynIC test device before the enlightenments", "-device hyperv-testdev -cpu host,hv_passthrough", "", nil, nil, true, true, false, false},
		{"the SynIC test device without enlightenments is not applied", "-device hyperv-testdev", "", nil, []string{"-device hyperv-testdev"}, false, false, false, false},
		{"an enlightenment turned off is not --hyperv", "-cpu host,hv_time=off", "", nil, []string{"-cpu host,hv_time=off"}, false, false, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := kutEmberParams(strings.Fields(tt.params))
			if err != nil {
				t.Fatal(err)
			}
			if p.memory != tt.memory || !reflect.DeepEqual(p.mask, tt.mask) || !reflect.DeepEqual(p.notApplied, tt.notApplied) || p.hyperV != tt.hyperV || p.hvTestDev != tt.hvTestDev ||
				p.iommu != tt.iommu || p.edu != tt.edu {
				t.Errorf("got %q %q %q hyperv=%v testdev=%v iommu=%v edu=%v; want %q %q %q hyperv=%v testdev=%v iommu=%v edu=%v",
					p.memory, p.mask, p.notApplied, p.hyperV, p.hvTestDev, p.iommu, p.edu,
					tt.memory, tt.mask, tt.notApplied, tt.hyperV, tt.hvTestDev, tt.iommu, tt.edu)
			}
		})
	}
	if _, err := kutEmberParams([]string{"-m", "lots"}); err == nil {
		t.Error("-m lots: no error")
	}
}

func TestKutDetail(t *testing.T) {
	out := "enabling apic\nPASS: one\r\nFAIL: nmi-after-sti\nFAIL: second\nSUMMARY: 3 tests, 2 unexpected failures\n"
	tests := []struct {
		name  string
		run   kutRun
		ember bool
		want  string
	}{
		{"a pass needs no detail", kutRun{Result: kutPass, Output: out}, true, ""},
		{"a failure: its first failing line", kutRun{Result: kutFail, Status: 3, Output: out}, true, "FAIL: nmi-after-sti"},
		{"an unexpected exception", kutRun{Result: kutFail, Status: 127, Output: "x\nUnhandled exception 13 #GP at ip 0000000000401234\n"}, true,
			"Unhandled exception 13 #GP at ip 0000000000401234"},
		{"an assertion", kutRun{Result: kutFail, Status: 127, Output: "lib/x86/smp.c:12: assert failed: ok\n"}, true, "lib/x86/smp.c:12: assert failed: ok"},
		{"a time-out: the last line", kutRun{Result: kutTimeout, Output: "PASS: a\nwaiting\n\n"}, true, "timed out after 1m30s; last line: waiting"},
		{"a skip: the first SKIP line", kutRun{Result: kutSkip, Status: 77, Output: "SKIP: no x2apic\nSUMMARY: 1 tests, 1 skipped\n", Summary: "SUMMARY: 1 tests, 1 skipped"}, true, "SKIP: no x2apic"},
		{"no failing line: the VMM's error", kutRun{Result: kutFail, Status: 1, Stderr: "level=WARN msg=x\nember: multiboot: segment outside RAM\n"}, true, "ember: multiboot: segment outside RAM"},
		{"ember's triple fault", kutRun{Result: kutFail, Status: 125, Output: "enabling apic\n"}, true, "the guest shut down (triple fault) (status 125); last line: enabling apic"},
		{"QEMU's 125 is just a status", kutRun{Result: kutFail, Status: 125, Output: "x\n"}, false, "exit status 125; last line: x"},
		{"QEMU without the debug exit", kutRun{Result: kutFail, Status: 0, Output: "test pte."}, false,
			"exited with status 0, without the debug exit (with --no-reboot: the guest reset, e.g. a triple fault); last line: test pte."},
		{"a test's own FAIL inside a line", kutRun{Result: kutFail, Status: 0, Output: "test pte.p: FAIL: error code 8 expected 9\n"}, false,
			"test pte.p: FAIL: error code 8 expected 9"},
	}
	for _, tt := range tests {
		if got := kutDetail(tt.run, 90*time.Second, tt.ember); got != tt.want {
			t.Errorf("%s: got %q, want %q", tt.name, got, tt.want)
		}
	}
}

func TestKutWhy(t *testing.T) {
	const sum = "SUMMARY: 2 tests"
	done := func(result, detail, output string, status int) kutRun {
		return kutRun{Result: result, Detail: detail, Output: output, Status: status, Summary: sum}
	}
	tests := []struct {
		name        string
		ember, qemu kutRun
		want        string
	}{
		{"both pass", done(kutPass, "", "", 1), done(kutPass, "", "", 1), ""},
		{"ember fails: its detail", done(kutFail, "FAIL: x", "FAIL: x\n", 3), done(kutPass, "", "", 1), "FAIL: x"},
		{"ember times out", kutRun{Result: kutTimeout, Detail: "timed out after 1m30s; last line: y"}, done(kutPass, "", "", 1), "timed out after 1m30s; last line: y"},
		{"QEMU is the one that fails: its detail", done(kutPass, "", "", 1), done(kutFail, "FAIL: q", "FAIL: q\n", 3), "QEMU: FAIL: q"},
		{"both fail alike", done(kutFail, "FAIL: x", "FAIL: x\n", 3), done(kutFail, "FAIL: x", "FAIL: x\n", 3), ""},
		{"both fail, ember more", done(kutFail, "FAIL: x", "FAIL: x\nFAIL: y\n", 3), done(kutFail, "FAIL: x", "FAIL: x\n", 3), "ember only: FAIL: y"},
		{"both shut down after the same failures (ember 125, QEMU 0)",
			kutRun{Result: kutFail, Status: 125, Output: "FAIL: x\n"}, kutRun{Result: kutFail, Status: 0, Output: "FAIL: x\n"}, ""},
		{"QEMU's guest stopped early: ember's later failures are not ember's alone",
			kutRun{Result: kutFail, Status: 125, Output: "t1: FAIL: a\nt2: FAIL: b\n"}, kutRun{Result: kutFail, Status: 0, Output: "t1: FAIL: a\n"},
			"ember: 2 failing lines, status 125; QEMU: 1, status 0"},
		{"same failures, different endings", done(kutFail, "", "FAIL: x\n", 127), done(kutFail, "", "FAIL: x\n", 3), "ember: 1 failing lines, status 127; QEMU: 1, status 3"},
		{"both time out, ember failing on the way", kutRun{Result: kutTimeout, Output: "FAIL: z\n"}, kutRun{Result: kutTimeout, Output: "PASS: z\n"}, "ember only: FAIL: z"},
		{"both time out alike", kutRun{Result: kutTimeout, Status: -1, Output: "FAIL: z\n"}, kutRun{Result: kutTimeout, Output: "FAIL: z\n"}, ""},
		{"both skip", done(kutSkip, "", "", 77), done(kutSkip, "", "", 77), ""},
	}
	for _, tt := range tests {
		if got := kutWhy(Result{Ember: tt.ember, QEMU: tt.qemu}); got != tt.want {
			t.Errorf("%s: got %q, want %q", tt.name, got, tt.want)
		}
	}
}

func TestKutEval(t *testing.T) {
	if _, err := exec.LookPath("bash"); err != nil {
		t.Skip("no bash")
	}
	tests := []struct {
		value string
		want  []string
	}{
		{"", nil},
		{"'cpuid'", []string{"cpuid"}},
		{"tscdeadline", []string{"tscdeadline"}},
		{`"-pause_filter_test -svm_unsupported_instruction_intercept_test"`, []string{"-pause_filter_test -svm_unsupported_instruction_intercept_test"}},
		{`"10000000 ` + "`echo 42`" + `"`, []string{"10000000 42"}},
		{"-cpu max,+vmx -m 2048", []string{"-cpu", "max,+vmx", "-m", "2048"}},
		{"$MAX_SMP", []string{"7"}},
	}
	for _, tt := range tests {
		got, err := kutEval(context.Background(), t.TempDir(), []string{"MAX_SMP=7", "PATH=/usr/bin:/bin"}, tt.value)
		if err != nil || !reflect.DeepEqual(got, tt.want) {
			t.Errorf("kutEval(%q) = %q, %v; want %q", tt.value, got, err, tt.want)
		}
	}
}

func TestKutCollectorJoinsResultLines(t *testing.T) {
	w := kutWire{Result: Result{Test: "setjmp", Ember: kutRun{Result: kutPass}, QEMU: kutRun{Result: kutPass}}, EmberOutput: "a\nb\n"}
	b, err := json.Marshal(w)
	if err != nil {
		t.Fatal(err)
	}
	var progress bytes.Buffer
	c := &Collector{total: 1, progress: &progress}
	line := kutMarker + string(b) + "\n"
	// The lab's output arrives in pieces; other lines pass to progress.
	c.Write([]byte("ok  \tkut setjmp\t1.0s\n" + line[:10]))
	c.Write([]byte(line[10:]))
	got := c.Results()
	if len(got) != 1 || got["setjmp"].Ember.Result != kutPass {
		t.Fatalf("results = %+v", got)
	}
	if ws := c.Wires(); ws[0].EmberOutput != "a\nb\n" {
		t.Errorf("output = %q", ws[0].EmberOutput)
	}
	if !strings.HasPrefix(progress.String(), "ok  \tkut setjmp") {
		t.Errorf("progress = %q", progress.String())
	}
}

func TestKutPlanMergeKeepsOrderAndMissingResults(t *testing.T) {
	tree := &Tree{Dir: "/k", Arch: "x86_64", Tests: []Test{
		{Name: "a", SMP: "1"}, {Name: "b", SMP: "1", Arch: "i386"}, {Name: "c", SMP: "1", Timeout: "10"},
	}}
	p, err := NewPlan(tree, "", 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(p.ToRun) != 2 || p.skip["b"].Ember.Detail != "i386 only" {
		t.Fatalf("plan = %+v", p)
	}
	res := p.Merge(map[string]Result{"c": {Test: "c", Ember: kutRun{Result: kutPass}, QEMU: kutRun{Result: kutPass}}})
	var got []string
	for _, r := range res {
		got = append(got, r.Test+":"+r.Ember.Result)
	}
	if want := []string{"a:FAIL", "b:SKIP", "c:PASS"}; !reflect.DeepEqual(got, want) {
		t.Errorf("merged = %v, want %v", got, want)
	}
	if _, err := NewPlan(tree, "a,nope", 0); err == nil {
		t.Error("an unknown test name: no error")
	}
}

func TestKutVerdict(t *testing.T) {
	pass, fail := kutRun{Result: kutPass}, kutRun{Result: kutFail}
	if err := Verdict([]Result{{Test: "a", Ember: pass, QEMU: pass}, {Test: "b", Ember: pass, QEMU: fail}, {Test: "c", Ember: fail, QEMU: fail}}); err != nil {
		t.Errorf("ember passes all QEMU passes: %v", err)
	}
	if err := Verdict([]Result{{Test: "a", Ember: fail, QEMU: pass}}); err == nil || !strings.Contains(err.Error(), "a") {
		t.Errorf("ember behind QEMU on a: %v", err)
	}
}
