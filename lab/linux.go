package main

import (
	"fmt"

	"github.com/spf13/cobra"
)

func newLinuxCmd(o *options) *cobra.Command {
	return &cobra.Command{
		Use:    "linux",
		Short:  "boot Debian's kernel to userspace under ember and under QEMU, inside the lab",
		Hidden: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			return fmt.Errorf("not yet")
		},
	}
}
