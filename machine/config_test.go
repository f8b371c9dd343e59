package machine

import (
	"cmp"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// TestParseConfigIsStrict: a configuration is decoded whole or refused, so a
// misspelt field, a wrong type, trailing data or an oversized document is an
// error the user sees rather than a default silently used.
func TestParseConfigIsStrict(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{"good", `{"guest":"long64","cpus":2,"memory":"4M","disks":[{"path":"a.img","readonly":true}],"virtio_transport":"mmio"}`, ""},
		{"unknown field", `{"cpu":2}`, `unknown field "cpu"`},
		{"wrong type", `{"cpus":"two"}`, "cannot unmarshal string"},
		{"trailing data", `{"cpus":2} {"cpus":3}`, "data after the JSON value"},
		{"not an object", `[1,2]`, "cannot unmarshal array"},
		{"empty", ``, "EOF"},
		{"too big", `{"cmdline":"` + strings.Repeat("x", MaxConfigSize) + `"}`, "more than"},
	}
	for _, tt := range tests {
		c, err := ParseConfig([]byte(tt.in))
		if tt.want == "" {
			if err != nil || c.Guest != "long64" || c.CPUs != 2 || len(c.Disks) != 1 || !c.Disks[0].ReadOnly || c.VirtioTransport != "mmio" {
				t.Errorf("%s: %+v, %v", tt.name, c, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: err %v, want %q", tt.name, err, tt.want)
		}
	}
}

// TestWithDefaults: a kernel gets Linux's memory, a tiny
// guest the demo and 2 MiB, and given values stay.
func TestWithDefaults(t *testing.T) {
	tests := []struct {
		in, want Config
	}{
		{Config{}, Config{Guest: "demo", Memory: "2M", CPUs: 1, Reboot: "exit", ConsoleDevice: "serial"}},
		{Config{Kernel: "k"}, Config{Kernel: "k", Memory: "512M", CPUs: 1, Boot: "auto", Reboot: "exit", ConsoleDevice: "serial"}},
		{Config{Kernel: "k", VirtioTransport: "mmio"}, Config{Kernel: "k", Memory: "512M", CPUs: 1, Boot: "auto", Reboot: "exit", ConsoleDevice: "serial", VirtioTransport: "mmio"}},
		{Config{BIOS: "r", Memory: "8M", CPUs: 3}, Config{BIOS: "r", Memory: "8M", CPUs: 3, Reboot: "exit", ConsoleDevice: "serial"}},
	}
	for _, tt := range tests {
		got := tt.in.WithDefaults()
		if got.Guest != tt.want.Guest || got.Memory != tt.want.Memory || got.CPUs != tt.want.CPUs ||
			got.Cmdline != tt.want.Cmdline || got.Boot != tt.want.Boot || got.Reboot != tt.want.Reboot ||
			got.ConsoleDevice != tt.want.ConsoleDevice || got.VirtioTransport != cmp.Or(tt.want.VirtioTransport, "pci") {
			t.Errorf("%+v.WithDefaults() = %+v, want %+v", tt.in, got, tt.want)
		}
	}
}

// TestPrepareRefuses: each bad value is refused with its field named, and
// values wrong in themselves are ErrInvalid while a missing file is not.
func TestPrepareRefuses(t *testing.T) {
	dir := t.TempDir()
	img := filepath.Join(dir, "disk.img")
	if err := os.WriteFile(img, make([]byte, 4096), 0o600); err != nil {
		t.Fatal(err)
	}
	vmdk := filepath.Join(dir, "disk.vmdk") // a VMDK's signature
	if err := os.WriteFile(vmdk, append([]byte("KDMV"), make([]byte, 4092)...), 0o600); err != nil {
		t.Fatal(err)
	}
	qcow2 := filepath.Join(dir, "disk.qcow2") // a qcow2 signature, version 3, and nothing more
	if err := os.WriteFile(qcow2, append([]byte{'Q', 'F', 'I', 0xfb, 0, 0, 0, 3}, make([]byte, 4088)...), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		c       Config
		want    string
		invalid bool
	}{
		{"memory", Config{Memory: "lots"}, "bad memory size", true},
		{"huge memory", Config{Memory: "64T"}, "more than this host's", true},
		{"negative cpus", Config{CPUs: -1}, "cpus must be at least 1", true},
		{"too many cpus", Config{CPUs: 100000}, "at most 255", true},
		{"reboot", Config{Reboot: "sometimes"}, "reboot must be exit or restart", true},
		{"cpuid mask", Config{CPUIDMask: []string{"nosuchflag"}}, "cpuid_mask", true},
		{"console", Config{ConsoleDevice: "usb"}, "console_device must be serial or virtio", true},
		{"virtio transport", Config{VirtioTransport: "ccw"}, "virtio_transport must be pci or mmio", true},
		{"virtio-mmio behind firmware", Config{BIOS: img, VirtioTransport: "mmio"}, "needs a kernel booted directly, not bios", true},
		{"more virtio-mmio devices than lines", Config{VirtioTransport: "mmio", RNG: true, ConsoleDevice: "virtio",
			Disks: []Disk{{Path: img}, {Path: img}, {Path: img}, {Path: img}, {Path: img}, {Path: img}}}, "8 virtio devices, but the PC platform has room for 7", true},
		{"guest", Config{Guest: "nope"}, `no built-in guest "nope"`, true},
		{"kernel and guest", Config{Kernel: img, Guest: "demo"}, "exclude each other", true},
		{"bios and guest", Config{BIOS: img, Guest: "demo"}, "does not go with a guest", true},
		{"balloon target", Config{Memory: "8M", Balloon: &Balloon{Target: "8M"}}, "not less than the guest's", true},
		{"balloon size", Config{Balloon: &Balloon{Target: "lots"}}, "balloon target", true},
		{"balloon stats", Config{Balloon: &Balloon{StatsInterval: "1ms"}}, "at least 100ms", true},
		{"debug exit alone", Config{DebugExitPort: 0x501}, "goes with test_devices", true},
		{"hyperv-testdev without hyperv", Config{HyperVTestDev: true}, "hyperv_testdev needs hyperv", true},
		{"iommu with a virtio device", Config{IOMMU: true, RNG: true}, "iommu: virtio devices are not behind it", true},
		{"boot", Config{Kernel: img, Boot: "floppy"}, "boot must be", true},
		{"missing kernel", Config{Kernel: filepath.Join(dir, "none")}, "kernel: open", false},
		{"missing disk", Config{Disks: []Disk{{Path: filepath.Join(dir, "none")}}}, "disk: stat", false},
		{"disk path", Config{Disks: []Disk{{}}}, "disk: no path", true},
		{"disk serial", Config{Disks: []Disk{{Path: img, Serial: strings.Repeat("s", 21)}}}, "serial longer than 20 bytes", true},
		{"disk cache", Config{Disks: []Disk{{Path: img, Cache: "unsafe"}}}, "cache must be none or writeback", true},
		{"disk queues", Config{Disks: []Disk{{Path: img, Queues: 17}}}, "queues must be 1 to 16", true},
		{"disk format", Config{Disks: []Disk{{Path: img, Format: "vmdk"}}}, `format must be raw or qcow2, not "vmdk"`, true},
		{"disk not qcow2", Config{Disks: []Disk{{Path: img, Format: "qcow2"}}}, "is not a qcow2 image", false},
		{"vmdk disk", Config{Disks: []Disk{{Path: vmdk}}}, "is a vmdk image, and ember serves raw and qcow2 images", false},
		{"broken qcow2 disk", Config{Disks: []Disk{{Path: qcow2}}}, "qcow2: corrupt image: header length 0", false},
		{"disk backend with an image", Config{Disks: []Disk{{Path: img, Backend: "/run/d.sock"}}}, "the back-end's", true},
		{"disk backend with options", Config{Disks: []Disk{{Backend: "/run/d.sock", ReadOnly: true}}}, "the back-end's", true},
		{"net tap", Config{Nets: []Net{{MAC: "52:54:00:00:00:01"}}}, "tap=NAME is required", true},
		{"net tap name", Config{Nets: []Net{{TAP: strings.Repeat("t", 16)}}}, "longer than 15 bytes", true},
		{"net mac", Config{Nets: []Net{{TAP: "t0", MAC: "01:00:00:00:00:00"}}}, "mac must be a unicast", true},
		{"net queues", Config{Nets: []Net{{TAP: "t0", Queues: 17}}}, "queues must be 1 to 16", true},
		{"net threads", Config{Nets: []Net{{TAP: "t0", Queues: 2, Threads: 3}}}, "threads must be 1 to queues (2)", true},
		{"net threads, one pair", Config{Nets: []Net{{TAP: "t0", Threads: 2}}}, "threads must be 1 to queues (1)", true},
		{"net threads with vhost", Config{Nets: []Net{{TAP: "t0", Queues: 2, Threads: 1, Vhost: true}}}, "threads with vhost=on", true},
		{"vsock cid", Config{Vsock: &Vsock{CID: 2, Socket: "/tmp/v"}}, "cid must be a number from 3", true},
		{"vsock socket", Config{Vsock: &Vsock{CID: 3}}, "both cid=N and socket=PATH", true},
	}
	for _, tt := range tests {
		_, err := tt.c.Prepare()
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: err %v, want %q", tt.name, err, tt.want)
			continue
		}
		if errors.Is(err, ErrInvalid) != tt.invalid {
			t.Errorf("%s: errors.Is(%v, ErrInvalid) = %v", tt.name, err, !tt.invalid)
		}
	}
}

// TestNetThreads: an interface's pairs get a thread each where the host
// has a CPU for each beside the vCPUs, else one for all.
func TestNetThreads(t *testing.T) {
	for _, tc := range []struct{ pairs, vcpus, host, want int }{
		{1, 1, 1, 1},
		{2, 2, 2, 1}, // the lab: two CPUs, a guest of two
		{2, 2, 4, 2},
		{4, 4, 7, 1},
		{4, 4, 64, 4},
	} {
		if got := NetThreads(tc.pairs, tc.vcpus, tc.host); got != tc.want {
			t.Errorf("NetThreads(%d pairs, %d vCPUs, %d host CPUs) = %d, want %d", tc.pairs, tc.vcpus, tc.host, got, tc.want)
		}
	}
}

// TestPrepareReadsWhatItNeeds: a good configuration is prepared with its
// files read and its devices' configurations made.
func TestPrepareReadsWhatItNeeds(t *testing.T) {
	dir := t.TempDir()
	img := filepath.Join(dir, "disk.img")
	if err := os.WriteFile(img, make([]byte, 4096), 0o600); err != nil {
		t.Fatal(err)
	}
	c := Config{Guest: "long64", CPUs: 2, Memory: "8M", RNG: true,
		Disks: []Disk{{Path: img, ReadOnly: true, Serial: "d0", Cache: "none", Queues: 2}, {Backend: filepath.Join(dir, "d.sock")}},
		Nets:  []Net{{TAP: "t0", MAC: "52:54:00:00:00:01", Queues: 2}, {TAP: "t1", Queues: 2, Threads: 2}, {TAP: "t2", Queues: 2, Vhost: true}},
		Vsock: &Vsock{CID: 7, Socket: filepath.Join(dir, "v.sock")}}
	p, err := c.Prepare()
	if err != nil {
		t.Fatal(err)
	}
	if p.Name != "long64" || p.HV.MemorySize != 8<<20 || p.HV.VCPUs != 2 || p.Linux() {
		t.Errorf("prepared %q, %d bytes, %d vCPUs, linux %v", p.Name, p.HV.MemorySize, p.HV.VCPUs, p.Linux())
	}
	if len(p.disks) != 2 || !p.disks[0].blk.Direct || !p.disks[0].blk.ReadOnly || p.disks[0].blk.Queues != 2 || p.disks[1].backend == "" {
		t.Errorf("disk %+v", p.disks)
	}
	if !p.HV.SharedMemory {
		t.Error("a disk with a back-end, but the guest's RAM is not shareable")
	}
	if len(p.nets) != 3 || p.nets[0].MAC.String() != "52:54:00:00:00:01" || p.nets[0].Queues != 2 {
		t.Errorf("net %+v", p.nets)
	} else if want := NetThreads(2, 2, runtime.NumCPU()); p.nets[0].Threads != want || p.nets[1].Threads != 2 || p.nets[2].Threads != 0 {
		t.Errorf("net threads %d, %d, %d; want %d (the default here), 2 (as set), 0 (vhost)", p.nets[0].Threads, p.nets[1].Threads, p.nets[2].Threads, want)
	}
	if p.vsock == nil || p.vsock.CID != 7 {
		t.Errorf("vsock %+v", p.vsock)
	}
}

// TestPrepareVirtioMMIO: virtio-mmio takes as many devices as the platform
// has lines for, with a tiny guest or a multiboot kernel as well as Linux
// (only Linux is told of them on its command line).
func TestPrepareVirtioMMIO(t *testing.T) {
	dir := t.TempDir()
	img := filepath.Join(dir, "disk.img")
	if err := os.WriteFile(img, make([]byte, 4096), 0o600); err != nil {
		t.Fatal(err)
	}
	c := Config{Guest: "long64", VirtioTransport: TransportMMIO, RNG: true, ConsoleDevice: ConsoleVirtio,
		Disks: []Disk{{Path: img}, {Path: img}, {Path: img}, {Path: img}, {Path: img}}}
	p, err := c.Prepare()
	if err != nil {
		t.Fatal(err)
	}
	if p.Config.VirtioTransport != TransportMMIO || len(p.disks) != 5 {
		t.Errorf("prepared transport %q with %d disks", p.Config.VirtioTransport, len(p.disks))
	}
}
