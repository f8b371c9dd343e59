package main

import (
	"fmt"
	"runtime"
	"runtime/debug"

	"github.com/spf13/cobra"

	"ember/kvm"
)

// version is ember's version; release builds set it with
// -ldflags "-X main.version=v1.2.3".
var version = "dev"

func newVersionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the versions of ember, Go and the KVM API",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			w := cmd.OutOrStdout()
			rev := ""
			if bi, ok := debug.ReadBuildInfo(); ok {
				for _, s := range bi.Settings {
					if s.Key == "vcs.revision" {
						rev = " (" + s.Value + ")"
					}
				}
			}
			fmt.Fprintf(w, "ember %s%s\n", version, rev)
			fmt.Fprintf(w, "go %s %s/%s\n", runtime.Version(), runtime.GOOS, runtime.GOARCH)
			fmt.Fprintf(w, "kvm api %d required", kvm.APIVersion)
			if sys, err := kvm.Open(); err == nil {
				v, _ := sys.APIVersion()
				fmt.Fprintf(w, ", %d on this host\n", v)
				sys.Close()
			} else {
				fmt.Fprintf(w, "; this host: %v\n", err)
			}
			return nil
		},
	}
}
