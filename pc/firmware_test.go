package pc

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"ember/guest"
	"ember/hv"
	"ember/layout"
)

// TestCheckFirmware: the sizes LoadFirmware refuses, each with its reason.
func TestCheckFirmware(t *testing.T) {
	for _, tt := range []struct {
		size int
		want string
	}{
		{0, "empty"},
		{4097, "not a multiple"},
		{MaxFirmwareSize + 4096, "more than"},
		{64 << 10, ""},
		{MaxFirmwareSize, ""},
	} {
		err := CheckFirmware(make([]byte, tt.size))
		if (tt.want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tt.want)) {
			t.Errorf("%d bytes: %v, want %q", tt.size, err, tt.want)
		}
	}
}

// TestFirmwareRunsFromTheResetVector: a 64 KiB ROM (guest.BenchHello) is
// mapped read-only below 4 GiB and copied below 1 MiB; the CPU starts at
// F000:FFF0 in it, and the ROM prints its line and exits 0.
func TestFirmwareRunsFromTheResetVector(t *testing.T) {
	h := openHV(t)
	var out bytes.Buffer
	vm := newPC(t, h, hv.Config{Console: &out}, Config{})
	rom := guest.BenchHello.Code
	if err := LoadFirmware(vm, rom); err != nil {
		t.Fatal(err)
	}
	high, err := vm.Memory().Slice(layout.FirmwareTop-uint64(len(rom)), uint64(len(rom)))
	if err != nil || !bytes.Equal(high, rom) {
		t.Fatalf("the ROM is not below 4 GiB: %v", err)
	}
	if low, _ := vm.Memory().Slice(lowBIOSEnd-uint64(len(rom)), uint64(len(rom))); !bytes.Equal(low, rom) {
		t.Fatal("the ROM is not below 1 MiB")
	}
	if err := vm.SetEntry(0, ResetVector); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	res, err := vm.Run(ctx)
	if err != nil || res.Reason != hv.StopExit || res.Status != 0 {
		t.Fatalf("run: %v %v (console %q)", res, err, out.String())
	}
	if out.Len() == 0 {
		t.Error("the ROM printed nothing")
	}
}
