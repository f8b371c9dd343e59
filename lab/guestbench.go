package main

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"maps"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"ember/internal/gobuild"
	"ember/internal/linuxguest"
	"ember/lab/internal/bootcost"
	"ember/lab/job"
)

// guestBench is a lab benchmark run by a program inside a Linux guest
// (internal/linuxguest/PROG, put in the test initramfs as /bin/PROG), under
// ember and under QEMU: the command the user types and the hidden one it
// runs inside the lab.
type guestBench struct {
	use, short, long string
	prog             string // the guest program's package, under internal/linuxguest
	inner            string // the hidden command run inside the lab
}

// newGuestBenchCmd is the user's command of b: it builds ember, the lab
// binary, the guest program and its initramfs on this machine and runs the
// inner command in the lab with them, and with the arguments after "--".
func newGuestBenchCmd(o *options, b guestBench) *cobra.Command {
	var kernel string
	var reps int
	var verbose bool
	var records string
	cmd := &cobra.Command{
		Use:   b.use,
		Short: b.short,
		Long:  b.long,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) > 0 && cmd.ArgsLenAtDash() != 0 {
				return fmt.Errorf("unexpected arguments %q (the inner command's flags go after --)", args)
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, extra []string) error {
			if kernel == "" {
				kernel = os.Getenv("EMBER_KERNEL")
			}
			if kernel == "" {
				return fmt.Errorf("--kernel or $EMBER_KERNEL: a Debian kernel with its virtio modules (see .ci/run)")
			}
			s, err := newSession(o)
			if err != nil {
				return err
			}
			defer s.close()
			if records != "" {
				f, err := os.Create(records)
				if err != nil {
					return fmt.Errorf("--records: %w", err)
				}
				defer f.Close()
				s.records = f
			}
			args, err := buildGuestBench(cmd.Context(), s, kernel, b.prog)
			if err != nil {
				return err
			}
			args = append([]string{args[0], b.inner}, append(args[1:], "--reps", strconv.Itoa(reps))...)
			if verbose {
				args = append(args, "--verbose")
			}
			args = append(args, extra...)
			wd, _ := os.Getwd()
			return s.run(cmd.Context(), job.Job{Steps: []job.Step{{
				Label: b.prog,
				Dir:   wd,
				Args:  args,
				Env:   labEnv(),
				// A lab that dies mid-run goes on from the boots done.
				ResumeFlag: "--done",
			}}})
		},
	}
	cmd.Flags().StringVar(&kernel, "kernel", "", "the kernel to boot (default $EMBER_KERNEL)")
	cmd.Flags().IntVar(&reps, "reps", 3, "boots per subject; the table shows medians")
	cmd.Flags().BoolVarP(&verbose, "verbose", "v", false, "print each boot's benchmark lines and the VMM's last messages")
	cmd.Flags().StringVar(&records, "records", "", "write each finished boot's measures to this file, one JSON line a boot, for lab pool")
	return cmd
}

// benchFlags are the flags every inner benchmark command takes.
type benchFlags struct {
	ember, kernel, initrd string
	prog                  string // the guest program (static), which a benchmark may also run on the lab itself
	reps                  int
	verbose               bool
	only                  string // boot only the subjects whose name starts with one of its comma-separated prefixes
	compare               string // another ember binary, booted after each of ember's subjects
	done                  string // the records of the boots a run the lab died under finished
	wrap                  string // a command ember's boots run under, for profiling
	wrapAll               bool   // QEMU's boots run under wrap too
	warmUp                int    // boots before the first round, not counted (benchTable.warmUp)
}

// wrapVMMLines is how much of the VMM's standard error --verbose shows of a
// boot run under --wrap: a profiling wrapper reports there.
const wrapVMMLines = 400

// wrapped is subjects with --wrap's command in front of ember's (and of
// QEMU's too with --wrap-all), for profiling with lab exec --raw on a kept
// run directory or with a throwaway wrapper that reports on standard error.
func (f *benchFlags) wrapped(subjects []subject) []subject {
	if f.wrap == "" {
		return subjects
	}
	out := slices.Clone(subjects)
	for i := range out {
		if !isBaseline(out[i]) || f.wrapAll {
			out[i].argv = append(strings.Fields(f.wrap), out[i].argv...)
		}
	}
	return out
}

