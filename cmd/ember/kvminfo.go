package main

import (
	"encoding/json"
	"fmt"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"ember/kvm"
	"ember/kvm/kvmcap"
)

// kvmInfo is what `ember kvm-info` reports.
type kvmInfo struct {
	APIVersion       int            `json:"api_version"`
	VCPUMmapSize     int            `json:"vcpu_mmap_size"`
	RecommendedVCPUs int            `json:"recommended_vcpus"`
	MaxVCPUs         int            `json:"max_vcpus"`
	SupportedCPUID   int            `json:"supported_cpuid_entries"`
	MSRs             int            `json:"msr_index_count"`
	Capabilities     map[string]int `json:"capabilities"`
}

func newKVMInfoCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "kvm-info",
		Short: "Show what this host's KVM offers",
		Long: `Show the KVM API version, the capabilities KVM reports (by name, with
their values), the number of supported CPUID entries and MSRs, and vCPU limits.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			info, caps, err := readKVMInfo()
			if err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			if asJSON {
				enc := json.NewEncoder(w)
				enc.SetIndent("", "  ")
				return enc.Encode(info)
			}
			tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
			fmt.Fprintf(tw, "API version\t%d\n", info.APIVersion)
			fmt.Fprintf(tw, "vCPU mmap size\t%d\n", info.VCPUMmapSize)
			fmt.Fprintf(tw, "vCPUs\t%d recommended, %d max\n", info.RecommendedVCPUs, info.MaxVCPUs)
			fmt.Fprintf(tw, "supported CPUID entries\t%d\n", info.SupportedCPUID)
			fmt.Fprintf(tw, "MSRs (save/restore)\t%d\n", info.MSRs)
			fmt.Fprintf(tw, "capabilities\t%d\n", len(caps))
			for _, c := range caps {
				fmt.Fprintf(tw, "  %v\t%d\n", c.Cap, c.Value)
			}
			return tw.Flush()
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print as JSON")
	return cmd
}

func readKVMInfo() (kvmInfo, []kvm.CapValue, error) {
	sys, err := kvm.Open()
	if err != nil {
		return kvmInfo{}, nil, explainKVM(err)
	}
	defer sys.Close()
	var info kvmInfo
	steps := []func() error{
		func() (err error) { info.APIVersion, err = sys.APIVersion(); return },
		func() (err error) { info.VCPUMmapSize, err = sys.VCPUMmapSize(); return },
		func() (err error) { info.RecommendedVCPUs, err = sys.CheckExtension(kvmcap.NrVCPUs); return },
		func() (err error) { info.MaxVCPUs, err = sys.CheckExtension(kvmcap.MaxVCPUs); return },
		func() error { c, err := sys.SupportedCPUID(); info.SupportedCPUID = len(c); return err },
		func() error { m, err := sys.MSRIndexList(); info.MSRs = len(m); return err },
	}
	for _, step := range steps {
		if err := step(); err != nil {
			return kvmInfo{}, nil, err
		}
	}
	caps, err := sys.Capabilities()
	if err != nil {
		return kvmInfo{}, nil, err
	}
	info.Capabilities = make(map[string]int, len(caps))
	for _, c := range caps {
		info.Capabilities[c.Cap.String()] = c.Value
	}
	return info, caps, nil
}
