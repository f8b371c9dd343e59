package machine

import "testing"

func TestParseSize(t *testing.T) {
	tests := []struct {
		in   string
		want uint64
		ok   bool
	}{
		{"4096", 4096, true},
		{"2M", 2 << 20, true},
		{"512MiB", 512 << 20, true},
		{"1g", 1 << 30, true},
		{"64K", 64 << 10, true},
		{"0", 0, false},
		{"", 0, false},
		{"-1M", 0, false},
		{"99999999999T", 0, false},
		{"lots", 0, false},
	}
	for _, tt := range tests {
		got, err := ParseSize(tt.in)
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d ok=%v", tt.in, got, err, tt.want, tt.ok)
		}
	}
}

// TestParseSpecs: `ember run`'s --disk, --net and --vsock values become the
// configuration's devices; an unknown option is refused where it is parsed.
func TestParseSpecs(t *testing.T) {
	d, err := ParseDisk("a.img,ro,serial=x,queues=4,cache=none,format=raw")
	if err != nil || d != (Disk{Path: "a.img", ReadOnly: true, Serial: "x", Queues: 4, Cache: "none", Format: "raw"}) {
		t.Errorf("ParseDisk: %+v, %v", d, err)
	}
	d, err = ParseDisk("backend=/run/disk.sock")
	if err != nil || d != (Disk{Backend: "/run/disk.sock"}) {
		t.Errorf("ParseDisk backend: %+v, %v", d, err)
	}
	n, err := ParseNet("tap=t0,mac=52:54:00:00:00:02,queues=2,threads=1")
	if err != nil || n != (Net{TAP: "t0", MAC: "52:54:00:00:00:02", Queues: 2, Threads: 1}) {
		t.Errorf("ParseNet: %+v, %v", n, err)
	}
	for spec, want := range map[string]bool{"tap=t0,vhost=on": true, "tap=t0,vhost": true, "tap=t0,vhost=off": false} {
		if n, err := ParseNet(spec); err != nil || n != (Net{TAP: "t0", Vhost: want}) {
			t.Errorf("ParseNet(%q): %+v, %v", spec, n, err)
		}
	}
	v, err := ParseVsock("cid=0x10,socket=/tmp/s")
	if err != nil || v != (Vsock{CID: 16, Socket: "/tmp/s"}) {
		t.Errorf("ParseVsock: %+v, %v", v, err)
	}
	for _, bad := range []func() error{
		func() error { _, err := ParseDisk("a.img,bogus"); return err },
		func() error { _, err := ParseDisk("a.img,queues=many"); return err },
		func() error { _, err := ParseNet("tap=t0,speed=10"); return err },
		func() error { _, err := ParseNet("tap=t0,vhost=yes"); return err },
		func() error { _, err := ParseNet("tap=t0,queues=two"); return err },
		func() error { _, err := ParseVsock("cid=x,socket=/s"); return err },
		func() error { _, err := ParseVsock("port=3"); return err },
	} {
		if bad() == nil {
			t.Error("a bad spec was accepted")
		}
	}
}