// pick is the subjects --only keeps: those whose name starts with one of
// its comma-separated prefixes ("ember (,QEMU vhost=off"), or all of them
// when it is empty.
func (f *benchFlags) pick(subjects []subject) []subject {
	if f.only == "" {
		return subjects
	}
	prefixes := strings.Split(f.only, ",")
	return slices.DeleteFunc(subjects, func(s subject) bool {
		return !slices.ContainsFunc(prefixes, func(p string) bool { return strings.HasPrefix(s.name, p) })
	})
}

// compared adds after each of ember's subjects its twin booted by the
// ember binary --compare names, as "ember-B ...": the two builds then
// alternate boot by boot in one lab, which an A/B comparison needs in a
// lab whose speed drifts, and the table gives each its medians and its
// ratios to QEMU. Without --compare it returns subjects as they are.
func (f *benchFlags) compared(subjects []subject) []subject {
	if f.compare == "" {
		return subjects
	}
	var out []subject
	for _, s := range subjects {
		out = append(out, s)
		if isBaseline(s) {
			continue
		}
		argv := slices.Clone(s.argv)
		for i, a := range argv {
			if a == f.ember {
				argv[i] = f.compare
			}
		}
		out = append(out, subject{name: strings.Replace(s.name, "ember", "ember-B", 1), argv: argv})
	}
	return out
}

// table is t with the flags' verbosity and the boots a run the lab died
// under finished (--done).
func (f *benchFlags) table(t benchTable) (benchTable, error) {
	t.verbose = f.verbose
	t.warmUp = f.warmUp
	if f.wrap != "" {
		t.vmmLines = wrapVMMLines
	}
	if f.done == "" {
		return t, nil
	}
	var err error
	t.done, err = readRecords(f.done)
	return t, err
}

// add defines the flags on cmd.
func (f *benchFlags) add(cmd *cobra.Command) {
	fs := cmd.Flags()
	fs.StringVar(&f.ember, "ember", "", "ember binary")
	fs.StringVar(&f.kernel, "kernel", "", "kernel")
	fs.StringVar(&f.initrd, "initrd", "", "initramfs")
	fs.StringVar(&f.prog, "prog", "", "the guest program, as built for the initramfs")
	fs.IntVar(&f.reps, "reps", 3, "boots per subject")
	fs.BoolVar(&f.verbose, "verbose", false, "print each boot's benchmark lines and the VMM's last messages")
	fs.StringVar(&f.only, "only", "", "boot only the subjects whose name starts with this (several: separated by commas)")
	fs.StringVar(&f.done, "done", "", "the records of the boots finished before the lab died (the host passes them: job.Step.ResumeFlag)")
	fs.StringVar(&f.compare, "compare", "", "another ember binary (a host path: the lab sees the host's files), booted after each of ember's subjects as ember-B, for an A/B comparison")
	fs.StringVar(&f.wrap, "wrap", "", "a command ember runs under (e.g. perf record -g --)")
	fs.IntVar(&f.warmUp, "warm-up", 1, "boots of the first subject before the first round, not counted: the lab's first VM can run slow")
	fs.BoolVar(&f.wrapAll, "wrap-all", false, "run QEMU's boots under --wrap too, for profiles side by side")
}

// buildGuestBench builds, into the session's directory (which the lab
// sees), the lab binary, ember, the initramfs with prog as /bin/PROG and a
// copy of the kernel; it returns the lab binary's path and the inner
// command's flags that name the others.
func buildGuestBench(ctx context.Context, s *session, kernel, prog string) ([]string, error) {
	s.p.say("building ember and the guest's benchmark")
	bin, err := gobuild.BuildStatic(ctx, s.dir, "ember/internal/linuxguest/"+prog)
	if err != nil {
		return nil, err
	}
	data, err := os.ReadFile(bin)
	if err != nil {
		return nil, err
	}
	ird, err := linuxguest.BuildFromSystem(kernel, linuxguest.File{Path: "bin/" + prog, Data: data})
	if err != nil {
		return nil, err
	}
	if ird.Modules == 0 {
		return nil, fmt.Errorf("%s: no virtio modules next to it (lib/modules/VERSION)", kernel)
	}
	irdPath := filepath.Join(s.dir, "bench-initramfs.cpio")
	if err := os.WriteFile(irdPath, ird.Data, 0o644); err != nil {
		return nil, err
	}
	// The kernel is read inside the lab, where only the cache is shared:
	// copy it into the session's directory.
	kb, err := os.ReadFile(kernel)
	if err != nil {
		return nil, err
	}
	kPath := filepath.Join(s.dir, "vmlinuz")
	if err := os.WriteFile(kPath, kb, 0o644); err != nil {
		return nil, err
	}
	ember, err := gobuild.Build(ctx, s.dir, "ember/cmd/ember")
	if err != nil {
		return nil, err
	}
	self, err := gobuild.Build(ctx, s.dir, "ember/lab")
	if err != nil {
		return nil, err
	}
	return []string{self, "--ember", ember, "--kernel", kPath, "--initrd", irdPath, "--prog", bin}, nil
}

