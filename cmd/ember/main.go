// Command ember is the ember virtual machine monitor's command line.
//
//	ember run              boot the built-in demo guest
//	ember run --guest NAME boot another built-in tiny guest
//	ember daemon           serve the REST API that runs many VMs
//	ember vm ...           drive a daemon's VMs
//	ember backend blk      serve a virtio-blk disk to ember run from another process
//	ember kvm-info         what this host's KVM offers
//	ember version          versions of ember, Go and the KVM API
package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"ember/internal/cli"
)

// exitError carries a process exit status out of a command (the guest's
// status, for `ember run`) without printing anything more.
type exitError struct{ code int }

func (e exitError) Error() string { return fmt.Sprintf("exit status %d", e.code) }

// ExitStatus makes exitError a cli.Status.
func (e exitError) ExitStatus() int { return e.code }

func newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:   "ember",
		Short: "ember is a virtual machine monitor for Linux KVM",
		Long: `ember runs hardware-isolated guests on Linux KVM.

Run 'ember run' with no arguments to boot the built-in demo guest.`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(newRunCmd(), newVersionCmd(), newKVMInfoCmd())
	root.AddCommand(newBenchCmd())
	root.AddCommand(newHypercallCmd())
	root.AddCommand(newDaemonCmd(), newVMCmd())
	root.AddCommand(newBackendCmd())
	return root
}

func main() {
	cli.Exit("ember", newRootCmd().Execute())
}
