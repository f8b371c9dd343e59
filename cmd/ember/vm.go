package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"ember/api"
	"ember/api/client"
	"ember/machine"
)

// vmClient holds what every `ember vm` command shares: the daemon's socket
// and the output format.
type vmClient struct {
	socket string
	json   bool
}

func (v *vmClient) client() *client.Client { return client.New(v.socket) }

// print writes x as JSON (--json) or with human, the table or text form.
func (v *vmClient) print(w io.Writer, x any, human func(io.Writer)) error {
	if v.json {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(x)
	}
	human(w)
	return nil
}

func newVMCmd() *cobra.Command {
	v := &vmClient{}
	cmd := &cobra.Command{
		Use:   "vm",
		Short: "Drive the VMs of an ember daemon (create, ls, show, start, pause, resume, wake, stop, restart, rm, console, log, state, events)",
		Long: `Drive the VMs of a running 'ember daemon' through its API socket.

Tables are for people; --json prints the API's own JSON for scripts.`,
	}
	pf := cmd.PersistentFlags()
	pf.StringVar(&v.socket, "api-socket", apiSocketDefault(), "the daemon's API socket (default $"+apiSocketEnv+", else "+defaultAPISocket+")")
	pf.BoolVar(&v.json, "json", false, "print JSON")
	cmd.AddCommand(newVMCreateCmd(v), newVMListCmd(v), newVMShowCmd(v), newVMRemoveCmd(v),
		newVMConsoleCmd(v), newVMLogCmd(v), newVMStateCmd(v), newVMEventsCmd(v))
	for _, a := range []struct{ name, short string }{
		{"start", "Start a created or stopped VM"},
		{"pause", "Pause a running VM"},
		{"resume", "Resume a paused VM"},
		{"wake", "Wake a running VM's guest from suspend to RAM (ACPI S3), as its power button would"},
		{"stop", "Stop a running or paused VM"},
	} {
		cmd.AddCommand(newVMActionCmd(v, a.name, a.short))
	}
	cmd.AddCommand(newVMRestartCmd(v), newVMBalloonCmd(v))
	return cmd
}

func newVMBalloonCmd(v *vmClient) *cobra.Command {
	return &cobra.Command{
		Use:   "balloon ID [TARGET]",
		Short: "Show a VM's balloon (target, what the guest gave, its memory statistics), or set its target (64M, 0)",
		Args:  cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			c := v.client()
			var b api.Balloon
			var err error
			if len(args) == 2 {
				b, err = c.SetBalloon(cmd.Context(), args[0], args[1])
			} else {
				b, err = c.Balloon(cmd.Context(), args[0])
			}
			if err != nil {
				return err
			}
			return v.print(cmd.OutOrStdout(), b, func(w io.Writer) {
				tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
				fmt.Fprintf(tw, "Target\t%d MiB\nGiven\t%d MiB\n", b.TargetBytes>>20, b.ActualBytes>>20)
				for _, k := range sortedStatNames(b.Stats) {
					fmt.Fprintf(tw, "%s\t%d\n", k, b.Stats[k])
				}
				if b.Stats != nil {
					fmt.Fprintf(tw, "Stats age\t%.1fs\n", b.StatsAgeSeconds)
				}
				tw.Flush()
			})
		},
	}
}

// sortedStatNames returns a balloon's statistic names in order.
func sortedStatNames(m map[string]uint64) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

func newVMCreateCmd(v *vmClient) *cobra.Command {
	var o machineOptions
	var id string
	var start bool
	cmd := &cobra.Command{
		Use:   "create [--id NAME] [--start] [machine flags as for ember run]",
		Short: "Build a VM in the daemon (the same flags and --config file as ember run)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := o.machineConfig()
			if err != nil {
				return err
			}
			vm, err := v.client().Create(cmd.Context(), api.CreateRequest{ID: id, Config: cfg, Start: start})
			if err != nil {
				return err
			}
			return v.print(cmd.OutOrStdout(), vm, func(w io.Writer) { fmt.Fprintln(w, vm.ID) })
		},
	}
	o.addFlags(cmd.Flags())
	cmd.Flags().StringVar(&id, "id", "", "the VM's name (default: the daemon chooses vm-N)")
	cmd.Flags().BoolVar(&start, "start", false, "start the VM once it is built")
	return cmd
}