// benchTable is what a guest benchmark measures: its title, its measures
// in order, and how one boot gives them (and the console and the VMM's
// standard error, for --verbose).
type benchTable struct {
	title    string
	measures []string
	boot     func(ctx context.Context, argv []string) (map[string]float64, bootOutput, error)
	verbose  bool
	vmmLines int // of the VMM's standard error that --verbose shows; 0 is defaultVMMLines
	// done are the boots a run the lab died under finished (--done):
	// taken as they were, not booted again.
	done map[recordKey]bootRecord
	// warmUp is how many boots runBench makes before its first round and
	// leaves out (--warm-up; 0 in a table built without the flags).
	warmUp int
}

// bootOutput is what a benchmark boot printed.
type bootOutput struct{ console, stderr string }

// notes are the lines of a boot worth showing with --verbose: the guest's
// benchmark lines and the VMM's last messages.
func (o bootOutput) notes(vmmLines int) string {
	var b strings.Builder
	for _, l := range strings.Split(o.console, "\n") {
		if strings.Contains(l, "ember-bench") {
			b.WriteString("  guest: " + strings.TrimSpace(l) + "\n")
		}
	}
	b.WriteString(prefixed(tail(o.stderr, vmmLines), "  vmm:   "))
	return b.String()
}

// prefixed is text's non-blank lines, each led by prefix.
func prefixed(text, prefix string) string {
	var b strings.Builder
	for _, l := range strings.Split(text, "\n") {
		if l != "" {
			b.WriteString(prefix + l + "\n")
		}
	}
	return b.String()
}

// defaultVMMLines is how much of the VMM's standard error --verbose shows
// of each boot unless the table says otherwise.
const defaultVMMLines = 15

// failureLines is how much of a failed boot's console --verbose shows.
const failureLines = 40

// failure is what --verbose shows of a boot that failed: the end of the
// guest's console, whatever it was, and the VMM's last messages (for a boot
// that ran out of time, ember's state reports: reportStuck), so a triple
// fault or a hang can be told from the lab's own trouble.
func (o bootOutput) failure(vmmLines int) string {
	var b strings.Builder
	for _, l := range strings.Split(tail(o.console, failureLines), "\n") {
		b.WriteString("  console: " + strings.TrimRight(l, "\r") + "\n")
	}
	b.WriteString(prefixed(vmmOutput(o.stderr, vmmLines), "  vmm:     "))
	return b.String()
}

// bootTries is how many times runBench boots a subject for one
// repetition before it gives the run up: the lab loses boots of either VMM
// (README, "Host notes"), on some days one in three.
const bootTries = 3

