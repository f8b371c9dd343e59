package pc

import (
	"slices"
	"testing"

	"ember/acrn/iorequest"
	"ember/guest"
	"ember/hv"
)

// TestFWCfgGuestReadsPortsAndDMA runs a guest that reads fw_cfg the way
// firmware does, through the data register and through the DMA interface:
// the signature, the ID, the DMA signature, the command line given as a
// kernel's (which it prints), a skip and a read, and the file count; and
// that a DMA write to a read-only item and a DMA read into memory that is
// not RAM both come back with the error bit.
func TestFWCfgGuestReadsPortsAndDMA(t *testing.T) {
	h := openHV(t)
	const cmdline = "console=ttyS0 fw_cfg=dma"
	k := &FWCfgKernel{Kernel: bzImage(0x020f, loadedHigh, 4, 4096), Initrd: []byte("an initrd"), Cmdline: cmdline}
	res, console, vals := runProgram(t, h, guest.FWCfg, hv.Config{Logger: quiet}, Config{FWCfgKernel: k}) // the refusals are logged
	if res.Reason != hv.StopExit || res.Status != 0 {
		t.Fatalf("result %v; reports %#x; console %q", res, vals, console)
	}
	want := []uint64{
		0x554d4551,           // "QEMU" through the data register
		3,                    // ID: ports and DMA
		0x554d4551,           // the DMA register's high half: "QEMU"
		0x47464320,           // and its low half: " CFG"
		uint64(len(cmdline)), // the command line's size, NUL included
		0,                    // the command line read by DMA: control 0
		0x554d,               // "MU": select and skip 2, then read 2
		1,                    // a DMA write to the signature: error
		1,                    // a DMA read into no RAM: error
		3,                    // files: bootorder, etc/boot-fail-wait, etc/e820
	}
	want[4]++
	if !slices.Equal(vals, want) {
		t.Errorf("guest reported %#x, want %#x", vals, want)
	}
	if console != cmdline {
		t.Errorf("guest printed the command line %q, want %q", console, cmdline)
	}
}

// TestTestDevicesGuest runs a guest that uses QEMU's pc-testdev as
// kvm-unit-tests does (its data register through both port ranges, the
// iomem window, an IRQ line seen in the PIC's IRR, a page flush) and ends
// the run through isa-debug-exit: status (0x14 << 1) | 1.
func TestTestDevicesGuest(t *testing.T) {
	h := openHV(t)
	res, _, vals := runProgram(t, h, guest.TestDev, hv.Config{}, Config{TestDevices: true})
	if res.Reason != hv.StopExit || res.Status != 0x29 {
		t.Fatalf("result %v, reports %#x; want exit status 0x29", res, vals)
	}
	if want := []uint64{0x56, 0xabcd5678, 0xcafef00d, 8, 0x5a5a5a5a}; !slices.Equal(vals, want) {
		t.Errorf("guest reported %#x, want %#x", vals, want)
	}
}

// TestTestDevicesClaimQEMUsPorts: which device answers each port, told
// apart by what a read returns (isa-debug-exit and pc-testdev read zeros,
// ember's ABI ports and unclaimed ports all ones, the latter counted), with
// the test devices off, on, and on with the exit port moved to QEMU's own
// default place (0x501, 2 bytes), which leaves the ABI exit port at 0xf4.
func TestTestDevicesClaimQEMUsPorts(t *testing.T) {
	h := openHV(t)
	type answer int
	const (
		zeros answer = iota
		abiPort
		unclaimed
	)
	for _, tt := range []struct {
		name string
		cfg  Config
		want map[uint64]answer
	}{
		{"off by default", Config{},
			map[uint64]answer{0xe0: unclaimed, 0xe9: abiPort, 0xf4: abiPort, 0x2000: unclaimed, 0x501: unclaimed}},
		{"on: QEMU's ports, over the ABI's console and exit", Config{TestDevices: true},
			map[uint64]answer{0xe0: zeros, 0xe4: zeros, 0xe9: zeros, 0xeb: zeros, 0xf4: zeros, 0xf7: zeros, 0x2017: zeros, 0x2018: unclaimed, 0x501: unclaimed}},
		{"exit port moved", Config{TestDevices: true, DebugExitPort: 0x501, DebugExitSize: 2},
			map[uint64]answer{0xe0: zeros, 0xf4: abiPort, 0x501: zeros, 0x502: zeros, 0x503: unclaimed}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			vm := newPC(t, h, hv.Config{}, tt.cfg)
			for port, want := range tt.want {
				before, _ := vm.Unclaimed()
				b := []byte{0x5a}
				if !vm.IORequests().Direct(iorequest.ReqPortIO, port, false, b) {
					t.Fatalf("port %#x: not an in-process access", port)
				}
				after, _ := vm.Unclaimed()
				got := abiPort
				switch {
				case b[0] == 0:
					got = zeros
				case after != before:
					got = unclaimed
				}
				if b[0] != 0 && b[0] != 0xff || got != want {
					t.Errorf("port %#x reads %#x (answer %d), want answer %d", port, b[0], got, want)
				}
			}
			if tt.cfg.TestDevices {
				io := vm.IORequests()
				b := make([]byte, 4)
				wrote := io.Direct(iorequest.ReqMMIO, 0xff000000, true, []byte{1, 2, 3, 4})
				if read := io.Direct(iorequest.ReqMMIO, 0xff000000, false, b); !wrote || !read || string(b) != "\x01\x02\x03\x04" {
					t.Errorf("iomem at 0xff000000 reads % x after a write (in-process: %v, %v)", b, wrote, read)
				}
			}
		})
	}
}
