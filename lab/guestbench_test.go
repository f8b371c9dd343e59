package main

import (
	"slices"
	"testing"
)

// TestComparedTwinsEachEmberSubject: --compare adds, right after each of
// ember's subjects, the same boot with the other binary wherever ember's
// binary was named (the back-end's shell script included), and leaves
// QEMU's subjects alone.
func TestComparedTwinsEachEmberSubject(t *testing.T) {
	subjects := []subject{
		{name: "ember (virtio-pci)", argv: []string{"/a/ember", "run", "--disk", "d"}},
		{name: "QEMU vhost=off", argv: []string{"qemu", "-kernel", "k"}},
		{name: "ember back-end process", argv: []string{"/bin/sh", "-c", "script", "sh", "sock", "/a/ember", "d", "/a/ember", "run"}},
	}
	f := benchFlags{ember: "/a/ember"}
	if got := f.compared(subjects); len(got) != 3 {
		t.Fatalf("without --compare: %d subjects, want the 3 given", len(got))
	}
	f.compare = "/work/b/ember"
	got := f.compared(subjects)
	want := []subject{
		subjects[0],
		{name: "ember-B (virtio-pci)", argv: []string{"/work/b/ember", "run", "--disk", "d"}},
		subjects[1],
		subjects[2],
		{name: "ember-B back-end process", argv: []string{"/bin/sh", "-c", "script", "sh", "sock", "/work/b/ember", "d", "/work/b/ember", "run"}},
	}
	if len(got) != len(want) {
		t.Fatalf("%d subjects, want %d: %v", len(got), len(want), got)
	}
	for i := range want {
		if got[i].name != want[i].name || !slices.Equal(got[i].argv, want[i].argv) {
			t.Errorf("subject %d = %q %q, want %q %q", i, got[i].name, got[i].argv, want[i].name, want[i].argv)
		}
	}
	if subjects[0].argv[0] != "/a/ember" {
		t.Error("compared changed the subjects it was given")
	}
}

// TestPickKeepsSubjectsByPrefix: --only keeps the subjects whose name
// starts with any of its comma-separated prefixes, in their order.
func TestPickKeepsSubjectsByPrefix(t *testing.T) {
	subjects := []subject{{name: "ember (virtio-pci)"}, {name: "QEMU vhost=off"}, {name: "ember vhost=on"}, {name: "QEMU vhost=on"}}
	for _, tt := range []struct {
		only string
		want []string
	}{
		{"", []string{"ember (virtio-pci)", "QEMU vhost=off", "ember vhost=on", "QEMU vhost=on"}},
		{"ember", []string{"ember (virtio-pci)", "ember vhost=on"}},
		{"ember (", []string{"ember (virtio-pci)"}},
		{"ember (,QEMU vhost=off", []string{"ember (virtio-pci)", "QEMU vhost=off"}},
		{"QEMU vhost=on,ember vhost", []string{"ember vhost=on", "QEMU vhost=on"}},
		{"xen", nil},
	} {
		f := benchFlags{only: tt.only}
		var got []string
		for _, s := range f.pick(slices.Clone(subjects)) {
			got = append(got, s.name)
		}
		if !slices.Equal(got, tt.want) {
			t.Errorf("--only %q kept %q, want %q", tt.only, got, tt.want)
		}
	}
}

// TestWrappedPutsTheCommandInFront: --wrap runs ember's subjects under its
// command (its words in front of theirs), QEMU's too with --wrap-all, and
// changes nothing without it.
func TestWrappedPutsTheCommandInFront(t *testing.T) {
	subjects := []subject{
		{name: "ember (virtio-pci)", argv: []string{"/a/ember", "run"}},
		{name: "QEMU -M pc", argv: []string{"qemu", "-m", "512M"}},
	}
	for _, tt := range []struct {
		wrap    string
		wrapAll bool
		want    [][]string
	}{
		{"", false, [][]string{{"/a/ember", "run"}, {"qemu", "-m", "512M"}}},
		{"perf record -g --", false, [][]string{{"perf", "record", "-g", "--", "/a/ember", "run"}, {"qemu", "-m", "512M"}}},
		{"/w/sample", true, [][]string{{"/w/sample", "/a/ember", "run"}, {"/w/sample", "qemu", "-m", "512M"}}},
	} {
		f := benchFlags{wrap: tt.wrap, wrapAll: tt.wrapAll}
		got := f.wrapped(subjects)
		for i := range tt.want {
			if !slices.Equal(got[i].argv, tt.want[i]) {
				t.Errorf("--wrap %q (all %v): subject %d runs %q, want %q", tt.wrap, tt.wrapAll, i, got[i].argv, tt.want[i])
			}
		}
	}
	if subjects[0].argv[0] != "/a/ember" {
		t.Error("wrapped changed the subjects it was given")
	}
}

// TestBaselinesAreComparedNotTwinned: QEMU's subjects and the lab with no
// VM are what ember's subjects are divided by — a column for each of
// ember's over each of them — and --compare and --wrap leave them alone.
func TestBaselinesAreComparedNotTwinned(t *testing.T) {
	subjects := []subject{
		{name: "ember (virtio-pci)", argv: []string{"/a/ember", "run"}},
		{name: "QEMU -M pc", argv: []string{"qemu"}},
		{name: limitName + " (blkbench on the image: the limit)", argv: []string{"/a/blkbench", "/dev/shm/d.img"}},
		{name: "ember back-end process", argv: []string{"/bin/bash", "-c", "script", "/a/ember"}},
	}
	if got, want := ratioPairs(subjects), [][2]int{{0, 1}, {0, 2}, {3, 1}, {3, 2}}; !slices.Equal(got, want) {
		t.Errorf("ratio columns %v, want %v", got, want)
	}
	f := benchFlags{ember: "/a/ember", compare: "/b/ember", wrap: "/w/sample"}
	got := f.wrapped(f.compared(subjects))
	if len(got) != 6 {
		t.Errorf("%d subjects with --compare, want 6: each of ember's two twinned, the baselines not", len(got))
	}
	for _, s := range got {
		if isBaseline(s) && s.argv[0] == "/w/sample" {
			t.Errorf("baseline %q was wrapped: %q", s.name, s.argv)
		}
	}
}

// TestRatioTextLeavesOutZeroBaselines: a median over a baseline's zero
// (a KVM counter of a subject with no VM) is "-", not +Inf.
func TestRatioTextLeavesOutZeroBaselines(t *testing.T) {
	for _, tt := range []struct {
		a, b float64
		want string
	}{{3, 2, "1.50"}, {0, 2, "0.00"}, {5, 0, "-"}, {0, 0, "-"}} {
		if got := ratioText(tt.a, tt.b); got != tt.want {
			t.Errorf("ratioText(%v, %v) = %q, want %q", tt.a, tt.b, got, tt.want)
		}
	}
}
