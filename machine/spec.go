package machine

import (
	"fmt"
	"strconv"
	"strings"
)

// ParseDisk parses `ember run --disk`'s value:
// PATH[,readonly][,serial=ID][,queues=N][,cache=none|writeback]. The
// options are checked with the rest of the Config, in Prepare.
func ParseDisk(spec string) (Disk, error) {
	parts := strings.Split(spec, ",")
	d := Disk{Path: parts[0]}
	for _, p := range parts[1:] {
		k, v, _ := strings.Cut(p, "=")
		switch k {
		case "readonly", "ro":
			d.ReadOnly = true
		case "serial":
			d.Serial = v
		case "cache":
			d.Cache = v
		case "queues":
			n, err := strconv.Atoi(v)
			if err != nil {
				return d, fmt.Errorf("disk %q: queues must be 1 to 16", spec)
			}
			d.Queues = n
		default:
			return d, fmt.Errorf("disk %q: unknown option %q (readonly, serial=ID, queues=N, cache=none)", spec, p)
		}
	}
	return d, nil
}

// ParseNet parses `ember run --net`'s value: tap=NAME[,mac=MAC].
func ParseNet(spec string) (Net, error) {
	var n Net
	for _, p := range strings.Split(spec, ",") {
		k, v, _ := strings.Cut(p, "=")
		switch k {
		case "tap":
			n.TAP = v
		case "mac":
			n.MAC = v
		default:
			return n, fmt.Errorf("net %q: unknown option %q (tap=NAME, mac=MAC)", spec, p)
		}
	}
	return n, nil
}

// ParseVsock parses `ember run --vsock`'s value: cid=N,socket=PATH.
func ParseVsock(spec string) (Vsock, error) {
	var v Vsock
	for _, p := range strings.Split(spec, ",") {
		k, val, _ := strings.Cut(p, "=")
		switch k {
		case "cid":
			n, err := strconv.ParseUint(val, 0, 64)
			if err != nil {
				return v, fmt.Errorf("vsock %q: cid must be a number from 3 to 4294967294", spec)
			}
			v.CID = n
		case "socket":
			v.Socket = val
		default:
			return v, fmt.Errorf("vsock %q: unknown option %q (cid=N, socket=PATH)", spec, p)
		}
	}
	return v, nil
}

// ParseModule parses `ember run --module`'s value: PATH[,CMDLINE] (the
// command line is everything after the first comma).
func ParseModule(spec string) (Module, error) {
	path, cmdline, _ := strings.Cut(spec, ",")
	if path == "" {
		return Module{}, fmt.Errorf("module %q: no path", spec)
	}
	return Module{Path: path, Cmdline: cmdline}, nil
}

// ParseBalloon parses `ember run --balloon`'s value:
// [target=SIZE][,deflate-on-oom][,stats=INTERVAL].
func ParseBalloon(spec string) (Balloon, error) {
	var b Balloon
	for _, p := range strings.Split(spec, ",") {
		k, v, _ := strings.Cut(p, "=")
		switch k {
		case "":
		case "target":
			b.Target = v
		case "deflate-on-oom":
			b.DeflateOnOOM = true
		case "stats":
			b.StatsInterval = v
		default:
			return b, fmt.Errorf("balloon %q: unknown option %q (target=SIZE, deflate-on-oom, stats=INTERVAL)", spec, p)
		}
	}
	return b, nil
}

// ParseSize reads a memory size such as "512M", "2G", "64MiB" or "1048576"
// (bytes). Suffixes are binary: K = 1024.
func ParseSize(s string) (uint64, error) {
	t := strings.TrimSpace(strings.ToUpper(s))
	t = strings.TrimSuffix(strings.TrimSuffix(t, "B"), "I")
	shift := 0
	if n := len(t); n > 0 {
		switch t[n-1] {
		case 'K':
			shift = 10
		case 'M':
			shift = 20
		case 'G':
			shift = 30
		case 'T':
			shift = 40
		}
		if shift != 0 {
			t = t[:n-1]
		}
	}
	v, err := strconv.ParseUint(t, 10, 64)
	if err != nil || v == 0 {
		return 0, fmt.Errorf("bad memory size %q: want a positive number with an optional K, M, G or T suffix", s)
	}
	if v > (^uint64(0))>>shift {
		return 0, fmt.Errorf("memory size %q is too large", s)
	}
	return v << shift, nil
}