func newVMListCmd(v *vmClient) *cobra.Command {
	return &cobra.Command{
		Use:     "ls",
		Aliases: []string{"list"},
		Short:   "List the daemon's VMs",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			vms, err := v.client().List(cmd.Context())
			if err != nil {
				return err
			}
			return v.print(cmd.OutOrStdout(), api.VMList{VMs: vms}, func(w io.Writer) { vmTable(w, vms) })
		},
	}
}

// vmTable prints VMs as a table.
func vmTable(w io.Writer, vms []api.VM) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tSTATE\tORIGIN\tACRN ID\tBOOTS\tEXITS\tLAST STOP\tGUEST")
	for _, vm := range vms {
		acrnID := "-"
		if vm.ACRNID != nil {
			acrnID = fmt.Sprint(*vm.ACRNID)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%d\t%s\t%s\n", vm.ID, vm.State, vm.Origin, acrnID, vm.Boots,
			vm.Counters.Exits, stopText(vm.LastStop), guestText(vm))
	}
	tw.Flush()
}

// stopText is a VM's last stop in a few words.
func stopText(s *api.StopInfo) string {
	switch {
	case s == nil:
		return "-"
	case s.Reason == "exit":
		return fmt.Sprintf("exit %d", s.Status)
	}
	return s.Reason
}

// guestText says what a VM boots.
func guestText(vm api.VM) string {
	switch c := vm.Config; {
	case c == nil:
		return "-"
	case c.Kernel != "":
		return c.Kernel
	case c.BIOS != "":
		return c.BIOS
	case c.Guest != "":
		return c.Guest
	}
	return "demo"
}

func newVMShowCmd(v *vmClient) *cobra.Command {
	return &cobra.Command{
		Use:   "show ID",
		Short: "Show one VM: state, configuration, counters",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			vm, err := v.client().Get(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			return v.print(cmd.OutOrStdout(), vm, func(w io.Writer) { showVM(w, vm) })
		},
	}
}

// showVM prints one VM for people.
func showVM(w io.Writer, vm api.VM) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "ID\t%s\nState\t%s\nOrigin\t%s\n", vm.ID, vm.State, vm.Origin)
	if vm.ACRNID != nil {
		fmt.Fprintf(tw, "ACRN VM ID\t%d\n", *vm.ACRNID)
	}
	fmt.Fprintf(tw, "Created\t%s\nBoots\t%d\nLast stop\t%s\n", vm.CreatedAt.Format(time.RFC3339), vm.Boots, stopText(vm.LastStop))
	if vm.LastStop != nil && vm.LastStop.Error != "" {
		fmt.Fprintf(tw, "Stop error\t%s\n", vm.LastStop.Error)
	}
	if c := vm.Config; c != nil {
		fmt.Fprintf(tw, "Guest\t%s\nCPUs\t%d\nMemory\t%s\n", guestText(vm), c.CPUs, c.Memory)
		for _, d := range c.Disks {
			fmt.Fprintf(tw, "Disk\t%s\n", d.Path)
		}
		for _, n := range c.Nets {
			fmt.Fprintf(tw, "Net\ttap %s\n", n.TAP)
		}
	}
	fmt.Fprintf(tw, "Exits\t%d\nGuest CPU time\t%.3fs\n", vm.Counters.Exits, vm.Counters.GuestTimeSeconds)
	for _, d := range vm.Counters.Disks {
		fmt.Fprintf(tw, "Disk %d I/O\t%d reads (%d bytes), %d writes (%d bytes), %d flushes, %d discards; %d errors\n",
			d.Index, d.Reads, d.ReadBytes, d.Writes, d.WriteBytes, d.Flushes, d.Discards, d.Errors+d.Unsupported)
	}
	for _, n := range vm.Counters.Nets {
		fmt.Fprintf(tw, "Net %d traffic\tsent %d frames (%d bytes), received %d (%d bytes); dropped %d sent, %d received\n",
			n.Index, n.TXPackets, n.TXBytes, n.RXPackets, n.RXBytes, n.TXDropped, n.RXDropped)
	}
	tw.Flush()
}

func newVMActionCmd(v *vmClient, action, short string) *cobra.Command {
	return &cobra.Command{
		Use:   action + " ID",
		Short: short,
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			vm, err := v.client().Action(cmd.Context(), args[0], action)
			if err != nil {
				return err
			}
			return v.print(cmd.OutOrStdout(), vm, func(w io.Writer) { fmt.Fprintf(w, "%s %s\n", vm.ID, vm.State) })
		},
	}
}

