package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"

	"github.com/spf13/cobra"

	"ember/internal/gobuild"
	"ember/internal/linuxguest"
	"ember/lab/job"
)

// linuxKernelMeta is the kernel `lab linux` boots under ember and QEMU:
// Debian's cloud kernel, the one a cloud user would run.
const linuxKernelMeta = "linux-image-cloud-amd64"

func newLinuxCmd(o *options) *cobra.Command {
	var reps int
	cmd := &cobra.Command{
		Use:   "linux [--reps N]",
		Short: "boot Debian's kernel to userspace under ember and under QEMU, inside the lab, and time both",
		Long: `linux boots Debian's cloud kernel with a busybox initramfs (whose /init
checks what it was given, answers a line typed on the console and powers off)
inside the lab: under ember through each boot path (decompress, bzimage, pvh)
and under QEMU (-accel kvm) on the same kernel and initramfs. It prints, per
boot, the seconds from process start to the kernel's banner, to /init and to
exit, the medians of --reps runs, and ember's ratio to QEMU.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			s, err := newSession(o)
			if err != nil {
				return err
			}
			defer s.close()
			kf, err := ensureKernel(s.p, s.cache, linuxKernelMeta, nil)
			if err != nil {
				return err
			}
			ird, err := linuxguest.BuildFromSystem("")
			if err != nil {
				s.p.say("installing busybox-static (apt-get)")
				if aerr := aptInstall("busybox-static"); aerr != nil {
					return fmt.Errorf("%v; %w", err, aerr)
				}
				if ird, err = linuxguest.BuildFromSystem(""); err != nil {
					return err
				}
			}
			irdPath := filepath.Join(s.dir, "guest-initramfs.cpio") // not the lab's own initramfs.cpio
			if err := os.WriteFile(irdPath, ird.Data, 0o644); err != nil {
				return err
			}
			s.p.say("building ember and the lab's boot timer")
			ember, err := gobuild.Build(cmd.Context(), s.dir, "ember/cmd/ember")
			if err != nil {
				return err
			}
			timer, err := gobuild.Build(cmd.Context(), s.dir, "ember/lab")
			if err != nil {
				return err
			}
			wd, _ := os.Getwd()
			return s.run(cmd.Context(), job.Job{Steps: []job.Step{{
				Label: "linux boots",
				Dir:   wd,
				Args: []string{timer, timeBootsCmd, "--ember", ember, "--kernel", kf.Vmlinuz,
					"--initrd", irdPath, "--sha256", ird.SHA256, "--reps", strconv.Itoa(reps)},
				Env: labEnv(),
			}}})
		},
	}
	cmd.Flags().IntVar(&reps, "reps", 3, "boots per subject; the table shows medians")
	return cmd
}