// runBench boots every subject reps times, one boot of each a round, in
// alternating order (roundOrder), and prints the medians of each measure
// with the ratios of ember's subjects to QEMU's (ratioPairs), then the
// same ratios round by round (printPaired). A boot the lab loses every try
// is left out of its round, and the run fails only if a subject has no
// boot left.
func runBench(ctx context.Context, w io.Writer, subjects []subject, reps int, t benchTable) error {
	got := make([]map[string][]float64, len(subjects))
	rounds := make([][]map[string]float64, len(subjects)) // [subject][round]: the boot's measures and counts; nil for a boot left out
	lost := make([]int, len(subjects))                    // boots left out, by subject
	for i := range got {
		got[i] = map[string][]float64{}
		rounds[i] = make([]map[string]float64, reps)
	}
	measures := append(slices.Clone(t.measures), bootcost.UsageMeasures...)
	if err := bootcost.MountDebugfs(); err != nil {
		// The Sampler finds the VMM's process through its VM's debugfs
		// directory, so without debugfs there is no thread split either.
		fmt.Fprintf(w, "no KVM exit counts or CPU split by thread (%v)\n", err)
	} else {
		measures = append(measures, bootcost.SamplerMeasures()...)
	}
	warmUp(ctx, w, t, subjects[roundOrder(len(subjects), 0)[0]])
	for r := 0; r < reps; r++ {
		for _, i := range roundOrder(len(subjects), r) {
			s := subjects[i]
			rec, ok := t.done[recordKey{r + 1, s.name}]
			if ok {
				fmt.Fprintf(w, "boot %d/%d %-28s %v (booted before the lab died)\n", r+1, reps, s.name, rec.Measures)
				fmt.Fprintf(w, "  %s\n", bootcost.Line(rec.Counts))
			} else {
				var err error
				if rec, err = bootTried(ctx, w, t, r+1, reps, s); err != nil {
					if ctx.Err() != nil {
						return err
					}
					// The lab lost this boot every try: the round goes
					// without it rather than the run without the rest.
					fmt.Fprintf(w, "boot %d/%d %-28s left out after %d tries: %v\n", r+1, reps, s.name, bootTries, firstLine(err))
					lost[i]++
					continue
				}
			}
			printRecord(w, rec)
			rounds[i][r] = map[string]float64{}
			for _, mm := range []map[string]float64{rec.Measures, rec.Counts} {
				for k, v := range mm {
					got[i][k] = append(got[i][k], v)
					rounds[i][r][k] = v
				}
			}
		}
	}
	med := func(v []float64) float64 {
		if len(v) == 0 {
			return math.NaN() // printed as NaN: nothing measured
		}
		v = slices.Clone(v)
		slices.Sort(v)
		return median(v)
	}
	fmt.Fprintf(w, "\n%s; median of %d\n", t.title, reps)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprint(tw, "measure")
	for _, s := range subjects {
		fmt.Fprintf(tw, "\t%s", s.name)
	}
	ratios := ratioPairs(subjects)
	printPairHeads(tw, subjects, ratios)
	for _, k := range measures {
		if len(got[0][k]) == 0 {
			continue // no counts of this (a boot's VM gone before the first reading)
		}
		fmt.Fprint(tw, k)
		for i := range subjects {
			fmt.Fprintf(tw, "\t%.1f", med(got[i][k]))
		}
		for _, r := range ratios {
			fmt.Fprintf(tw, "\t%s", ratioText(med(got[r[0]][k]), med(got[r[1]][k])))
		}
		fmt.Fprintln(tw)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if err := printPaired(w, subjects, rounds, t.measures); err != nil {
		return err
	}
	return lostBoots(w, subjects, lost, reps)
}

// Warming the lab up.
//
// The lab's first VM can run slow: on 2026-12-07 evening the first boot of
// a disk run (ember's, in the first round, as every run's first boot had
// been, ember being every benchmark's first subject) read 49 MB/s and 470
// IOPS where that subject's other boots read 74–123 MB/s and 850–1,670
// IOPS, and the QEMU boot right after it was as fast as QEMU's others; the
// warm-up boots of the next two runs were slow on sequential reads only
// (58 MB/s) and not at all. Whatever is cold is the lab's, not a
// subject's (the lab's RAM, which the QEMU it runs in backs only as it is
// first touched, is the likeliest), and one boot of any subject warms it.
// Since a run always starts with the same subject, a slow first boot
// counts against that subject and no other: in that run it brought
// ember's eight-round means of sequential reads, random reads and writes
// from 0.85, 1.12 and 0.88 of QEMU's (rounds 2 to 8) to 0.79, 1.02 and
// 0.83. So runBench boots the first subject --warm-up times (default 1)
// before the first round, in every lab it runs in (a lab booted afresh
// after one died is cold again), and prints what the boot measured
// without counting it.

// warmUp boots s t.warmUp times, printing what each measured, and counts
// none of them; a warm-up that fails is printed and ignored.
func warmUp(ctx context.Context, w io.Writer, t benchTable, s subject) {
	for range t.warmUp {
		m, _, _, err := bootCounted(ctx, t, s.argv)
		if err != nil {
			fmt.Fprintf(w, "warm-up %-30s failed (not counted): %v\n", s.name, firstLine(err))
			continue
		}
		fmt.Fprintf(w, "warm-up %-30s %v (not counted)\n", s.name, m)
	}
}

// ratioText is a over b to two places, or "-" where b is 0 (a KVM
// counter beside a subject that runs no VM): no ratio to print.
func ratioText(a, b float64) string {
	if b == 0 {
		return "-"
	}
	return fmt.Sprintf("%.2f", a/b)
}

// lostBoots says which subjects' boots were left out of the medians, and
// fails the run if a subject has none left.
func lostBoots(w io.Writer, subjects []subject, lost []int, reps int) error {
	for i, n := range lost {
		if n == 0 {
			continue
		}
		fmt.Fprintf(w, "%s: %d of %d boots left out (the lab lost them every try)\n", subjects[i].name, n, reps)
		if n == reps {
			return fmt.Errorf("%s: every boot failed", subjects[i].name)
		}
	}
	return nil
}

// bootTried boots subject s for rep r of reps, up to bootTries times
// while the boot fails, and prints what it measured.
func bootTried(ctx context.Context, w io.Writer, t benchTable, r, reps int, s subject) (bootRecord, error) {
	vmmLines := cmp.Or(t.vmmLines, defaultVMMLines)
	m, counts, out, err := bootCounted(ctx, t, s.argv)
	for try := 1; err != nil && try < bootTries; try++ {
		fmt.Fprintf(w, "boot %d/%d %-28s failed, booting again (lab flake?): %v\n", r, reps, s.name, firstLine(err))
		if t.verbose {
			fmt.Fprint(w, out.failure(vmmLines))
		}
		m, counts, out, err = bootCounted(ctx, t, s.argv)
	}
	if err != nil {
		return bootRecord{}, fmt.Errorf("%s: %w", s.name, err)
	}
	fmt.Fprintf(w, "boot %d/%d %-28s %v\n", r, reps, s.name, m)
	fmt.Fprintf(w, "  %s\n", bootcost.Line(counts))
	if t.verbose {
		fmt.Fprint(w, out.notes(vmmLines))
	}
	return bootRecord{Rep: r, Subject: s.name, Measures: m, Counts: counts}, nil
}

// ratioPairs returns the table's ratio columns: each of ember's subjects
// over each baseline (isBaseline: QEMU's, and the lab with no VM), as
// indices into subjects.
func ratioPairs(subjects []subject) [][2]int {
	var pairs [][2]int
	for i, s := range subjects {
		if isBaseline(s) {
			continue
		}
		for j, b := range subjects {
			if isBaseline(b) {
				pairs = append(pairs, [2]int{i, j})
			}
		}
	}
	return pairs
}

// isBaseline says whether s is one of the baselines ember's subjects are
// compared with: QEMU's, or the lab alone making a device's copies with no
// VM (limitName).
func isBaseline(s subject) bool {
	return strings.HasPrefix(s.name, "QEMU") || strings.HasPrefix(s.name, limitName)
}

// limitName starts the name of a benchmark's subject that runs no VM: the
// guest's program on the lab itself, the limit of what a guest can see.
const limitName = "no VM"

// shortName is a subject's name in a ratio column's heading: without a
// parenthesised note.
func shortName(name string) string {
	name, _, _ = strings.Cut(name, " (")
	return name
}

// bootCounted runs one boot of t with a bootcost.Sampler beside it and
// returns the boot's measures and, apart, what the boot's VMM used
// (bootcost.UsageMeasures) and the KVM counters (where they could be read).
func bootCounted(ctx context.Context, t benchTable, argv []string) (map[string]float64, map[string]float64, bootOutput, error) {
	k := bootcost.StartSampler(bootcost.Debugfs)
	before := bootcost.ReadUsage()
	m, out, err := t.boot(ctx, argv)
	counts := bootcost.ReadUsage().Since(before)
	maps.Copy(counts, k.Finish())
	return m, counts, out, err
}

// bootConsole runs one benchmark boot to its end (at most 5 minutes) and
// returns what the guest and the VMM printed.
func bootConsole(ctx context.Context, argv []string) (bootOutput, error) {
	con, stderr, err := runBoot(ctx, argv, 5*time.Minute)
	if err != nil {
		out := bootOutput{stderr: stderr}
		if con != nil {
			out.console = con.String()
		}
		return out, err
	}
	return bootOutput{console: con.String(), stderr: stderr}, nil
}

// missing is the error of a boot whose guest did not report every measure.
func missing(m map[string]float64, out string) error {
	return fmt.Errorf("the guest reported %v:\n%s", m, tail(strings.TrimSpace(out), 20))
}
