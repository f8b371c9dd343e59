package main

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"ember/internal/gobuild"
	"ember/lab/job"
)

func newExecCmd(o *options) *cobra.Command {
	var raw bool
	cmd := &cobra.Command{
		Use:   "exec [--raw] -- ARGS...",
		Short: "run an ember command (or, with --raw, any command) inside the lab",
		Long: `exec builds ember on this machine and runs 'ember ARGS...' inside the lab,
in the current directory, with the output streamed here and ember's exit
status as lab's. With --raw, ARGS is any command of this machine's root
filesystem (for example: --raw -- /bin/sh -c 'dmesg | tail').`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := newSession(o)
			if err != nil {
				return err
			}
			defer s.close()
			if !raw {
				s.p.say("building ember")
				bin, err := gobuild.Build(cmd.Context(), s.dir, "ember/cmd/ember")
				if err != nil {
					return err
				}
				args = append([]string{bin}, args...)
			} else if !filepath.IsAbs(args[0]) {
				return fmt.Errorf("with --raw the command must be an absolute path, not %q", args[0])
			}
			wd, err := os.Getwd()
			if err != nil {
				return err
			}
			return s.run(cmd.Context(), job.Job{Steps: []job.Step{{
				Label: filepath.Base(args[0]), Dir: wd, Args: args, Env: labEnv(),
			}}})
		},
	}
	cmd.Flags().BoolVar(&raw, "raw", false, "run ARGS as a command, not as ember's arguments")
	return cmd
}