func newVMRestartCmd(v *vmClient) *cobra.Command {
	var o machineOptions
	cmd := &cobra.Command{
		Use:   "restart ID [machine flags]",
		Short: "Rebuild a VM's machine and start it; with machine flags or --config, from that configuration instead",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var cfg *machine.Config
			set := false
			cmd.LocalFlags().Visit(func(*pflag.Flag) { set = true })
			if set {
				c, err := o.machineConfig()
				if err != nil {
					return err
				}
				cfg = &c
			}
			vm, err := v.client().Restart(cmd.Context(), args[0], cfg)
			if err != nil {
				return err
			}
			return v.print(cmd.OutOrStdout(), vm, func(w io.Writer) { fmt.Fprintf(w, "%s %s\n", vm.ID, vm.State) })
		},
	}
	o.addFlags(cmd.Flags())
	return cmd
}

func newVMRemoveCmd(v *vmClient) *cobra.Command {
	return &cobra.Command{
		Use:     "rm ID...",
		Aliases: []string{"delete"},
		Short:   "Stop VMs and release them",
		Args:    cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c := v.client()
			for _, id := range args {
				if err := c.Delete(cmd.Context(), id); err != nil {
					return err
				}
			}
			return nil
		},
	}
}

func newVMStateCmd(v *vmClient) *cobra.Command {
	return &cobra.Command{
		Use:   "state ID",
		Short: "Print what a VM is doing now: its vCPUs' registers and LAPICs, the interrupt controllers, COM1, the virtio queues",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := v.client().State(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			_, err = io.WriteString(cmd.OutOrStdout(), s)
			return err
		},
	}
}

func newVMLogCmd(v *vmClient) *cobra.Command {
	var console bool
	cmd := &cobra.Command{
		Use:   "log ID",
		Short: "Print a VM's log (its devices' warnings and errors), or with --console its console's last output",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c := v.client()
			if console {
				b, err := c.ConsoleLog(cmd.Context(), args[0])
				if err != nil {
					return err
				}
				_, err = cmd.OutOrStdout().Write(b)
				return err
			}
			s, err := c.Log(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			_, err = io.WriteString(cmd.OutOrStdout(), s)
			return err
		},
	}
	cmd.Flags().BoolVar(&console, "console", false, "print the console's last output instead")
	return cmd
}

func newVMEventsCmd(v *vmClient) *cobra.Command {
	var only string
	cmd := &cobra.Command{
		Use:   "events",
		Short: "Print the daemon's events as they happen (Ctrl-C ends)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			w := cmd.OutOrStdout()
			enc := json.NewEncoder(w)
			return v.client().Events(cmd.Context(), only, func(e api.Event) bool {
				if v.json {
					enc.Encode(e)
					return true
				}
				line := fmt.Sprintf("%s %-10s %s", e.Time.Format(time.RFC3339), e.Type, e.VM)
				if e.State != "" {
					line += " " + e.State
				}
				if e.Stop != nil {
					line += " (" + stopText(e.Stop) + ")"
				}
				if e.Message != "" {
					line += ": " + e.Message
				}
				fmt.Fprintln(w, line)
				return true
			})
		},
	}
	cmd.Flags().StringVar(&only, "vm", "", "only this VM's events")
	return cmd
}

func newVMConsoleCmd(v *vmClient) *cobra.Command {
	return &cobra.Command{
		Use:   "console ID",
		Short: "Attach to a VM's console (Ctrl-A x detaches; the VM runs on)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, cancel := context.WithCancel(ctxOrBackground(cmd.Context()))
			defer cancel()
			conn, err := v.client().Console(ctx, args[0])
			if err != nil {
				return err
			}
			defer conn.Close()
			in := cmd.InOrStdin()
			defer rawTerminal(in)()
			go pumpInput(ctx, in, &escapeFilter{guest: conn, quit: func() { conn.Close() }})
			_, err = io.Copy(cmd.OutOrStdout(), conn)
			if err != nil && strings.Contains(err.Error(), "use of closed network connection") {
				err = nil // detached with Ctrl-A x
			}
			return err
		},
	}
}
