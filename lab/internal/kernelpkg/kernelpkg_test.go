package kernelpkg

import (
	"slices"
	"strings"
	"testing"
)

// TestLoadOrder: every module comes after what it depends on, once; a
// dependency the package lacks is an error that names who needed it, and a
// cycle is an error too.
func TestLoadOrder(t *testing.T) {
	mods := map[string]*module{
		"kvm_amd":   {depends: []string{"kvm", "ccp"}},
		"kvm":       {depends: []string{"irqbypass"}},
		"irqbypass": {},
		"ccp":       {},
		"tun":       {},
		"vhost_net": {depends: []string{"vhost", "tun", "tap"}},
		"vhost":     {depends: []string{"vhost_iotlb"}},
		"loop_a":    {depends: []string{"loop_b"}},
		"loop_b":    {depends: []string{"loop_a"}},
	}
	tests := []struct {
		roots   []string
		want    []string
		wantErr string
	}{
		{[]string{"kvm_amd"}, []string{"irqbypass", "kvm", "ccp", "kvm_amd"}, ""},
		{[]string{"tun", "kvm", "kvm_amd"}, []string{"tun", "irqbypass", "kvm", "ccp", "kvm_amd"}, ""},
		{nil, nil, ""},
		{[]string{"vhost_net"}, nil, "module vhost_iotlb (needed by vhost <- vhost_net <- the caller)"},
		{[]string{"nonesuch"}, nil, "module nonesuch (needed by the caller)"},
		{[]string{"loop_a"}, nil, "module loop_a depends on itself (loop_b <- loop_a <- the caller)"},
	}
	for _, tt := range tests {
		got, err := loadOrder(mods, tt.roots)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("loadOrder(%v) error %v, want one saying %q", tt.roots, err, tt.wantErr)
			}
			continue
		}
		if err != nil || !slices.Equal(got, tt.want) {
			t.Errorf("loadOrder(%v) = %v, %v; want %v", tt.roots, got, err, tt.want)
		}
	}
}

// TestHasModules: a cached modules.order serves a request only if it holds
// every module asked for, whatever the dashes and underscores of its names.
func TestHasModules(t *testing.T) {
	order := "kvm\nkvm_amd\nvirtio-pci\n9pnet_virtio\n"
	tests := []struct {
		modules []string
		want    bool
	}{
		{nil, true},
		{[]string{"kvm_amd", "virtio_pci"}, true},
		{[]string{"9pnet-virtio"}, true},
		{[]string{"kvm_amd", "vhost_net"}, false},
	}
	for _, tt := range tests {
		if got := HasModules(order, tt.modules); got != tt.want {
			t.Errorf("HasModules(%v) = %v, want %v", tt.modules, got, tt.want)
		}
	}
}
